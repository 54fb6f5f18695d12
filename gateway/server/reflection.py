"""gRPC server reflection on the consumer endpoint, describing remote providers.

An application's tools (grpcurl, Postman, evans) discover services through
reflection. A consumer endpoint has no services of its own beyond its
metaservices: what the application wants described is the provider's. So
reflection answers from the FileDescriptorSet that the provider subsystem
published with the authority, as carried in the signed global configuration:

- with a ``spean-service`` header (and a ``spean-client`` registered on this
  server, checked as for an exchange), ``list`` names the provider's services
  and ``describe`` returns its files;
- without it, reflection describes the consumer endpoint's own services
  (metaservices, health, reflection).

Invariants: nothing here calls the provider; a descriptor set is parsed into a
fresh `DescriptorPool` (never the process's default pool, which the server's
own generated code uses), built once per distinct set and cached by digest.
Both reflection protocol versions (v1 and v1alpha) share one wire format and
one implementation.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.reflection import ReflectionServicer

from spean.gateway import metadata
from spean.gateway.errors import FailedPrecondition, NotFound, SpeanError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId

REFLECTION_SERVICES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)

ClientCheck = Callable[[SubsystemId, grpc.ServicerContext], str]

_CACHE_SIZE = 64


def file_descriptor_set(*files: FileDescriptor) -> bytes:
    """A serialized FileDescriptorSet of `files` and everything they import.

    Files come dependencies first, as ``protoc --include_imports`` writes
    them, so any consumer can load them in order.
    """
    ordered: dict[str, FileDescriptor] = {}

    def visit(file: FileDescriptor) -> None:
        if file.name in ordered:
            return
        for dependency in file.dependencies:
            visit(dependency)
        ordered[file.name] = file

    for file in files:
        visit(file)
    out = descriptor_pb2.FileDescriptorSet()
    for file in ordered.values():
        file.CopyToProto(out.file.add())
    return out.SerializeToString()


def build_pool(data: bytes, what: str) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A descriptor pool loaded from a serialized FileDescriptorSet, and its service names.

    Files may come in any order; an import missing from the set is taken from
    the well-known types this process knows (google/protobuf/*.proto).
    Raises `FailedPrecondition` naming `what` if the set cannot be loaded.
    """
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except DecodeError as exc:
        raise FailedPrecondition(f"{what}: not a serialized FileDescriptorSet") from exc
    files = {file.name: file for file in fds.file}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in added:
            return
        if name in chain:
            raise FailedPrecondition(f"{what}: import cycle through {name}")
        proto = files.get(name)
        if proto is None:
            proto = _well_known(name, what)
        for dependency in proto.dependency:
            add(dependency, (*chain, name))
        try:
            pool.Add(proto)
        except (TypeError, ValueError, KeyError) as exc:
            raise FailedPrecondition(f"{what}: file {name} cannot be loaded: {exc}") from exc
        added.add(name)

    services: list[str] = []
    for file in fds.file:
        add(file.name, ())
        prefix = f"{file.package}." if file.package else ""
        services.extend(prefix + service.name for service in file.service)
    return pool, sorted(services)


def _well_known(name: str, what: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        known = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise FailedPrecondition(
            f"{what}: imports {name}, which the descriptor set does not include"
            " (publish it with protoc --include_imports)"
        ) from None
    proto = descriptor_pb2.FileDescriptorProto()
    known.CopyToProto(proto)
    return proto


class RemoteReflection:
    """Reflection servicer answering for the provider named by ``spean-service``."""

    def __init__(
        self,
        *,
        configuration: Callable[[], GlobalConfiguration],
        check_client: ClientCheck,
        local_services: Sequence[str],
        max_header_bytes: int = 1024,
    ) -> None:
        self._configuration = configuration
        self._check_client = check_client
        self._max_header_bytes = max_header_bytes  # limits.max_header_bytes, as for metaservices
        self._local = ReflectionServicer([*local_services, *REFLECTION_SERVICES])
        self._lock = threading.Lock()
        self._pools: OrderedDict[bytes, ReflectionServicer] = OrderedDict()

    def method_handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
        """Method handlers per service name, for `grpc.Server.add_registered_method_handlers`."""
        handler = grpc.stream_stream_rpc_method_handler(
            self._reflect,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        return {name: {"ServerReflectionInfo": handler} for name in REFLECTION_SERVICES}

    def _reflect(
        self,
        requests: Iterator[reflection_pb2.ServerReflectionRequest],
        context: grpc.ServicerContext,
    ) -> Iterable[reflection_pb2.ServerReflectionResponse]:
        try:
            servicer = self._servicer_for(context)
        except SpeanError as exc:
            context.abort(exc.code, exc.message)
        return servicer.ServerReflectionInfo(requests, context)  # type: ignore[no-any-return]

    def _servicer_for(self, context: grpc.ServicerContext) -> ReflectionServicer:
        headers = metadata.parse_meta_headers(context.invocation_metadata(), self._max_header_bytes)
        if headers.service is None:
            return self._local
        self._check_client(headers.require_client(), context)
        conf = self._configuration()
        subsystem = conf.subsystem(headers.service)
        if subsystem is None:
            raise NotFound(f"service subsystem {headers.service} is not in the federation")
        if not subsystem.file_descriptor_set:
            raise NotFound(
                f"{headers.service} published no protobuf descriptors with the authority;"
                " reflection cannot describe it"
            )
        return self._cached(subsystem.file_descriptor_set, str(headers.service))

    def _cached(self, data: bytes, service: str) -> ReflectionServicer:
        key = hashlib.sha256(data).digest()
        with self._lock:
            servicer = self._pools.get(key)
            if servicer is not None:
                self._pools.move_to_end(key)
                return servicer
        pool, names = build_pool(data, f"descriptors of {service} in the global configuration")
        servicer = ReflectionServicer(names, pool=pool)
        with self._lock:
            self._pools[key] = servicer
            while len(self._pools) > _CACHE_SIZE:
                self._pools.popitem(last=False)
        return servicer
