"""The location of a NATS JetStream event store: ``nats://HOST:PORT?prefix=NAME``.

Pure: parsed when the configuration is checked, without the NATS client
(the optional `nats` extra), which only `eventstore.nats` imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from spean.gateway.errors import ConfigError

_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class NatsLocation:
    """A parsed ``nats://`` event store location."""

    servers: str
    prefix: str
    replicas: int
    display: str


def parse_nats_url(location: str) -> NatsLocation:
    """The broker, prefix and replicas of a ``nats://`` or ``tls://`` URL, else ConfigError."""
    parts = urlsplit(location)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ConfigError(
            f"event store URL {location!r} is not a NATS URL; use nats://HOST:PORT?prefix=NAME"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"prefix", "replicas"})
    if unknown:
        raise ConfigError(
            f"event store URL has unknown parameter(s) {', '.join(unknown)};"
            " the NATS engine takes prefix and replicas"
        )
    prefix = query.get("prefix", ["spean"])[-1]
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"event store prefix {prefix!r} must be 1 to 32 letters, digits, '_' or '-',"
            " starting with a letter"
        )
    replicas_text = query.get("replicas", ["1"])[-1]
    if not replicas_text.isdigit() or not 1 <= int(replicas_text) <= 5:
        raise ConfigError(f"event store replicas {replicas_text!r} must be 1 to 5")
    host = parts.hostname
    try:
        port = parts.port or 4222
    except ValueError:
        raise ConfigError(f"event store URL {location!r} has no valid port (1 to 65535)") from None
    netloc = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    servers = urlunsplit((parts.scheme, netloc, "", "", ""))
    if parts.username:
        auth = parts.username + (f":{parts.password}" if parts.password else "")
        servers = urlunsplit((parts.scheme, f"{auth}@{netloc}", "", "", ""))
    return NatsLocation(servers, prefix, int(replicas_text), f"{parts.scheme}://{netloc}")
