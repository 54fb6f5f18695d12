"""gRPC pass-through adapter: publish an existing internal gRPC service as it is.

```yaml
adapter:
  type: grpc
  target: vehicles.mpwt.internal:50051          # host:port of the internal service
  descriptor: spean.demo.vehicles.v1.vehicles_pb2 # generated _pb2 module of its .proto
  service: vehicles.v1.VehicleRegistry          # full protobuf service name
  python_path: lib                              # optional: folders holding the module
  tls:                                          # optional: plaintext without it
    ca: internal-ca.pem                         # CA that issued the service's certificate
    certificate: spean-client.pem               # optional client certificate (mutual TLS)
    key: spean-client.key                       # its key, required with certificate
    server_name: vehicles.mpwt.internal         # optional: name to check in its certificate
```

Theory of operation
-------------------
The adapter holds one persistent channel to `target`, opened at `start()`,
and one generic multicallable per method with no (de)serialisers, so the
request and response bytes pass through untouched: the digests in the signed
tokens are over exactly what the internal service produced. The descriptor
is never used to decode a call; it tells the security server which methods
exist and their shapes (unary or server streaming), and gives data
minimisation and the metaservices the message types.

Invariants
----------
- The caller's deadline becomes the internal call's timeout; a call whose
  deadline has already passed is not forwarded.
- The internal service's status reaches the caller only as the SpeanError
  that matches it: NOT_FOUND, INVALID_ARGUMENT and PERMISSION_DENIED pass
  with the service's own message (an answer meant for callers); UNAVAILABLE
  and DEADLINE_EXCEEDED say so without naming the host; any other status is
  INTERNAL with a generic message. The full status goes to the operator's log
  with the exchange id.
- The calling subsystem, user, purpose and exchange id travel to the internal
  service as `spean-*` metadata, so its own logs can name them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor

from spean.adapters._spec import (
    check_keys,
    find_service,
    optional_file,
    required_text,
    use_python_path,
)
from spean.adapters.base import Adapter, CallContext, Health, MethodKind
from spean.gateway.errors import (
    ConfigError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SpeanError,
    Unavailable,
)

__all__ = [
    "CONNECT_SECONDS",
    "HEALTH_SECONDS",
    "GrpcPassthroughAdapter",
    "PassthroughConfig",
    "TlsOptions",
    "parse_passthrough",
]

log = structlog.get_logger("spean.adapters.grpc")

_C = TypeVar("_C")

CONNECT_SECONDS = 5.0
"""How long `start()` waits for the internal service to accept a connection."""
HEALTH_SECONDS = 1.0
"""How long a health check waits for the channel to be ready."""
RECONNECT_MAX_MS = 2000
"""Longest wait between reconnection attempts once the internal service is down."""
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Receive limit on the internal channel: the security server's own limit applies after."""
MAX_DETAILS = 512
"""The longest message of the internal service passed to callers, in characters."""

_KEYS = frozenset({"type", "target", "descriptor", "service", "tls", "python_path"})
_TLS_KEYS = frozenset({"ca", "certificate", "key", "server_name"})

