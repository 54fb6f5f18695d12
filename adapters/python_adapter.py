"""Python adapter: the IT team's own servicer class, run inside the security server.

```yaml
adapter:
  type: python
  servicer: mpwt_vehicles:VehicleRegistry         # module:Class implementing the servicer
  descriptor: spean.demo.vehicles.v1.vehicles_pb2 # generated _pb2 module of the .proto
  service: vehicles.v1.VehicleRegistry            # full protobuf service name
  python_path: [lib]                              # optional: folders holding both modules
```

The class is written exactly as for a plain gRPC server: it subclasses the
generated ``*Servicer`` of the ``_pb2_grpc`` module (or not) and each method
takes ``(request, context)`` and returns the response message, or, for a
server-streaming method, yields the messages. The adapter creates one
instance at `start()` (no arguments), shared by every call from many threads
at once, and calls its ``close()`` at `stop()` when it has one.

Theory of operation
-------------------
A call decodes the request with the method's input type, calls the method
with a `ServicerContext`, checks that what comes back is the output type and
serialises it. `context.abort(code, details)`, a status set with
`set_code`/`set_details`, or a `SpeanError` raised by the method becomes the
matching status for the caller, with the servicer's own message. Any other
exception is a bug in the servicer: the caller sees INTERNAL with the
exchange id, the operator's log holds the traceback.

Only the methods the class itself implements are published; the generated
base class's placeholders (which answer UNIMPLEMENTED) are left out, so the
security server answers NOT_FOUND for them and the metaservices do not list
them.

Invariants
----------
- The servicer never sees Spean's tokens or TLS; `invocation_metadata()`
  holds only ``spean-client``, ``spean-user``, ``spean-purpose`` and
  ``spean-exchange-id``.
- Statuses outside those an adapter may answer (base.py) become INTERNAL:
  a servicer cannot make a caller believe its own certificate failed.
- Methods run in the security server's threads and cannot be pre-empted; a
  deadline that passes while one runs turns its answer into
  DEADLINE_EXCEEDED, and a stream stops at the next message.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
import structlog
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from spean.adapters._spec import (
    check_keys,
    find_service,
    import_module,
    required_text,
    use_python_path,
)
from spean.adapters.base import Adapter, CallContext, MethodKind
from spean.gateway.errors import (
    ConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unavailable,
)

__all__ = ["PythonAdapter", "PythonConfig", "ServicerContext", "parse_python"]

log = structlog.get_logger("spean.adapters.python")

_KEYS = frozenset({"type", "servicer", "descriptor", "service", "python_path"})

# The statuses a servicer may answer with, and the error each becomes.
_ANSWERS: dict[grpc.StatusCode, Callable[[str], SpeanError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    # What the generated base class answers for a method left unimplemented.
    grpc.StatusCode.UNIMPLEMENTED: NotFound,
}
_ALLOWED_ERRORS = (
    NotFound,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    DeadlineExceeded,
    ResourceExhausted,
    FailedPrecondition,
    Internal,
)


@dataclass(frozen=True, slots=True)
class PythonConfig:
    """A checked `type: python` entry."""

    servicer: type
    servicer_name: str
    service: ServiceDescriptor
    implemented: tuple[MethodDescriptor, ...]
    where: str


def parse_python(spec: Mapping[str, Any], base_dir: Path, where: str) -> PythonConfig:
    """Check a `type: python` entry: import the servicer class and match it to the service."""
    check_keys(spec, _KEYS, where)
    servicer_name = required_text(spec, "servicer", where, "mpwt_vehicles:VehicleRegistry")
    module_name, sep, class_name = servicer_name.partition(":")
    if not sep or not module_name or not class_name.isidentifier():
        raise ConfigError(f"{where}.servicer: {servicer_name!r} must be module:Class")
    descriptor = required_text(spec, "descriptor", where, "vehicles.v1.vehicles_pb2")
    service_name = required_text(spec, "service", where, "vehicles.v1.VehicleRegistry")
    use_python_path(spec, base_dir, where)
    service = find_service(descriptor, service_name, where)
    module = import_module(module_name, f"{where}.servicer")
    servicer = getattr(module, class_name, None)
    if not inspect.isclass(servicer):
        raise ConfigError(f"{where}.servicer: module {module_name} defines no class {class_name}")
    implemented = tuple(
        method
        for method in service.methods
        if not method.client_streaming and _implements(servicer, method.name)
    )
    if not implemented:
        names = ", ".join(m.name for m in service.methods)
        raise ConfigError(
            f"{where}.servicer: {servicer_name} implements none of the methods of"
            f" {service.full_name} ({names})"
        )
    missing = [m.name for m in service.methods if m not in implemented]
    if missing:
        log.warning("python.methods_not_published", servicer=servicer_name, methods=missing)
    return PythonConfig(servicer, servicer_name, service, implemented, where)


def _implements(servicer: type, name: str) -> bool:
    """True when `servicer` has method `name` of its own, not the generated placeholder."""
    for owner in servicer.__mro__:
        if name in vars(owner):
            return callable(vars(owner)[name]) and not owner.__module__.endswith("_pb2_grpc")
    return False


class ServicerContext:
    """The part of `grpc.ServicerContext` a servicer behind Spean can use.

    `time_remaining()` is None without a deadline. `invocation_metadata()`
    holds the ``spean-*`` facts of the call. Initial and trailing metadata a
    servicer sets are accepted and dropped: only the signed body crosses the
    federation. `call` gives the whole `CallContext`.
    """

    __slots__ = ("_callbacks", "_code", "_details", "_done", "call")

    def __init__(self, call: CallContext) -> None:
        self.call = call
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._callbacks: list[Callable[[], None]] = []
        self._done = False

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        """End the call with `code`; the caller sees `details`."""
        self._code, self._details = code, details
        raise _status_error(code, details, self.call)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def time_remaining(self) -> float | None:
        remaining = self.call.remaining()
        return None if remaining is None else max(remaining, 0.0)

    def is_active(self) -> bool:
        return not self._done and not self.call.expired()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.call.caller_metadata()

    def peer(self) -> str:
        """The authenticated calling subsystem, e.g. ``spean:KH/GOV/MOH/nhis``."""
        return f"spean:{self.call.client}"

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run `callback` when the call ends, however it ends."""
        if self._done:
            return False
        self._callbacks.append(callback)
        return True

    def send_initial_metadata(self, metadata: object) -> None:
        del metadata  # dropped: see the class docstring

    def set_trailing_metadata(self, metadata: object) -> None:
        del metadata

    def _finish(self) -> None:
        self._done = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the servicer's code; one failing callback must not stop the rest
                log.exception("python.callback_failed", exchange_id=self.call.exchange_id)

    def _status(self) -> SpeanError | None:
        """The error a status set with `set_code` stands for, or None when none was set."""
        if self._code is None or self._code is grpc.StatusCode.OK:
            return None
        return _status_error(self._code, self._details, self.call)


