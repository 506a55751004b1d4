"""Daemon configuration: the TOML file and command-line flags, checked.

Precedence: a flag given on the command line beats the config file, which beats the
default. ``zdps.settings`` defines every key (its type, default, bounds and help) and
each key's flag (dashes for underscores; ``seeds`` is ``--seed``, repeated); what is
checked here beyond it is endpoint syntax and the rules that relate two keys.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import zmq

from zdps import __version__
from zdps.core.permissions import Permissions
from zdps.core.tunables import CoreConfig
from zdps.endpoints import connectable, endpoint_problem, host, is_wildcard, next_to
from zdps.keys import AllowList, KeyFileError, NodeKeys, read_key
from zdps.setting import Setting
from zdps.settings import BY_NAME, DEFAULT_API, DEFAULT_CLUSTER, DEFAULT_PUB, SETTINGS

__all__ = [
    "DEFAULT_API",
    "DEFAULT_CLUSTER",
    "DEFAULT_PUB",
    "Config",
    "ConfigError",
    "core_config",
    "load",
]


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which key and why."""


def _default(name: str) -> Any:
    """A Config field with the setting's default, computed for each Config if it must be."""
    setting = BY_NAME[name]
    if setting.factory is None:
        return field(default=setting.default)
    return field(default_factory=setting.factory)


