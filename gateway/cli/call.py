"""`spean call`: call a service through a consumer endpoint, JSON in and JSON out.

An application developer's first call, and an operator's check that a new
service answers, without writing a client or installing grpcurl::

    spean call --config moh/server.yaml --service KH/GOV/MPWT/vehicles \\
        /vehicles.v1.VehicleRegistry/GetVehicle '{"plate": "PP-2A-1234"}'

The endpoint comes from ``--endpoint HOST:PORT`` or from a security
server's configuration (``--config``: its consumer endpoint, and its only
client when it has one). The message types come from ``--descriptor-set``
or, by default, from the consumer endpoint's reflection, which answers from
the descriptors the provider published with the authority (the signed global
configuration; gateway/server/reflection.py). The request is JSON (the
argument, ``-d @FILE`` or ``-d -`` for standard input), in the protobuf JSON
mapping.

Output: each response message as one line of JSON on standard output (one
line per message of a stream), fields under their proto names; the exchange
id on standard error as ``exchange-id: ...``. A gRPC error is printed on
standard error as ``STATUS: message`` and the command exits with 64 plus the
status code's number (as grpcurl does), so scripts can tell the statuses
apart; a local mistake (bad JSON, unknown method) exits 1.

``--wait DURATION`` retries, until it runs out, while the service is not yet
known to the consumer (its configuration not refreshed yet: reflection says
NOT_FOUND) or the provider is unavailable (its server still starting): what
a new member sees for a few seconds after admission. Once the method is
known, only UNAVAILABLE is retried: a NOT_FOUND then is the provider's
answer (no such row), not a delay. Every attempt that reaches the consumer
is an exchange and is in its audit log. A consumer endpoint that cannot be
reached at all is named with what to check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2

from spean.gateway import errors
from spean.gateway.cli.durations import parse_duration
from spean.gateway.config import split_address
from spean.gateway.errors import ConfigError, InvalidArgument, NotFound, SpeanError
from spean.gateway.files.config import load_config
from spean.gateway.identifiers import SubsystemId, parse_method
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE, USER
from spean.gateway.server.reflection import build_pool

EXIT_RPC_BASE = 64
"""A gRPC error exits with this plus the status code's number (grpcurl's convention)."""
_REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
_RETRY_PAUSE = 0.5
# What --wait waits out: a consumer not refreshed yet (finding the method), a provider
# still starting (finding the method and calling it).
_RETRIED_FINDING = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
_RETRIED_CALLING = (grpc.StatusCode.UNAVAILABLE,)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="call a service through a consumer endpoint, JSON in and out",
        description="Call METHOD of --service as --client through a consumer endpoint;"
        " each response message is printed as a line of JSON, the exchange id on stderr.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", help="the consumer endpoint, HOST:PORT")
    where.add_argument(
        "--config", type=Path, help="a security server's YAML: call its consumer endpoint"
    )
    parser.add_argument("--client", help="the calling subsystem (default: --config's only one)")
    parser.add_argument("--service", required=True, help="the provider subsystem")
    parser.add_argument("--user", help="the end user on whose behalf the call is made")
    parser.add_argument("--purpose", help="the case or legal basis of the call")
    parser.add_argument(
        "--descriptor-set", type=Path, help="a FileDescriptorSet instead of reflection"
    )
    parser.add_argument("--ca", type=Path, help="CA certificate of a TLS consumer endpoint")
    parser.add_argument("--cert", type=Path, help="client certificate (with --ca and --key)")
    parser.add_argument("--key", type=Path, help="client private key (with --ca and --cert)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="the call's deadline in seconds (default 30)"
    )
    parser.add_argument(
        "--wait",
        default="0s",
        help="retry for this long while the service is not known yet or unavailable"
        " (e.g. 30s; default: no retry)",
    )
    parser.add_argument("-d", "--data", help="the request: JSON, @FILE, or - for stdin")
    parser.add_argument("method", help="/package.Service/Method (or package.Service.Method)")
    parser.add_argument("json", nargs="?", help="the request as JSON (default {})")
    parser.set_defaults(func=cmd_call)


def cmd_call(args: argparse.Namespace) -> int:
    method = normalise_method(args.method)
    endpoint, client = _target(args)
    service = str(SubsystemId.parse(args.service))
    headers: list[tuple[str, str | bytes]] = [(CLIENT, client), (SERVICE, service)]
    headers += [(USER, args.user)] if args.user else []
    headers += [(PURPOSE, args.purpose)] if args.purpose else []
    text = _request_text(args)
    deadline = time.monotonic() + parse_duration(args.wait).total_seconds()
    with _channel(endpoint, args) as channel:
        descriptor = _until(
            deadline,
            lambda: find_method(channel, headers, method, args.descriptor_set, endpoint=endpoint),
        )
        request_type = _message_class(descriptor.input_type)
        response_type = _message_class(descriptor.output_type)
        try:
            request = json_format.Parse(text, request_type())
        except json_format.ParseError as exc:
            raise InvalidArgument(
                f"the request is not a {descriptor.input_type.full_name} in JSON: {exc}"
            ) from exc
        while True:
            failure = _invoke(channel, method, descriptor, request, response_type, headers, args)
            if failure is None:
                return 0
            code, details = failure
            left = deadline - time.monotonic()
            if code not in _RETRIED_CALLING or left <= 0:
                print(f"{code.name}: {details}", file=sys.stderr)
                return EXIT_RPC_BASE + code.value[0]
            print(
                f"{code.name}: {details}; retrying for {left:.0f} s more (--wait)", file=sys.stderr
            )
            time.sleep(_RETRY_PAUSE)


def normalise_method(text: str) -> str:
    """``/pkg.Service/Method`` from that, ``pkg.Service/Method`` or ``pkg.Service.Method``."""
    path = text.strip().lstrip("/")
    if "/" not in path and "." in path:
        service, _, name = path.rpartition(".")
        path = f"{service}/{name}"
    return parse_method(f"/{path}")


def find_method(
    channel: grpc.Channel,
    headers: Sequence[tuple[str, str | bytes]],
    method: str,
    descriptor_set: Path | None,
    *,
    endpoint: str = "the consumer endpoint",
) -> MethodDescriptor:
    """The method's descriptor, from `descriptor_set` or the reflection of `endpoint`."""
    service_name, _, name = method[1:].partition("/")
    if descriptor_set is not None:
        try:
            data = descriptor_set.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {descriptor_set}: {exc.strerror}") from exc
        where = str(descriptor_set)
    else:
        service_id = next((v for k, v in headers if k == SERVICE), "")
        data = _reflect(channel, headers, service_name, str(service_id), endpoint)
        where = f"the descriptors the consumer endpoint reflects for {service_id!s}"
    pool, _ = build_pool(data, where)
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise NotFound(f"{where} hold no service {service_name}") from None
    found = service.methods_by_name.get(name)
    if found is None:
        known = ", ".join(sorted(service.methods_by_name)) or "none"
        raise NotFound(f"service {service_name} has no method {name}; it has: {known}")
    if found.client_streaming:
        raise InvalidArgument(f"{method} is client-streaming, which Spean does not carry")
    return found