@dataclass(frozen=True, slots=True)
class _Method:
    kind: MethodKind
    name: str
    request_class: type[Message]
    response_class: type[Message]


class PythonAdapter(Adapter):
    """Runs an IT team's servicer class in-process."""

    def __init__(self, config: PythonConfig) -> None:
        self._config = config
        service = config.service
        self._methods = {
            f"/{service.full_name}/{m.name}": _Method(
                MethodKind.SERVER_STREAMING if m.server_streaming else MethodKind.UNARY,
                m.name,
                message_factory.GetMessageClass(m.input_type),
                message_factory.GetMessageClass(m.output_type),
            )
            for m in config.implemented
        }
        self._servicer: object | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base_dir: Path, where: str) -> PythonAdapter:
        return cls(parse_python(spec, base_dir, where))

    @property
    def config(self) -> PythonConfig:
        return self._config

    def methods(self) -> Mapping[str, MethodKind]:
        return {path: method.kind for path, method in self._methods.items()}

    def services(self) -> Sequence[ServiceDescriptor]:
        return (self._config.service,)

    def start(self) -> None:
        if self._servicer is not None:
            return
        try:
            self._servicer = self._config.servicer()
        except SpeanError:
            raise  # the servicer's own ConfigError or Unavailable says what is wrong
        except Exception as exc:  # documented boundary: the IT team's constructor
            log.exception("python.start_failed", servicer=self._config.servicer_name)
            raise ConfigError(
                f"{self._config.where}.servicer: {self._config.servicer_name}() failed: {exc!r}"
            ) from exc
        log.info(
            "python.started",
            servicer=self._config.servicer_name,
            service=self._config.service.full_name,
            methods=len(self._methods),
        )

    def stop(self) -> None:
        servicer, self._servicer = self._servicer, None
        close = getattr(servicer, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # documented boundary: stopping must go on
                log.exception("python.close_failed", servicer=self._config.servicer_name)

    # ---- calls

    def unary(self, ctx: CallContext, request: bytes) -> bytes:
        method, handler, message = self._prepare(ctx, MethodKind.UNARY, request)
        context = ServicerContext(ctx)
        try:
            response = self._run(ctx, context, lambda: handler(message, context))
            return self._serialise(ctx, method, response)
        finally:
            context._finish()

    def stream(self, ctx: CallContext, request: bytes) -> Iterator[bytes]:
        method, handler, message = self._prepare(ctx, MethodKind.SERVER_STREAMING, request)
        return self._relay(ctx, method, handler, message)

    def _relay(
        self, ctx: CallContext, method: _Method, handler: Callable[..., Any], message: Message
    ) -> Iterator[bytes]:
        context = ServicerContext(ctx)
        responses: Any = None
        end = object()
        try:
            responses = self._run(ctx, context, lambda: iter(handler(message, context)))
            step = functools.partial(next, responses, end)
            while True:
                if ctx.expired():
                    raise DeadlineExceeded(f"deadline exceeded while streaming {ctx.method}")
                item = self._run(ctx, context, step)
                if item is end:
                    if ctx.expired():  # a servicer watching is_active() stops short: not OK
                        raise DeadlineExceeded(f"deadline exceeded while streaming {ctx.method}")
                    return
                yield self._serialise(ctx, method, item)
        finally:
            close = getattr(responses, "close", None)
            if callable(close):  # the caller went away or the stream failed
                close()
            context._finish()

    # ---- helpers

    def _prepare(
        self, ctx: CallContext, kind: MethodKind, request: bytes
    ) -> tuple[_Method, Callable[..., Any], Message]:
        method = self._methods.get(ctx.method)
        if method is None:
            raise NotFound(f"method {ctx.method} is not served by {self._config.service.full_name}")
        if method.kind is not kind:
            raise Internal(f"method {ctx.method} is {method.kind.value}, not {kind.value}")
        if self._servicer is None:
            raise Unavailable(f"{self._config.service.full_name} is not serving (not started)")
        if ctx.expired():
            raise DeadlineExceeded(f"deadline exceeded before {ctx.method} was called")
        try:
            message = method.request_class.FromString(request)
        except DecodeError as exc:
            raise InvalidArgument(
                f"request is not a valid {method.request_class.DESCRIPTOR.full_name} message"
            ) from exc
        handler: Callable[..., Any] = getattr(self._servicer, method.name)
        return method, handler, message

    def _run(self, ctx: CallContext, context: ServicerContext, step: Callable[[], Any]) -> Any:
        """Run servicer code; translate what it raises or the status it set."""
        try:
            result = step()
        except SpeanError as exc:
            if isinstance(exc, _ALLOWED_ERRORS):
                raise
            raise _status_error(exc.code, exc.message, ctx) from exc
        except Exception as exc:  # documented boundary: the IT team's code
            status = context._status()
            if status is not None:  # gRPC semantics: a status set before raising wins
                log.info(
                    "python.status_with_exception",
                    exchange_id=ctx.exchange_id,
                    method=ctx.method,
                    code=status.code.name,
                    error=repr(exc),
                )
                raise status from exc
            log.exception(
                "python.servicer_failed",
                exchange_id=ctx.exchange_id,
                method=ctx.method,
                servicer=self._config.servicer_name,
            )
            raise Internal(
                f"the provider's service failed; its operator can find exchange"
                f" {ctx.exchange_id} in the log"
            ) from exc
        status = context._status()
        if status is not None:
            raise status
        return result

    def _serialise(self, ctx: CallContext, method: _Method, response: object) -> bytes:
        if ctx.expired():
            raise DeadlineExceeded(f"deadline exceeded while {ctx.method} was running")
        if not isinstance(response, method.response_class):
            log.error(
                "python.wrong_response_type",
                exchange_id=ctx.exchange_id,
                method=ctx.method,
                expected=method.response_class.DESCRIPTOR.full_name,
                got=type(response).__name__,
            )
            raise Internal(
                f"the provider's service answered {ctx.method} with the wrong message type;"
                f" its operator can find exchange {ctx.exchange_id} in the log"
            )
        return response.SerializeToString()


def _status_error(code: grpc.StatusCode, details: str, call: CallContext) -> SpeanError:
    answer = _ANSWERS.get(code)
    if answer is not None:
        return answer(details or f"{call.method} answered {code.name}")
    log.error(
        "python.status_not_allowed",
        exchange_id=call.exchange_id,
        method=call.method,
        code=code.name,
        details=details,
    )
    return Internal(
        f"the provider's service answered {code.name}; its operator can find exchange"
        f" {call.exchange_id} in the log"
    )
