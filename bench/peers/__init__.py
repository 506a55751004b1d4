"""Peer systems for `bench/compare`: one module per system, the same workloads for each.

Every peer module (`zmq_raw`, `redis_pubsub`, `nats_pubsub`, `pyre_shout`) provides the
process roles that `peers.worker` runs in child processes: `sub` (one subscriber),
`fsub` (many subscriber connections in one process, for fan-out) and `pub` (the
publisher). `peers.runner` starts them, and merges what they report into one result of
the shape `zdps bench --json` prints. zdps itself is driven only through its CLI
(`peers.zdps_nodes`).
"""