def _reflect(
    channel: grpc.Channel,
    headers: Sequence[tuple[str, str | bytes]],
    symbol: str,
    service: str,
    endpoint: str,
) -> bytes:
    """Ask the endpoint's reflection for the file defining `symbol` and its imports."""
    stream = channel.stream_stream(
        _REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    try:
        responses = list(stream(iter([request]), metadata=tuple(headers), timeout=10.0))
    except grpc.RpcError as exc:
        raise _rpc_error(exc, "reflection", endpoint) from exc
    files = descriptor_pb2.FileDescriptorSet()
    for response in responses:
        if response.HasField("error_response"):
            raise NotFound(
                f"{service} describes no service {symbol}"
                f" (reflection: {response.error_response.error_message})"
            )
        for blob in response.file_descriptor_response.file_descriptor_proto:
            files.file.add().ParseFromString(blob)
    return files.SerializeToString()


def _invoke(
    channel: grpc.Channel,
    method: str,
    descriptor: MethodDescriptor,
    request: Message,
    response_type: type[Message],
    headers: Sequence[tuple[str, str | bytes]],
    args: argparse.Namespace,
) -> tuple[grpc.StatusCode, str] | None:
    """Make the call and print its answers and exchange id; None on success, else the
    status and its message."""
    serialize, deserialize = _serialize, response_type.FromString
    trailing: Sequence[tuple[str, str | bytes]] = ()
    try:
        if descriptor.server_streaming:
            stream = channel.unary_stream(
                method, request_serializer=serialize, response_deserializer=deserialize
            )
            responses = stream(request, metadata=tuple(headers), timeout=args.timeout)
            try:
                for message in responses:
                    _print(message)
            finally:
                trailing = responses.trailing_metadata() or ()
        else:
            unary = channel.unary_unary(
                method, request_serializer=serialize, response_deserializer=deserialize
            )
            message, outcome = unary.with_call(
                request, metadata=tuple(headers), timeout=args.timeout
            )
            trailing = outcome.trailing_metadata() or ()
            _print(message)
    except grpc.RpcError as exc:
        failed: grpc.Call = exc  # type: ignore[assignment]  # a failed call is both
        _print_exchange(failed.trailing_metadata() or ())
        return failed.code(), failed.details() or ""
    _print_exchange(trailing)
    return None


def _until(deadline: float, attempt: Callable[[], MethodDescriptor]) -> MethodDescriptor:
    """`attempt()` until it succeeds, or until `deadline` while it says not found or down."""
    while True:
        try:
            return attempt()
        except SpeanError as exc:
            retry = exc.code in _RETRIED_FINDING
            if not retry or time.monotonic() >= deadline:
                raise
        time.sleep(_RETRY_PAUSE)


def _target(args: argparse.Namespace) -> tuple[str, str]:
    if args.endpoint is not None:
        split_address_or_fail(args.endpoint)
        if not args.client:
            raise InvalidArgument("give --client: the calling subsystem")
        return args.endpoint, str(SubsystemId.parse(args.client))
    config = load_config(args.config)
    if config.consumer is None:
        raise ConfigError(f"{args.config} has no consumer endpoint (consumer: in the file)")
    if config.consumer.tls is not None and args.ca is None:
        raise InvalidArgument(
            f"the consumer endpoint of {args.config} speaks TLS (consumer.tls): give --ca (the"
            " CA of its certificate) and, for a registered client certificate, --cert and --key"
        )
    host, port = split_address(config.consumer.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    clients = [c.subsystem for c in config.consumer.clients]
    if args.client:
        return endpoint, str(SubsystemId.parse(args.client))
    if len(clients) != 1:
        raise InvalidArgument(f"give --client: {args.config} has {', '.join(clients)}")
    return endpoint, clients[0]


def split_address_or_fail(address: str) -> None:
    try:
        split_address(address)
    except ValueError as exc:
        raise InvalidArgument(f"--endpoint: {exc}") from None


def _request_text(args: argparse.Namespace) -> str:
    if args.data is not None and args.json is not None:
        raise InvalidArgument("give the request once: as the argument or with -d, not both")
    text = args.data if args.data is not None else args.json
    if text is None:
        return "{}"
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the request {path}: {exc.strerror}") from exc
    return str(text)


def _channel(endpoint: str, args: argparse.Namespace) -> grpc.Channel:
    if args.ca is None:
        if args.cert is not None or args.key is not None:
            raise InvalidArgument("--cert and --key need --ca (a TLS consumer endpoint)")
        return grpc.insecure_channel(endpoint)
    if (args.cert is None) != (args.key is None):
        raise InvalidArgument("give both --cert and --key, or neither")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.ca),
        private_key=_read(args.key) if args.key else None,
        certificate_chain=_read(args.cert) if args.cert else None,
    )
    return grpc.secure_channel(endpoint, credentials)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _message_class(descriptor: Descriptor) -> type[Message]:
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _print(message: Message) -> None:
    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    print(json.dumps(document, ensure_ascii=False), flush=True)


