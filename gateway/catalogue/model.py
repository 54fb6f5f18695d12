"""The federation's catalogue as values, built from a verified global configuration (pure).

`build_catalogue` turns one `GlobalConfiguration` into a `Catalogue`: every
member, every subsystem and every published method (a *service*, identified
as in DESIGN.md: ``SUBSYSTEM:/package.Service/Method``), each with its
protobuf documentation (`protodoc`), its provider, the metadata the provider
maintains (`catalogue_metadata`), the clients the provider publishes as
allowed, and how to call it (`snippets`).

What the catalogue can say about access: the access rules live in each
provider's server.yaml and are enforced there; the catalogue shows only the
access list the provider published with its metadata (`allowed_clients`),
and says so. A subsystem not yet described has no metadata, no topics and
no data class; it is still listed, so the catalogue never hides a published
service.

Recent availability and latency come from the providers' statistics, which
the catalogue does not hold: `Statistics` is the seam, `NO_STATISTICS` the
default, and `ServiceEntry.availability` stays None until a source is given.

Invariants: the catalogue reflects exactly one configuration version; lists
are in configuration order; every service id is unique (the configuration's
own invariant) and `Catalogue.service` finds it in O(1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from spean.gateway.catalogue.protodoc import DescriptorIndex, MethodDoc
from spean.gateway.catalogue.snippets import (
    PLACEHOLDER_CLIENT,
    PLACEHOLDER_ENDPOINT,
    CallTarget,
    Snippets,
    python_module,
    snippets_for,
)
from spean.gateway.catalogue_metadata import CatalogueMetadata, Text
from spean.gateway.globalconf import GlobalConfiguration, SubsystemInfo


@dataclass(frozen=True, slots=True)
class Availability:
    """A service's recent record, from its provider's statistics."""

    window_seconds: int
    calls: int
    success_ratio: float
    latency_p50_ms: float
    latency_p95_ms: float


class Statistics(Protocol):
    """Where recent availability comes from (the providers' statistics API)."""

    def availability(self, service_id: str) -> Availability | None: ...


class _NoStatistics:
    def availability(self, service_id: str) -> Availability | None:
        return None


NO_STATISTICS: Statistics = _NoStatistics()


@dataclass(frozen=True, slots=True)
class MemberEntry:
    id: str
    name: str
    subsystems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubsystemEntry:
    id: str
    name: str
    member: str
    member_name: str
    metadata: CatalogueMetadata | None
    services: tuple[str, ...]  # service ids, in published order
    has_descriptors: bool


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One published method, everything the catalogue shows about it."""

    id: str  # SUBSYSTEM:/package.Service/Method
    subsystem: str
    subsystem_name: str
    member: str
    member_name: str
    path: str
    server_streaming: bool
    title: Text  # the provider's summary of the method, or the method's name
    comment: str  # the method's comment in its .proto
    metadata: CatalogueMetadata | None
    # Clients the provider publishes as allowed to call this method.
    allowed_clients: tuple[str, ...]
    doc: MethodDoc | None
    snippets: Snippets
    availability: Availability | None = None

    @property
    def method_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True, eq=False)
class Catalogue:
    instance: str
    version: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    members: tuple[MemberEntry, ...]
    subsystems: tuple[SubsystemEntry, ...]
    services: tuple[ServiceEntry, ...]
    _members: Mapping[str, MemberEntry] = field(repr=False)
    _subsystems: Mapping[str, SubsystemEntry] = field(repr=False)
    _services: Mapping[str, ServiceEntry] = field(repr=False)
    _descriptors: Mapping[str, bytes] = field(repr=False)

    def member(self, member_id: str) -> MemberEntry | None:
        return self._members.get(member_id)

    def subsystem(self, subsystem_id: str) -> SubsystemEntry | None:
        return self._subsystems.get(subsystem_id)

    def service(self, service_id: str) -> ServiceEntry | None:
        return self._services.get(service_id)

    def descriptors(self, subsystem_id: str) -> bytes:
        """The subsystem's serialized FileDescriptorSet (empty when it published none)."""
        return self._descriptors.get(subsystem_id, b"")

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic some subsystem names, sorted."""
        found = {t for s in self.subsystems if s.metadata for t in s.metadata.topics}
        return tuple(sorted(found))


def service_id(subsystem: str, path: str) -> str:
    return f"{subsystem}:{path}"


def build_catalogue(
    conf: GlobalConfiguration,
    *,
    endpoint: str = PLACEHOLDER_ENDPOINT,
    statistics: Statistics = NO_STATISTICS,
) -> Catalogue:
    """The catalogue of `conf`; `endpoint` is the consumer endpoint snippets call."""
    names = {str(m.id): m.name for m in conf.members}
    subsystems: list[SubsystemEntry] = []
    services: list[ServiceEntry] = []
    by_member: dict[str, list[str]] = {str(m.id): [] for m in conf.members}
    for info in conf.subsystems:
        member = str(info.id.member)
        by_member.setdefault(member, []).append(str(info.id))
        entries = _services_of(info, names.get(member, member), endpoint, statistics)
        services.extend(entries)
        subsystems.append(
            SubsystemEntry(
                id=str(info.id),
                name=info.name,
                member=member,
                member_name=names.get(member, member),
                metadata=info.catalogue,
                services=tuple(e.id for e in entries),
                has_descriptors=bool(info.file_descriptor_set),
            )
        )
    members = tuple(
        MemberEntry(str(m.id), m.name, tuple(by_member[str(m.id)])) for m in conf.members
    )
    return Catalogue(
        instance=conf.instance,
        version=conf.version,
        issued_at=conf.issued_at,
        expires_at=conf.expires_at,
        members=members,
        subsystems=tuple(subsystems),
        services=tuple(services),
        _members={m.id: m for m in members},
        _subsystems={s.id: s for s in subsystems},
        _services={s.id: s for s in services},
        _descriptors={str(s.id): s.file_descriptor_set for s in conf.subsystems},
    )


def descriptor_file_name(subsystem: str) -> str:
    """The file name the catalogue gives a subsystem's descriptor set download."""
    return subsystem.replace("/", "_") + ".binpb"


def _services_of(
    info: SubsystemInfo, member_name: str, endpoint: str, statistics: Statistics
) -> list[ServiceEntry]:
    index = DescriptorIndex(info.file_descriptor_set) if info.file_descriptor_set else None
    meta = info.catalogue
    subsystem = str(info.id)
    entries = []
    for method in info.methods:
        doc = index.method(method.path) if index is not None else None
        allowed = (
            tuple(grant.client for grant in meta.access if method.path in grant.methods)
            if meta is not None
            else ()
        )
        summary = meta.summary_of(method.path) if meta is not None else None
        sid = service_id(subsystem, method.path)
        target = CallTarget(
            endpoint=endpoint,
            client=allowed[0] if allowed else PLACEHOLDER_CLIENT,
            service=subsystem,
            path=method.path,
            server_streaming=method.server_streaming,
            example=doc.example_request if doc is not None else {},
            proto_file=doc.proto_file if doc is not None else "",
            request_module=python_module(doc.request_file) if doc else "REQUEST_MODULE_pb2",
            response_module=python_module(doc.response_file) if doc else "RESPONSE_MODULE_pb2",
            request_type=doc.request_type if doc is not None else "RequestMessage",
            response_type=doc.response_type if doc is not None else "ResponseMessage",
            proto_package=doc.proto_package if doc is not None else "",
            descriptor_file=descriptor_file_name(subsystem),
        )
        entries.append(
            ServiceEntry(
                id=sid,
                subsystem=subsystem,
                subsystem_name=info.name,
                member=str(info.id.member),
                member_name=member_name,
                path=method.path,
                server_streaming=method.server_streaming,
                title=summary or Text(method.path.rsplit("/", 1)[-1]),
                comment=doc.comment if doc is not None else "",
                metadata=meta,
                allowed_clients=allowed,
                doc=doc,
                snippets=snippets_for(target),
                availability=statistics.availability(sid),
            )
        )
    return entries
