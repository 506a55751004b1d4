"""Daemon configuration: defaults, the TOML file, command-line flags, and their checks.

Precedence: a flag given on the command line beats the config file, which beats the
default. Every key of the TOML file has the same name as its flag (dashes become
underscores); ``seeds`` is a list (``--seed`` may be repeated).
"""

from __future__ import annotations

import math
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zdps.endpoints import endpoint_problem, is_wildcard
from zdps.wire.limits import MAX_HISTORY, MAX_HISTORY_TTL

DEFAULT_CLUSTER = "tcp://127.0.0.1:7710"
DEFAULT_API = "tcp://127.0.0.1:7711"
DEFAULT_PUB = "tcp://127.0.0.1:7712"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_PAYLOAD_LIMIT = 16 * 1024 * 1024  # well below the daemon's frame budget


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which key and why."""


@dataclass(slots=True)
class Config:
    """Everything ``zdps start`` needs to run one node."""

    node_id: str = field(default_factory=socket.gethostname)
    cluster: str = DEFAULT_CLUSTER
    advertise: str | None = None
    seeds: list[str] = field(default_factory=list)
    api: str = DEFAULT_API
    pub: str = DEFAULT_PUB
    scope: str = "default"
    log_level: str = "info"
    heartbeat_interval: float = 0.2
    peer_timeout: float = 2.0
    probe_interval: float = 0.2
    probe_timeout: float = 0.1
    indirect_probes: int = 3
    suspicion_mult: float = 3.0
    suspicion_max_mult: float = 4.0
    max_payload: int = 1024 * 1024
    pub_hwm: int = 100_000
    history: int = 1000
    history_ttl: float = 3600.0
    replicas: int = 1

    @property
    def advertised(self) -> str:
        """The endpoint peers dial to reach this node's cluster socket."""
        return self.advertise or self.cluster

    def check(self) -> Config:
        """Raise ConfigError for anything that cannot work; return self otherwise."""
        if not self.node_id or not self.node_id.isprintable() or len(self.node_id) > 128:
            raise ConfigError("node_id must be 1-128 printable characters")
        if not self.scope or not self.scope.isprintable():
            raise ConfigError("scope must be a non-empty printable name")
        for key in ("cluster", "api", "pub"):
            _check_endpoint(key, getattr(self, key))
        for seed in self.seeds:
            _check_endpoint("seed", seed)
            if is_wildcard(seed):
                raise ConfigError(f"seed {seed!r} must name a host and port to dial")
        if self.advertise is not None:
            _check_endpoint("advertise", self.advertise)
        if is_wildcard(self.advertised):
            raise ConfigError(
                "cluster binds a wildcard address or port: set advertise to the endpoint "
                "peers should dial, e.g. tcp://10.0.0.5:7710"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        for key in ("heartbeat_interval", "peer_timeout", "probe_interval", "probe_timeout"):
            if not math.isfinite(getattr(self, key)) or getattr(self, key) > 3600:
                raise ConfigError(f"{key} must be a finite number of seconds (at most 3600)")
        if self.heartbeat_interval <= 0:
            raise ConfigError("heartbeat_interval must be positive")
        if self.peer_timeout < 3 * self.heartbeat_interval:
            raise ConfigError("peer_timeout must be at least 3 heartbeat intervals")
        if not 0 < self.probe_timeout < self.probe_interval:
            raise ConfigError("probe_timeout must be positive and shorter than probe_interval")
        if not 0 <= self.indirect_probes <= 16:
            raise ConfigError("indirect_probes must be 0 to 16")
        for key in ("suspicion_mult", "suspicion_max_mult"):
            if not 1 <= getattr(self, key) <= 1000:
                raise ConfigError(f"{key} must be 1 to 1000")
        if not 1 <= self.max_payload <= MAX_PAYLOAD_LIMIT:
            raise ConfigError(f"max_payload must be 1 to {MAX_PAYLOAD_LIMIT} bytes")
        if self.pub_hwm < 0:
            raise ConfigError("pub_hwm must not be negative")
        if not 0 <= self.history <= MAX_HISTORY:
            raise ConfigError(f"history must be 0 to {MAX_HISTORY} messages per topic")
        if not (math.isfinite(self.history_ttl) and 0 < self.history_ttl <= MAX_HISTORY_TTL):
            raise ConfigError(f"history_ttl must be over 0 and at most {MAX_HISTORY_TTL:g} s")
        if not 0 <= self.replicas <= 8:
            raise ConfigError("replicas must be 0 to 8")
        return self


def load(path: Path | None, overrides: dict[str, Any]) -> Config:
    """Build the configuration from an optional TOML file and the flags that were given."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
    config = Config()
    for key, value in values.items():
        setattr(config, key, _coerce(key, value, getattr(config, key)))
    config.log_level = config.log_level.lower()
    return config.check()


def _coerce(key: str, value: Any, default: Any) -> Any:
    if key == "seeds":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
            raise ConfigError("seeds must be a list of endpoints")
        return list(value)
    if isinstance(default, bool) or default is None or isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string")
        return value
    kind = type(default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number")
    if kind is int and value != int(value):
        raise ConfigError(f"{key} must be a whole number")
    return kind(value)


def _check_endpoint(key: str, endpoint: str) -> None:
    problem = endpoint_problem(endpoint)
    if problem:
        raise ConfigError(f"{key} {endpoint!r} {problem}")