def _print_exchange(trailing: Sequence[tuple[str, str | bytes]]) -> None:
    for key, value in trailing:
        if key == EXCHANGE_ID:
            shown = value.decode() if isinstance(value, bytes) else value
            print(f"exchange-id: {shown}", file=sys.stderr, flush=True)


def _rpc_error(exc: grpc.RpcError, what: str, endpoint: str) -> SpeanError:
    """A failed reflection call as the error tree's error of the same status."""
    call: grpc.Call = exc  # type: ignore[assignment]
    code, details = call.code(), call.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and details.startswith("failed to connect"):
        # Nothing answered at all (the server's own UNAVAILABLE has its own words).
        return errors.Unavailable(
            f"cannot reach the consumer endpoint {endpoint} ({details.rsplit(': ', 1)[-1]}):"
            " is its security server running (spean server run --config ...)? Check"
            " --endpoint, or consumer.listen in --config"
        )
    for cls in (
        errors.NotFound,
        errors.Unavailable,
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.InvalidArgument,
        errors.DeadlineExceeded,
    ):
        if cls.code is code:
            return cls(f"{what}: {details}")
    return errors.FailedPrecondition(f"{what}: {code.name}: {details}")


__all__ = ["EXIT_RPC_BASE", "cmd_call", "find_method", "normalise_method", "register"]
