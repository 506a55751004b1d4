"""The Python clients: one IO-free session, carried out by two thin drivers.

``session.py`` and ``publishing.py`` are the operations, as generators of the typed
steps of ``steps.py``; ``sync.py`` (``Client``) and ``aio.py`` (``AsyncClient``) carry
them out, the one blocking, the other awaiting, with the sockets and their details in
``sockets.py``. ``recovery.py`` and ``subscription.py`` turn deliveries into messages
and gaps; ``ledger.py`` counts a publish stream's acks; ``protocol.py`` holds the
names users see (endpoints, results, errors).
"""
