"""The zdps wire protocol, version 1 (docs/PROTOCOL.md is its specification)."""

from zdps.wire.codec import *  # noqa: F403
