"""The cluster fixture of tests/cluster (real daemons on loopback)."""

from tests.cluster.conftest import cluster

__all__ = ["cluster"]
