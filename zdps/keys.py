"""CURVE keys: key files, allow-lists, ``zdps keygen``, and a client's keys.

A key file is a ZeroMQ certificate as pyzmq writes it (``NAME.key`` public,
``NAME.key_secret`` secret), with the node's name in its metadata (``node = "NAME"``):
the name a key authenticates is read from the file, never from the network, and a
node's id must be the name in its own key. An allow-list is a directory of public key
files; a name may have several keys (a rotation in progress, docs/PROTOCOL.md §2.1).
A client (and a peer link) speaks CURVE with its own pair and the node's public key.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

_KEY_LINE = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"(.{40})"\s*$')
_NODE_LINE = re.compile(r'^\s*node\s*=\s*"(.*)"\s*$')
_BANNER = "#   ****  Generated on {when} by zdps keygen  ****\n#   ZeroMQ CURVE {what}\n"


ENV_CURVE_KEY = "ZDPS_CURVE_KEY"  # a client's secret key file, when not given
ENV_SERVER_KEY = "ZDPS_SERVER_KEY"  # the node's public key file, when not given


class KeyFileError(ValueError):
    """A key file or directory that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class KeyFile:
    """What one certificate file holds: the node name, the public key, maybe the secret."""

    node: str
    public: bytes  # Z85, 40 bytes
    secret: bytes | None


def read_key(path: Path) -> KeyFile:
    """The certificate at ``path``; its node is the metadata ``node``, else the file's
    name up to ``.key``."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from None
    keys: dict[str, bytes] = {}
    node = None
    for line in text.splitlines():
        if (match := _KEY_LINE.match(line)) is not None:
            keys[match[1]] = match[2].encode()
        elif (match := _NODE_LINE.match(line)) is not None:
            node = match[1]
    public = keys.get("public-key")
    if public is None or not _is_z85(public):
        raise KeyFileError(f"{path} holds no CURVE public key")
    secret = keys.get("secret-key")
    if secret is not None and not _is_z85(secret):
        raise KeyFileError(f"{path} holds a damaged secret key")
    name = node or Path(path).name.split(".key")[0]
    if not name or not name.isprintable():
        raise KeyFileError(f"{path} names no node")
    return KeyFile(name, public, secret)


@dataclass(frozen=True, slots=True)
class CurveClient:
    """What a socket needs to speak CURVE to a node: its own pair, the node's public key."""

    public: bytes
    secret: bytes
    server: bytes

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` (not yet connected) a CURVE client of the node."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)


def client_keys(curve_key: str | None = None, server_key: str | None = None) -> CurveClient | None:
    """A client's CURVE keys from its secret key file and the node's public key file
    (each else from $ZDPS_CURVE_KEY and $ZDPS_SERVER_KEY); None when neither is set."""
    curve_key = curve_key or os.environ.get(ENV_CURVE_KEY) or None
    server_key = server_key or os.environ.get(ENV_SERVER_KEY) or None
    if curve_key is None and server_key is None:
        return None
    if curve_key is None or server_key is None:
        raise KeyFileError("a CURVE client needs both its secret key and the node's public key")
    own = read_key(Path(curve_key))
    if own.secret is None:
        raise KeyFileError(f"{curve_key} holds no secret key (the .key_secret file)")
    return CurveClient(own.public, own.secret, read_key(Path(server_key)).public)


def _is_z85(key: bytes) -> bool:
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError):
        return False


@dataclass(slots=True)
class AllowList:
    """The node keys a directory allows: public key -> node name, and each name's keys,
    newest file first."""

    directory: Path
    names: dict[bytes, str] = field(default_factory=dict)  # raw 32-byte key -> node
    by_node: dict[str, list[bytes]] = field(default_factory=dict)  # node -> Z85 keys

    def load(self) -> None:
        """Read the directory again (start, SIGHUP); raises KeyFileError and keeps the old
        list if it cannot be read."""
        if not self.directory.is_dir():
            raise KeyFileError(f"{self.directory} is not a directory of public key files")
        try:
            paths = sorted(self.directory.glob("*.key"), key=_mtime, reverse=True)
        except OSError as exc:
            raise KeyFileError(f"cannot read the key directory {self.directory}: {exc}") from None
        names: dict[bytes, str] = {}
        by_node: dict[str, list[bytes]] = {}
        for path in paths:
            key = read_key(path)
            names[z85.decode(key.public)] = key.node
            by_node.setdefault(key.node, []).append(key.public)
        self.names, self.by_node = names, by_node

    def node_of(self, raw_public_key: bytes) -> str | None:
        """The node a client key authenticates as (ZAP credentials are raw bytes)."""
        return self.names.get(raw_public_key)

    def server_key(self, node: str) -> bytes | None:
        """The public key to expect from ``node``'s cluster socket: its newest."""
        keys = self.by_node.get(node)
        return keys[0] if keys else None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """CURVE for the cluster: this node's own pair and the allow-list of its peers."""

    own: KeyFile
    peers: AllowList

    @classmethod
    def load(cls, secret_file: str, peers_dir: str) -> NodeKeys:
        own = read_key(Path(secret_file))
        if own.secret is None:
            raise KeyFileError(f"{secret_file} holds no secret key (the .key_secret file)")
        peers = AllowList(Path(peers_dir))
        peers.load()
        return cls(own, peers)

    def allowed(self, raw_public_key: bytes) -> str | None:
        """The node a connecting key belongs to; this node's own key is always allowed."""
        if raw_public_key == z85.decode(self.own.public):
            return self.own.node
        return self.peers.node_of(raw_public_key)

    def server_key(self, node: str) -> bytes | None:
        if node == self.own.node:
            return self.own.public
        return self.peers.server_key(node)


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair for node ``name``: ``NAME.key`` and ``NAME.key_secret`` (mode
    0600). Refuses to overwrite either file."""
    if not name or not name.isprintable() or "/" in name or '"' in name:
        raise KeyFileError(f"{name!r} cannot name a node's key")
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public_file, secret_file):
        if path.exists():
            raise KeyFileError(f"{path} exists; remove it first or choose another directory")
    public, secret = zmq.curve_keypair()
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    head = f'\nmetadata\n    node = "{name}"\ncurve\n    public-key = "{public.decode()}"\n'
    public_file.write_text(_BANNER.format(when=when, what="Public Certificate") + head)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(_BANNER.format(when=when, what="**Secret** Certificate") + head)
        out.write(f'    secret-key = "{secret.decode()}"\n')
    return public_file, secret_file
