"""zdps: a distributed publish/subscribe daemon for ZeroMQ and Python."""

__version__ = "0.1.0"

from zdps.client.aio import AsyncClient, AsyncSubscription
from zdps.client.protocol import (
    Message,
    PublishError,
    PublishResult,
    RequestError,
    ZdpsError,
)
from zdps.client.recovery import Gap
from zdps.client.sync import Client, Subscription

__all__ = [
    "AsyncClient",
    "AsyncSubscription",
    "Client",
    "Gap",
    "Message",
    "PublishError",
    "PublishResult",
    "RequestError",
    "Subscription",
    "ZdpsError",
    "__version__",
]
