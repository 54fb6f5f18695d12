"""Metaservices (spean.v1.MetaService): what an application can learn about the federation.

Design. Three questions have their answer in the signed global configuration
and are answered by the consumer endpoint itself, without leaving the
security server: ListClients (members and subsystems), ListMethods (what a
subsystem publishes) and GetServiceDescriptors (the FileDescriptorSet the
subsystem published with the authority). The fourth, AllowedMethods, depends
on access rights that only the provider holds (they are in its own
configuration, not the federation's). Rather than publish every ministry's
access rules to the whole federation, AllowedMethods travels as an ordinary
exchange: the consumer endpoint's generic path signs and forwards it, the
provider verifies the token like any other and answers from its access policy
(`allowed_methods_answer`), signed, and both sides log it. So a client learns
only its own rights, the answer is the provider's word, and it is audited.

Invariants: every metaservice call names a ``spean-client`` registered on this
security server (the same check as an exchange); local answers never contact
another server; nothing here writes to the audit log, because nothing leaves
the member (AllowedMethods, which does, is audited by the exchange path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
import structlog

from spean.adapters.base import MethodKind
from spean.gateway import metadata
from spean.gateway.access import AccessPolicy
from spean.gateway.admission import METASERVICE
from spean.gateway.errors import InvalidArgument, NotFound, SpeanError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.v1 import metaservices_pb2 as pb

log = structlog.get_logger("spean.metaservices")

SERVICE_NAME = METASERVICE
# spean.gateway.admission.ALLOWED_METHODS is the one metaservice the provider answers
# over the exchange path (allowed_methods_answer below).

ClientCheck = Callable[[SubsystemId, grpc.ServicerContext], str]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def allowed_methods_answer(
    policy: AccessPolicy,
    published: Mapping[str, MethodKind],
    client: SubsystemId,
    service: SubsystemId,
) -> bytes:
    """The provider's AllowedMethods answer: published methods `client` may call."""
    answer = pb.AllowedMethodsResponse(service=str(service), client=str(client))
    for path in sorted(published):
        if policy.allows(client, service, path):
            answer.methods.add(
                path=path, server_streaming=published[path] is MethodKind.SERVER_STREAMING
            )
    return answer.SerializeToString()


class MetaServices:
    """The locally answered metaservices of one consumer endpoint."""

    def __init__(
        self,
        *,
        configuration: Callable[[], GlobalConfiguration],
        check_client: ClientCheck,
        max_header_bytes: int = 1024,
    ) -> None:
        self._configuration = configuration
        self._check_client = check_client
        self._max_header_bytes = max_header_bytes

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """Handlers for `grpc.Server.add_registered_method_handlers(SERVICE_NAME, ...)`.

        AllowedMethods is deliberately absent: the consumer endpoint's generic
        handler takes it as an exchange.
        """
        return {
            "ListClients": grpc.unary_unary_rpc_method_handler(
                self._guard(self.list_clients),
                request_deserializer=pb.ListClientsRequest.FromString,
                response_serializer=pb.ListClientsResponse.SerializeToString,
            ),
            "ListMethods": grpc.unary_unary_rpc_method_handler(
                self._guard(self.list_methods),
                request_deserializer=pb.ListMethodsRequest.FromString,
                response_serializer=pb.ListMethodsResponse.SerializeToString,
            ),
            "GetServiceDescriptors": grpc.unary_unary_rpc_method_handler(
                self._guard(self.get_service_descriptors),
                request_deserializer=pb.GetServiceDescriptorsRequest.FromString,
                response_serializer=pb.GetServiceDescriptorsResponse.SerializeToString,
            ),
        }

    def _guard(
        self, answer: Callable[[Req, metadata.MetaHeaders, GlobalConfiguration], Resp]
    ) -> Callable[[Req, grpc.ServicerContext], Resp]:
        """Authenticate the client, then answer; expected errors become their status."""

        def handle(request: Req, context: grpc.ServicerContext) -> Resp:
            try:
                headers = metadata.parse_meta_headers(
                    context.invocation_metadata(), self._max_header_bytes
                )
                self._check_client(headers.require_client(), context)
                return answer(request, headers, self._configuration())
            except SpeanError as exc:
                log.info("metaservice.refused", status=exc.code.name, error=exc.message)
                context.abort(exc.code, exc.message)

        return handle

    @staticmethod
    def list_clients(
        request: pb.ListClientsRequest, headers: metadata.MetaHeaders, conf: GlobalConfiguration
    ) -> pb.ListClientsResponse:
        only = MemberId.parse(request.member) if request.member else None
        if only is not None and conf.member(only) is None:
            raise NotFound(f"member {only} is not in the federation")
        by_member: dict[MemberId, list[pb.SubsystemEntry]] = {}
        for subsystem in conf.subsystems:
            by_member.setdefault(subsystem.id.member, []).append(
                pb.SubsystemEntry(
                    id=str(subsystem.id), name=subsystem.name, method_count=len(subsystem.methods)
                )
            )
        answer = pb.ListClientsResponse(configuration_version=conf.version)
        for member in sorted(conf.members, key=lambda m: str(m.id)):
            if only is not None and member.id != only:
                continue
            answer.members.add(
                id=str(member.id),
                name=member.name,
                subsystems=sorted(by_member.get(member.id, []), key=lambda s: s.id),
            )
        return answer

    @staticmethod
    def list_methods(
        request: pb.ListMethodsRequest, headers: metadata.MetaHeaders, conf: GlobalConfiguration
    ) -> pb.ListMethodsResponse:
        service = _target(request.service, headers)
        subsystem = conf.subsystem(service)
        if subsystem is None:
            raise NotFound(f"service subsystem {service} is not in the federation")
        answer = pb.ListMethodsResponse(service=str(service), configuration_version=conf.version)
        for method in sorted(subsystem.methods, key=lambda m: m.path):
            answer.methods.add(path=method.path, server_streaming=method.server_streaming)
        return answer

    @staticmethod
    def get_service_descriptors(
        request: pb.GetServiceDescriptorsRequest,
        headers: metadata.MetaHeaders,
        conf: GlobalConfiguration,
    ) -> pb.GetServiceDescriptorsResponse:
        service = _target(request.service, headers)
        subsystem = conf.subsystem(service)
        if subsystem is None:
            raise NotFound(f"service subsystem {service} is not in the federation")
        return pb.GetServiceDescriptorsResponse(
            service=str(service),
            file_descriptor_set=subsystem.file_descriptor_set,
            configuration_version=conf.version,
        )


def _target(field: str, headers: metadata.MetaHeaders) -> SubsystemId:
    """The subsystem asked about: the request field, else the spean-service header."""
    if field:
        return SubsystemId.parse(field)
    if headers.service is None:
        raise InvalidArgument(
            f"name the subsystem in the request's service field or the {metadata.SERVICE} header"
        )
    return headers.service
