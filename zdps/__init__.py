"""zdps: a distributed publish/subscribe daemon for ZeroMQ and Python.

The client names are loaded on first use: ``import zdps.core`` (the daemon's IO-free
core, and the simulator built on it) must not pull in pyzmq.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from zdps.client.aio import AsyncClient
    from zdps.client.aio_subscription import AsyncSubscription
    from zdps.client.consumer_member import ConsumerMessage
    from zdps.client.ledger import StreamResult
    from zdps.client.protocol import (
        FLUSH,
        Batch,
        Message,
        PublishError,
        PublishResult,
        RequestError,
        ZdpsError,
    )
    from zdps.client.recovery import Gap
    from zdps.client.sync import Client
    from zdps.client.sync_subscription import Subscription

_EXPORTS = {
    "FLUSH": "zdps.client.protocol",
    "AsyncClient": "zdps.client.aio",
    "AsyncSubscription": "zdps.client.aio_subscription",
    "Batch": "zdps.client.protocol",
    "Client": "zdps.client.sync",
    "ConsumerMessage": "zdps.client.consumer_member",
    "Gap": "zdps.client.recovery",
    "Message": "zdps.client.protocol",
    "PublishError": "zdps.client.protocol",
    "PublishResult": "zdps.client.protocol",
    "RequestError": "zdps.client.protocol",
    "StreamResult": "zdps.client.ledger",
    "Subscription": "zdps.client.sync_subscription",
    "ZdpsError": "zdps.client.protocol",
}

__all__ = [
    "FLUSH",
    "AsyncClient",
    "AsyncSubscription",
    "Batch",
    "Client",
    "ConsumerMessage",
    "Gap",
    "Message",
    "PublishError",
    "PublishResult",
    "RequestError",
    "StreamResult",
    "Subscription",
    "ZdpsError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zdps' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