@dataclass(slots=True)
class Config:
    """Everything ``zdps start`` needs to run one node: one field per setting."""

    node_id: str = _default("node_id")
    scope: str = _default("scope")
    cluster: str = _default("cluster")
    advertise: str | None = _default("advertise")
    seeds: list[str] = field(default_factory=BY_NAME["seeds"].default_value)
    curve_secret_key: str | None = _default("curve_secret_key")
    curve_peers: str | None = _default("curve_peers")
    curve_clients: str | None = _default("curve_clients")
    permissions: str | None = _default("permissions")
    api: str = _default("api")
    pub: str = _default("pub")
    batch_pub: str | None = _default("batch_pub")
    metrics: str | None = _default("metrics")
    log_level: str = _default("log_level")
    log_format: str = _default("log_format")
    probe_interval: float = _default("probe_interval")
    probe_timeout: float = _default("probe_timeout")
    indirect_probes: int = _default("indirect_probes")
    suspicion_mult: float = _default("suspicion_mult")
    suspicion_max_mult: float = _default("suspicion_max_mult")
    heartbeat_interval: float = _default("heartbeat_interval")
    ping_fanout: int = _default("ping_fanout")
    peer_timeout: float = _default("peer_timeout")
    max_payload: int = _default("max_payload")
    max_topic: int = _default("max_topic")
    max_publish_rate: int = _default("max_publish_rate")
    max_clients: int = _default("max_clients")
    max_peers: int = _default("max_peers")
    max_groups: int = _default("max_groups")
    max_subscriptions: int = _default("max_subscriptions")
    pub_hwm: int = _default("pub_hwm")
    history: int = _default("history")
    history_ttl: float = _default("history_ttl")
    replicas: int = _default("replicas")
    drain_timeout: float = _default("drain_timeout")

    @property
    def advertised(self) -> str:
        """The endpoint peers dial to reach this node's cluster socket."""
        return self.advertise or self.cluster

    @property
    def batches(self) -> str:
        """The endpoint of the batch PUB: ``batch_pub``, else next to ``pub``."""
        return self.batch_pub or next_to(self.pub)

    @property
    def seed_endpoints(self) -> list[str]:
        """The seeds to dial, without the node names CURVE needs (``NAME@``)."""
        return [_split_seed(seed)[1] for seed in self.seeds]

    @property
    def seed_nodes(self) -> dict[str, str]:
        """Seed endpoint -> the node expected there, for the seeds written NAME@ENDPOINT."""
        return {endpoint: node for node, endpoint in map(_split_seed, self.seeds) if node}

    @property
    def curve(self) -> bool:
        return self.curve_secret_key is not None

    def keys(self) -> NodeKeys:
        """This node's CURVE keys and allow-list, read from disk, or ConfigError."""
        assert self.curve_secret_key is not None and self.curve_peers is not None
        try:
            return NodeKeys.load(self.curve_secret_key, self.curve_peers)
        except KeyFileError as exc:
            raise ConfigError(str(exc)) from None

    def client_keys(self) -> AllowList | None:
        """The allow-list of client keys (``curve_clients``), read from disk, or None."""
        if self.curve_clients is None:
            return None
        clients = AllowList(Path(self.curve_clients))
        try:
            clients.load()
        except KeyFileError as exc:
            raise ConfigError(str(exc)) from None
        return clients

    def check(self) -> Config:
        """Raise ConfigError for anything that cannot work; return self, normalised."""
        for setting in SETTINGS:
            try:
                setattr(self, setting.name, setting.parse(getattr(self, setting.name)))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        # What zdps.settings cannot say about one key alone; the help texts state it.
        for key in ("cluster", "api", "pub"):
            _check_endpoint(key, getattr(self, key))
        _check_endpoint("batch_pub", self.batches)
        if self.batches == self.pub:
            raise ConfigError("batch_pub must not be the pub endpoint")
        for node, seed in map(_split_seed, self.seeds):
            _check_endpoint("seed", seed)
            if is_wildcard(seed):
                raise ConfigError(f"seed {seed!r} must name a host and port to dial")
            if self.curve and not node:
                raise ConfigError(
                    f"seed {seed!r}: with CURVE on, write each seed NAME@ENDPOINT, NAME being "
                    "the node whose key is expected there"
                )
        self._check_curve()
        if self.advertise is not None:
            _check_endpoint("advertise", self.advertise)
        if is_wildcard(self.advertised):
            raise ConfigError(
                "cluster binds a wildcard address or port: set advertise to the endpoint "
                "peers should dial, e.g. tcp://10.0.0.5:7710"
            )
        if self.metrics is not None:
            host, _, port = self.metrics.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"metrics {self.metrics!r} must be HOST:PORT, e.g. 127.0.0.1:9712"
                )
        if self.peer_timeout < 3 * self.heartbeat_interval:
            raise ConfigError("peer_timeout must be at least 3 heartbeat intervals")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError("probe_timeout must be positive and shorter than probe_interval")
        return self

    def _check_curve(self) -> None:
        if (self.curve_secret_key is None) != (self.curve_peers is None):
            raise ConfigError("curve_secret_key and curve_peers go together: set both or neither")
        if self.curve_clients is not None and not self.curve:
            raise ConfigError("curve_clients needs curve_secret_key: the node's key serves both")
        if self.permissions is not None and self.curve_clients is None:
            raise ConfigError("permissions needs curve_clients: clients are known by their keys")
        self.client_permissions()
        if not self.curve:
            return
        self.client_keys()
        keys = self.keys()
        if self.node_id != keys.own.node:
            raise ConfigError(
                f"node_id {self.node_id!r} is not the node named in its key "
                f"{self.curve_secret_key} ({keys.own.node!r}); leave node_id unset"
            )

    def client_permissions(self) -> Permissions | None:
        """The per-client permissions (``permissions``), read from disk, or None."""
        if self.permissions is None:
            return None
        try:
            return Permissions.parse(tomllib.loads(Path(self.permissions).read_text()))
        except OSError as exc:
            raise ConfigError(
                f"cannot read permissions {self.permissions}: {exc.strerror}"
            ) from None
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise ConfigError(f"permissions {self.permissions}: {exc}") from None


ENV_PREFIX = "ZDPS_"  # ZDPS_NODE_ID=a sets node_id; ZDPS_SEEDS takes a comma-separated list


GATEWAY_TABLE = "gateway"  # a table of the same file that zdps gateway reads