# Statuses whose message is the internal service's answer to the caller.
_PASSED: dict[grpc.StatusCode, Callable[[str], SpeanError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS to the internal service: trusted roots, optional client identity (PEM bytes)."""

    ca_pem: bytes
    certificate_pem: bytes | None = None
    key_pem: bytes | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class PassthroughConfig:
    """A checked `type: grpc` entry; `where` names it in later errors."""

    target: str
    service: ServiceDescriptor
    tls: TlsOptions | None
    where: str


def parse_passthrough(spec: Mapping[str, Any], base_dir: Path, where: str) -> PassthroughConfig:
    """Check a `type: grpc` entry, import its descriptor and read its TLS files."""
    check_keys(spec, _KEYS, where)
    target = required_text(spec, "target", where, "vehicles.mpwt.internal:50051")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}.target: {target!r} must be host:port")
    descriptor = required_text(spec, "descriptor", where, "vehicles.v1.vehicles_pb2")
    service_name = required_text(spec, "service", where, "vehicles.v1.VehicleRegistry")
    use_python_path(spec, base_dir, where)
    service = find_service(descriptor, service_name, where)
    return PassthroughConfig(target, service, _parse_tls(spec.get("tls"), base_dir, where), where)


def _parse_tls(value: object, base_dir: Path, where: str) -> TlsOptions | None:
    if value is None:
        return None
    where = f"{where}.tls"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping with at least 'ca'")
    unknown = sorted(str(key) for key in value if key not in _TLS_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_TLS_KEYS))}"
        )
    ca = optional_file(value, "ca", base_dir, where)
    if ca is None:
        raise ConfigError(f"{where}.ca: required, the CA certificate (PEM) of the service")
    certificate = optional_file(value, "certificate", base_dir, where)
    key = optional_file(value, "key", base_dir, where)
    if (certificate is None) != (key is None):
        missing = "key" if key is None else "certificate"
        raise ConfigError(f"{where}.{missing}: a client certificate needs both certificate and key")
    for name, pem in (("ca", ca), ("certificate", certificate), ("key", key)):
        if pem is not None and b"-----BEGIN " not in pem:
            raise ConfigError(f"{where}.{name}: the file is not PEM")
    server_name = value.get("server_name")
    if server_name is not None and (not isinstance(server_name, str) or not server_name):
        raise ConfigError(f"{where}.server_name: must be a host name")
    return TlsOptions(ca, certificate, key, server_name)


class GrpcPassthroughAdapter(Adapter):
    """Forwards calls, bytes untouched, to an internal gRPC service."""

    def __init__(self, config: PassthroughConfig, *, connect_seconds: float = CONNECT_SECONDS):
        self._config = config
        self._connect_seconds = connect_seconds
        self._kinds = {
            f"/{config.service.full_name}/{m.name}": (
                MethodKind.SERVER_STREAMING if m.server_streaming else MethodKind.UNARY
            )
            for m in config.service.methods
            if not m.client_streaming
        }
        self._channel: grpc.Channel | None = None
        self._unary: dict[str, grpc.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._stream: dict[str, grpc.UnaryStreamMultiCallable[bytes, bytes]] = {}

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base_dir: Path, where: str
    ) -> GrpcPassthroughAdapter:
        return cls(parse_passthrough(spec, base_dir, where))

    @property
    def config(self) -> PassthroughConfig:
        return self._config

    def methods(self) -> Mapping[str, MethodKind]:
        return dict(self._kinds)

    def services(self) -> Sequence[ServiceDescriptor]:
        return (self._config.service,)

    # ---- life cycle

    def start(self) -> None:
        if self._channel is not None:
            return
        channel = self._open_channel()
        try:
            grpc.channel_ready_future(channel).result(timeout=self._connect_seconds)
        except grpc.FutureTimeoutError as exc:
            channel.close()
            log.error("grpc.start_failed", target=self._config.target, where=self._config.where)
            # The operator reads this at start-up: the target helps, callers never see it.
            raise Unavailable(
                f"{self._config.where}.target: the internal service at {self._config.target}"
                f" did not accept a connection within {self._connect_seconds:g} s"
                " (down, wrong address, or TLS refused: check tls)"
            ) from exc
        for path, kind in self._kinds.items():
            if kind is MethodKind.UNARY:
                self._unary[path] = channel.unary_unary(path)
            else:
                self._stream[path] = channel.unary_stream(path)
        self._channel = channel
        log.info(
            "grpc.started",
            target=self._config.target,
            service=self._config.service.full_name,
            methods=len(self._kinds),
            tls=self._config.tls is not None,
        )

    def stop(self) -> None:
        channel, self._channel = self._channel, None
        self._unary.clear()
        self._stream.clear()
        if channel is not None:
            channel.close()

    def health(self) -> Health:
        channel = self._channel
        if channel is None:
            return Health(ok=False, detail="not started")
        ready = grpc.channel_ready_future(channel)
        try:
            ready.result(timeout=HEALTH_SECONDS)
        except grpc.FutureTimeoutError:
            ready.cancel()
            return Health(ok=False, detail=f"no connection to {self._config.target}")
        return Health(ok=True, detail=f"connected to {self._config.target}")

    # ---- calls

    def unary(self, ctx: CallContext, request: bytes) -> bytes:
        call = self._callable(ctx, MethodKind.UNARY, self._unary)
        try:
            response: bytes = call(request, timeout=_timeout(ctx), metadata=_metadata(ctx))
        except grpc.RpcError as exc:
            raise self._translate(exc, ctx) from exc
        return response

    def stream(self, ctx: CallContext, request: bytes) -> Iterator[bytes]:
        call = self._callable(ctx, MethodKind.SERVER_STREAMING, self._stream)
        # Started now, so the internal call is under way before the first message is asked for.
        responses = call(request, timeout=_timeout(ctx), metadata=_metadata(ctx))
        return self._relay(ctx, responses)

    def _relay(self, ctx: CallContext, responses: Any) -> Iterator[bytes]:
        finished = False
        try:
            yield from responses
            finished = True
        except grpc.RpcError as exc:
            finished = True
            raise self._translate(exc, ctx) from exc
        finally:
            if not finished:  # the caller went away: stop the internal call too
                responses.cancel()

    # ---- helpers

    def _callable(self, ctx: CallContext, kind: MethodKind, table: Mapping[str, _C]) -> _C:
        known = self._kinds.get(ctx.method)
        if known is None:
            raise NotFound(f"method {ctx.method} is not served by {self._config.service.full_name}")
        if known is not kind:
            # The security server routes by methods(); a mismatch is a bug there.
            raise Internal(f"method {ctx.method} is {known.value}, not {kind.value}")
        call = table.get(ctx.method)
        if call is None:
            raise Unavailable(f"{self._config.service.full_name} is not serving (not started)")
        if ctx.expired():
            raise DeadlineExceeded(f"deadline exceeded before {ctx.method} was forwarded")
        return call

    def _translate(self, exc: grpc.RpcError, ctx: CallContext) -> SpeanError:
        code = _code(exc)
        details = _details(exc)
        fields = {
            "target": self._config.target,
            "method": ctx.method,
            "exchange_id": ctx.exchange_id,
            "code": code.name,
            "details": details,
        }
        passed = _PASSED.get(code)
        if passed is not None:
            log.info("grpc.internal_refused", **fields)
            return passed(details[:MAX_DETAILS] or f"{ctx.method} refused the request")
        service = self._config.service.full_name
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            log.warning("grpc.deadline_exceeded", **fields)
            return DeadlineExceeded(f"deadline exceeded while waiting for {ctx.method}")
        if code is grpc.StatusCode.UNAVAILABLE:
            log.error("grpc.internal_unavailable", **fields)
            return Unavailable(f"the internal service behind {service} is unavailable")
        log.error("grpc.internal_failed", **fields)
        return Internal(
            f"the internal service behind {service} failed; its operator can find"
            f" exchange {ctx.exchange_id} in the log"
        )

    def _open_channel(self) -> grpc.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Keep the connection warm so the first call after a quiet spell is not slower.
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # After an outage, try again soon: callers get UNAVAILABLE until the
            # channel reconnects, so the default backoff (up to 2 minutes) is too long.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
        ]
        tls = self._config.tls
        if tls is None:
            return grpc.insecure_channel(self._config.target, options=options)
        if tls.server_name is not None:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca_pem,
            private_key=tls.key_pem,
            certificate_chain=tls.certificate_pem,
        )
        return grpc.secure_channel(self._config.target, credentials, options=options)


def _timeout(ctx: CallContext) -> float | None:
    remaining = ctx.remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded(f"deadline exceeded before {ctx.method} was forwarded")
    return remaining


def _metadata(ctx: CallContext) -> tuple[tuple[str, str], ...]:
    """Who is calling, for the internal service's own logs (printable ASCII only)."""
    # gRPC refuses non-ASCII text in plain headers; such a value stays in Spean's audit log.
    return tuple((k, v) for k, v in ctx.caller_metadata() if v.isascii() and v.isprintable())


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(exc, "code", None)
    value = code() if callable(code) else None
    return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    value = details() if callable(details) else None
    return value if isinstance(value, str) else ""
