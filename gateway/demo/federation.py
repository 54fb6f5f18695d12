"""Build a whole federation in one folder: the demo's and the tests' ground.

`build_federation` plays every role in turn, through the same APIs the CLI
uses: the authority initialises its CA, each member creates its signing key
and each security server its TLS key as certificate requests, the authority
admits them, registers the subsystems and publishes the signed global
configuration; each member then gets a security server YAML file. Nothing
here is a shortcut around the real protocol: the servers started from the
result use real keys, real mutual TLS and real audit stores on disk.

Layout under the root folder::

    authority/                 CA, signing key, registry, published configuration
    auditor/auditor.key        the auditors' X25519 private key (encrypted bodies)
    <member>/keys/             signing.key/.crt, tls.key/.crt, authority.crt (anchor)
    <member>/server.yaml       the security server's configuration
    <member>/state/            global configuration cache, audit log
    <member>/<mapping>.yaml    adapter mappings and their databases
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from spean.gateway import pki
from spean.gateway.authority import Authority, init_member, init_server
from spean.gateway.authority.describe import CatalogueDocument, parse_document, read_metadata_file
from spean.gateway.config import ServerConfig, member_folder_document
from spean.gateway.files.config import load_config
from spean.gateway.files.keyfiles import generate_auditor_key
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server
from spean.gateway.server.app import SecurityServer


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """A subsystem a member publishes, its adapter and who may call what."""

    subsystem: str
    adapter: dict[str, Any]
    methods: Sequence[tuple[str, bool]]
    access: Sequence[tuple[str, Sequence[str]]] = ()
    files: Sequence[Path] = ()
    prepare: Callable[[Path], None] | None = None
    # Serialized FileDescriptorSet published with the authority (metaservices, reflection).
    file_descriptor_set: bytes = b""
    # Catalogue metadata YAML (docs/catalogue.md); its access list is taken from `access`.
    catalogue: Path | None = None


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """A topic a subsystem of the member owns (docs/pubsub.md) and who may receive it."""

    subsystem: str
    name: str
    event_type: str
    file_descriptor_set: bytes = b""
    grants: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """A member, its one security server, what it publishes and which clients it has."""

    member: str
    name: str
    server_code: str = "ss1"
    clients: Sequence[str] = ()
    services: Sequence[ServicePlan] = ()
    key_kind: pki.KeyKind = "ec-p256"
    # Further provider servers of this member hosting the same services (high
    # availability). Each gets its own TLS key (keys/<code>/), provider port,
    # state folder (state/<code>/) and file server-<code>.yaml, and is keyed
    # "<member>/<code>" in Federation.configs.
    extra_servers: Sequence[str] = ()
    # Publish/subscribe: topics this member owns, and (client, SUBSYSTEM:NAME) the
    # topics its clients take; either gives its server a pubsub section.
    topics: Sequence[TopicPlan] = ()
    subscriptions: Sequence[tuple[str, str]] = ()
    delivery: dict[str, int] = field(default_factory=dict)


@dataclass
class Federation:
    """The built federation: paths to everything, and the running servers."""

    root: Path
    authority: Authority
    configs: dict[str, Path] = field(default_factory=dict)
    consumer_addresses: dict[str, str] = field(default_factory=dict)
    servers: dict[str, SecurityServer] = field(default_factory=dict)

    def config(self, member: str) -> ServerConfig:
        return load_config(self.configs[member])

    def start(self, member: str) -> SecurityServer:
        server = SecurityServer(self.config(member))
        server.start()
        self.servers[member] = server
        return server

    def start_all(self) -> None:
        for member in self.configs:
            if member not in self.servers:
                self.start(member)

    def stop(self, member: str) -> None:
        server = self.servers.pop(member, None)
        if server is not None:
            server.stop(grace=2.0)

    def stop_all(self) -> None:
        for member in list(self.servers):
            self.stop(member)

    @contextlib.contextmanager
    def running(self) -> Iterator[Federation]:
        self.start_all()
        try:
            yield self
        finally:
            self.stop_all()


# Listening ports are drawn below the kernel's ephemeral range (32768-60999 by
# default), so an outgoing connection cannot take a port between the moment
# it is chosen here and the moment a server binds it.
_PORT_RANGE = (20000, 32000)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port free right now (the servers bind it a moment later)."""
    for _ in range(200):
        port = random.randrange(*_PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def build_federation(
    root: Path,
    plans: Sequence[MemberPlan],
    *,
    instance: str = "KH",
    validity: timedelta = timedelta(days=1),
    host: str = "127.0.0.1",
) -> Federation:
    """Create authority, members, servers and their configs under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    authority = Authority.init(root / "authority", instance)
    federation = Federation(root=root, authority=authority)
    for plan in plans:
        member_id = MemberId.parse(plan.member)
        server_id = parse_server(f"{plan.member}/{plan.server_code}")
        folder = root / member_id.code.lower()
        keys = folder / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        (folder / "state").mkdir(exist_ok=True)
        provider_address = f"{host}:{free_port(host)}"
        init_member(keys, member_id, key_kind=plan.key_kind)
        init_server(keys, server_id, provider_address)
        (keys / "signing.crt").write_bytes(
            authority.admit_member(member_id, plan.name, (keys / "signing.csr").read_bytes())
        )
        (keys / "tls.crt").write_bytes(
            authority.admit_server(server_id, provider_address, (keys / "tls.csr").read_bytes())
        )
        shutil.copyfile(root / "authority" / "signing.crt", keys / "authority.crt")
        published = {service.subsystem: service for service in plan.services}
        for name in dict.fromkeys([*plan.clients, *published]):
            subsystem = SubsystemId.parse(name)
            methods = list(published[name].methods) if name in published else []
            descriptors = published[name].file_descriptor_set if name in published else b""
            authority.add_subsystem(subsystem, methods=methods, file_descriptor_set=descriptors)
            authority.register_subsystem_on_server(subsystem, server_id)
        for topic in plan.topics:
            authority.add_topic(
                topic.subsystem,
                topic.name,
                topic.event_type,
                file_descriptor_set=topic.file_descriptor_set,
            )
        for service in plan.services:
            if service.catalogue is not None:
                authority.describe(service.subsystem, _catalogue_document(service))
        for service in plan.services:
            for extra in service.files:
                shutil.copyfile(extra, folder / extra.name)
            if service.prepare is not None:
                service.prepare(folder)
        consumer_address = f"{host}:{free_port(host)}" if plan.clients else None
        document = _server_document(plan, server_id, provider_address, consumer_address, root)
        config_path = folder / "server.yaml"
        config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        federation.configs[plan.member] = config_path
        for code in plan.extra_servers:
            _add_extra_server(federation, plan, folder, code, host, root)
        if consumer_address:
            federation.consumer_addresses[plan.member] = consumer_address
    # The federation's auditors: encrypted bodies are sealed to this key. In
    # production the auditors generate it and hand over only the public half.
    (root / "auditor").mkdir(exist_ok=True)
    authority.set_auditor_key(generate_auditor_key(root / "auditor" / "auditor.key"))
    authority.publish(validity)
    return federation


def _catalogue_document(service: ServicePlan) -> CatalogueDocument:
    """The service's metadata file, publishing the same access list as its server.yaml."""
    assert service.catalogue is not None
    document = read_metadata_file(service.catalogue).stored()
    document["access"] = [
        {"client": client, "methods": list(methods)} for client, methods in service.access
    ]
    return parse_document(document, str(service.catalogue))


def _add_extra_server(
    federation: Federation, plan: MemberPlan, folder: Path, code: str, host: str, root: Path
) -> None:
    """Admit another provider server of `plan`'s member and write its configuration."""
    server_id = parse_server(f"{plan.member}/{code}")
    keys = folder / "keys" / code
    keys.mkdir(parents=True, exist_ok=True)
    (folder / "state" / code).mkdir(parents=True, exist_ok=True)
    address = f"{host}:{free_port(host)}"
    init_server(keys, server_id, address)
    authority = federation.authority
    (keys / "tls.crt").write_bytes(
        authority.admit_server(server_id, address, (keys / "tls.csr").read_bytes())
    )
    for service in plan.services:
        authority.register_subsystem_on_server(service.subsystem, server_id)
    document = _server_document(plan, server_id, address, None, root)
    document["keys"]["tls_key"] = f"keys/{code}/tls.key"
    document["keys"]["tls_certificate"] = f"keys/{code}/tls.crt"
    document["global_configuration"]["cache"] = f"state/{code}/globalconf.signed"
    document["audit"]["store"] = f"state/{code}/audit.db"
    if "pubsub" in document:
        document["pubsub"]["store"] = f"state/{code}/events.db"
    config_path = folder / f"server-{code}.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    federation.configs[f"{plan.member}/{code}"] = config_path


def _server_document(
    plan: MemberPlan,
    server_id: SubsystemId,
    provider_address: str,
    consumer_address: str | None,
    root: Path,
) -> dict[str, Any]:
    document = member_folder_document(
        str(server_id),
        str((root / "authority" / "globalconf.signed").resolve()),
        "keys/authority.crt",
    )
    document["global_configuration"]["refresh_seconds"] = 5
    if consumer_address is not None:
        document["consumer"] = {
            "listen": consumer_address,
            "clients": [{"subsystem": client} for client in plan.clients],
        }
    if plan.topics or plan.subscriptions:
        document["pubsub"] = _pubsub_section(plan)
    if plan.services:
        document["provider"] = {
            "listen": provider_address,
            "services": [
                {"subsystem": service.subsystem, "adapter": dict(service.adapter)}
                for service in plan.services
            ],
            "access": [
                {"client": client, "service": service.subsystem, "methods": list(methods)}
                for service in plan.services
                for client, methods in service.access
            ],
        }
    return document


def _pubsub_section(plan: MemberPlan) -> dict[str, Any]:
    section: dict[str, Any] = {"store": "state/events.db"}
    section["access"] = [
        {"client": client, "service": topic.subsystem, "topics": [topic.name]}
        for topic in plan.topics
        for client in topic.grants
    ]
    section["subscriptions"] = [
        {"client": client, "topic": topic} for client, topic in plan.subscriptions
    ]
    if plan.delivery:
        section["delivery"] = dict(plan.delivery)
    return section