def gather(
    path: Path | None, overrides: dict[str, Any], environ: Mapping[str, str] = os.environ
) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings given, as given, and where each came from: a flag beats the
    environment (``ZDPS_NAME``), which beats the TOML file. A flag that was not given is
    None (or, repeatable, empty). ConfigError if the file cannot be read or names keys
    that are not settings."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        values.pop(GATEWAY_TABLE, None)  # the gateway's own settings (zdps gateway)
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ConfigError(f"{path}: unknown configuration key(s): {', '.join(unknown)}")
    sources = dict.fromkeys(values, f"file {path}")
    for setting in SETTINGS:
        variable = ENV_PREFIX + setting.name.upper()
        if variable in environ:
            values[setting.name] = _from_environment(setting, environ[variable])
            sources[setting.name] = f"environment {variable}"
    given = {key: value for key, value in overrides.items() if value is not None and value != ()}
    unknown = sorted(set(given) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
    for key, value in given.items():
        values[key] = value
        sources[key] = f"flag {BY_NAME[key].flag}"
    return values, sources


def load(
    path: Path | None, overrides: dict[str, Any], environ: Mapping[str, str] = os.environ
) -> Config:
    """The configuration of a node: defaults, then the TOML file, the environment and
    the flags (``gather``), checked (ConfigError says what cannot work)."""
    return _made(gather(path, overrides, environ)[0]).check()


def problems(
    path: Path | None, overrides: dict[str, Any], environ: Mapping[str, str] = os.environ
) -> list[str]:
    """Everything wrong with a configuration (``zdps config check``): each bad value with
    its key and why, then, if each key is fine alone, what does not work together."""
    try:
        values, _ = gather(path, overrides, environ)
    except ConfigError as exc:
        return [str(exc)]
    found = []
    for key, value in values.items():
        try:
            BY_NAME[key].parse(value)
        except ValueError as exc:
            found.append(str(exc))
    if not found:
        try:
            _made(values).check()
        except ConfigError as exc:
            found.append(str(exc))
    return found


def _made(values: dict[str, Any]) -> Config:
    config = Config()
    for key, value in values.items():
        setattr(config, key, value)  # as given: check() converts it or says why not
    secret = values.get("curve_secret_key")
    if "node_id" not in values and isinstance(secret, str):
        with contextlib.suppress(KeyFileError):  # check() says what is wrong with it
            config.node_id = read_key(Path(secret)).node
    return config


def _from_environment(setting: Setting, text: str) -> Any:
    """An environment variable's text as the setting's type, where it reads as one
    (else as given: ``parse`` says why it is not)."""
    if setting.type is list:
        return [part for part in text.replace(",", " ").split() if part]
    if setting.type in (int, float):
        with contextlib.suppress(ValueError):
            return setting.type(text)
    return text


def core_config(config: Config) -> CoreConfig:
    """The protocol cores' share of the settings: each one CoreConfig has a field for."""
    shared = [f.name for f in fields(CoreConfig) if f.name in BY_NAME]
    return CoreConfig(**{name: getattr(config, name) for name in shared})


def _split_seed(seed: str) -> tuple[str, str]:
    """``NAME@ENDPOINT`` as (NAME, ENDPOINT); a plain endpoint as ("", ENDPOINT)."""
    node, at, endpoint = seed.partition("@")
    if at and "://" not in node:
        return node, endpoint
    return "", seed


def _check_endpoint(key: str, endpoint: str) -> None:
    problem = endpoint_problem(endpoint)
    if problem:
        raise ConfigError(f"{key} {endpoint!r} {problem}")


def node_info(
    config: Config,
    cluster: zmq.Socket,
    api: zmq.Socket,
    pub: zmq.Socket,
    batch_pub: zmq.Socket,
    expansion: str,
) -> dict[str, Any]:
    """What ``info`` tells clients of this node: its version and security, and the
    endpoints its sockets are bound to, written so that a client can dial them
    (a wildcard host becomes the advertised one)."""
    cluster_host = host(config.advertised) or "127.0.0.1"

    def bound(sock: zmq.Socket) -> str:
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    return {
        "version": __version__,
        "pid": os.getpid(),
        "expansion": expansion,  # the raw PUB's loop: compiled or python
        "cluster_security": "curve" if config.curve else "none",
        "client_security": "curve" if config.curve_clients else "none",
        "endpoints": {
            "cluster": bound(cluster),
            "advertise": config.advertised,
            "api": connectable(bound(api), cluster_host),
            "pub": connectable(bound(pub), cluster_host),
            "batch_pub": connectable(bound(batch_pub), cluster_host),
        },
    }
