"""From registry to GlobalConfiguration, and the method lists a subsystem publishes.

Pure functions: values in, values out, no files and no keys. Building changes
nothing; the caller signs the message and verifies it before publishing it.
A subsystem's methods are checked against its descriptor set (when given)
at admission, so the published list only names methods that exist, each
unary or server-streaming (client streaming is refused).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from spean.gateway import pki
from spean.gateway.authority.describe import parse_document, to_catalogue_entry
from spean.gateway.authority.registry import Registry
from spean.gateway.errors import InvalidArgument
from spean.gateway.identifiers import SubsystemId, parse_method
from spean.v1 import config_pb2


def to_global_configuration(
    registry: Registry,
    ca_cert: x509.Certificate,
    version: int,
    now: dt.datetime,
    validity: dt.timedelta,
) -> config_pb2.GlobalConfiguration:
    msg = config_pb2.GlobalConfiguration(
        instance=registry.instance,
        version=version,
        ca_certificates=[pki.certificate_der(ca_cert)],
        revoked_serials=sorted(registry.revoked),
        auditor_public_key=base64.b64decode(registry.auditor_public_key),
    )
    msg.issued_at.FromDatetime(now)
    msg.expires_at.FromDatetime(now + validity)
    for member in registry.members:
        msg.members.add(
            id=member.id,
            name=member.name,
            signing_certificates=[_pem_to_der(pem) for pem in member.signing_certificates],
        )
    for server in registry.servers:
        der = _pem_to_der(server.tls_certificate)
        msg.servers.add(
            id=server.id,
            address=server.address,
            tls_certificate_sha256=pki.thumbprint(x509.load_der_x509_certificate(der)),
            tls_certificate=der,
            additional_tls_certificates=[
                _pem_to_der(pem) for pem in server.additional_tls_certificates
            ],
        )
    for subsystem in registry.subsystems:
        entry = msg.subsystems.add(
            id=subsystem.id,
            name=subsystem.name,
            servers=subsystem.servers,
            file_descriptor_set=subsystem.file_descriptor_set,
        )
        for path, streaming in subsystem.methods:
            entry.methods.add(path=path, server_streaming=streaming)
        for name, event_type, descriptors in subsystem.topics:
            entry.topics.add(name=name, event_type=event_type, file_descriptor_set=descriptors)
        if subsystem.catalogue is not None:
            document = parse_document(
                subsystem.catalogue, f"registry: subsystem {subsystem.id}: catalogue"
            )
            updated = subsystem.catalogue_updated_at
            entry.catalogue.CopyFrom(
                to_catalogue_entry(
                    document, dt.datetime.fromisoformat(updated) if updated else None
                )
            )
    return msg


def published_methods(
    methods: Sequence[tuple[str, bool]], descriptors: bytes, subsystem: SubsystemId
) -> list[tuple[str, bool]]:
    listed: dict[str, bool] = {}
    for path, streaming in methods:
        parse_method(path)
        if path in listed:
            raise InvalidArgument(f"subsystem {subsystem}: method {path} is listed twice")
        listed[path] = bool(streaming)
    if not descriptors:
        return list(listed.items())
    described = _described_methods(descriptors, subsystem)
    if not listed:
        return list(described.items())
    missing = sorted(set(listed) - set(described))
    if missing:
        raise InvalidArgument(
            f"subsystem {subsystem}: method(s) {', '.join(missing)} are not in the descriptor set"
        )
    return [(path, described[path]) for path in listed]


def _described_methods(data: bytes, subsystem: SubsystemId) -> dict[str, bool]:
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(
            f"subsystem {subsystem}: the descriptor set is not a serialized"
            " google.protobuf.FileDescriptorSet (protoc --descriptor_set_out)"
        ) from exc
    found: dict[str, bool] = {}
    for file in fds.file:
        prefix = f"{file.package}." if file.package else ""
        for service in file.service:
            for method in service.method:
                path = parse_method(f"/{prefix}{service.name}/{method.name}")
                if method.client_streaming:
                    raise InvalidArgument(
                        f"subsystem {subsystem}: {path} is client-streaming; Spean carries"
                        " unary and server-streaming methods only"
                    )
                found[path] = method.server_streaming
    if not found:
        raise InvalidArgument(f"subsystem {subsystem}: the descriptor set defines no service")
    return found


def described_message(data: bytes, full_name: str, where: str) -> None:
    """Refuse a topic whose descriptor set does not define its event type."""
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(
            f"{where}: the descriptor set is not a serialized google.protobuf.FileDescriptorSet"
            " (protoc --descriptor_set_out)"
        ) from exc
    for file in fds.file:
        prefix = f"{file.package}." if file.package else ""
        if any(f"{prefix}{message.name}" == full_name for message in file.message_type):
            return
    raise InvalidArgument(f"{where}: the descriptor set does not define message {full_name}")


def _pem_to_der(pem: str) -> bytes:
    return pki.certificate_der(pki.parse_certificate_pem(pem.encode(), "registry certificate"))
