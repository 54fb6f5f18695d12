"""The authority's directory and registry: layout, registry.yaml, reading, writing, locking.

The authority lives in one directory:

    ca.key, ca.crt            the federation CA (EC P-256, 10 years)
    signing.key, signing.crt  the configuration-signing key and certificate;
                              signing.crt is the configuration anchor that
                              members receive out of band
    registry.yaml             members, subsystems, servers, every certificate
                              issued, revocations, the next version number
    globalconf.signed         the latest published SignedGlobalConfiguration
    published/NNNNNNNN.signed every version ever published (for auditors)
    registry.lock             serialises concurrent `spean authority` commands
    pending/                  join requests waiting for an officer's approval

Invariants: the registry is changed only inside `update_registry`, which takes
an exclusive lock on registry.lock, rereads registry.yaml, yields it for the
change and writes it back atomically (0600) only if no error was raised, so two
commands run at the same time cannot lose each other's work. Reading checks
every field and names the file and the field in its errors; it never trusts
registry.yaml to be well formed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from spean.gateway import pki
from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.files import keyfiles

REGISTRY_FORMAT = 1

CA_KEY, CA_CERT = "ca.key", "ca.crt"
SIGNING_KEY, SIGNING_CERT = "signing.key", "signing.crt"
REGISTRY, GLOBALCONF, PUBLISHED, LOCK, PENDING = (
    "registry.yaml",
    "globalconf.signed",
    "published",
    "registry.lock",
    "pending",
)


@dataclass(slots=True)
class Issued:
    serial: str
    thumbprint: str
    kind: str
    subject: str
    not_after: str


@dataclass(slots=True)
class Member:
    id: str
    name: str
    signing_certificates: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Subsystem:
    id: str
    name: str
    servers: list[str] = field(default_factory=list)
    methods: list[tuple[str, bool]] = field(default_factory=list)
    file_descriptor_set: bytes = b""
    # Topics it owns (docs/pubsub.md): name, event type, descriptor set.
    topics: list[tuple[str, str, bytes]] = field(default_factory=list)
    # The provider's catalogue metadata, as `authority.describe` validated it,
    # and when it was last set (ISO 8601 UTC); None until described.
    catalogue: dict[str, Any] | None = None
    catalogue_updated_at: str = ""


@dataclass(slots=True)
class Server:
    id: str
    address: str
    tls_certificate: str
    # Previous certificates (PEM) still listed while the server rotates its TLS
    # key, newest first; they leave with `Authority.retire_certificate`.
    additional_tls_certificates: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Registry:
    """The authority's mutable state; only ever changed under the registry lock."""

    instance: str
    next_version: int = 1
    members: list[Member] = field(default_factory=list)
    subsystems: list[Subsystem] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    issued: list[Issued] = field(default_factory=list)
    revoked: dict[str, str] = field(default_factory=dict)  # serial hex -> revoked at
    auditor_public_key: str = ""  # base64 of the raw X25519 key bodies are sealed to
    # Join requests wait for an officer's approval (`spean authority approve`).
    require_approval: bool = False

    def find_member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)

    def find_subsystem(self, subsystem_id: str) -> Subsystem | None:
        return next((s for s in self.subsystems if s.id == subsystem_id), None)

    def find_server(self, server_id: str) -> Server | None:
        return next((s for s in self.servers if s.id == server_id), None)

    def check_new_identifier(self, identifier: str, kind: str) -> None:
        """Refuse an identifier equal, ignoring case, to any existing one of the same shape."""
        folded = identifier.casefold()
        taken = [("member", m.id) for m in self.members]
        taken += [("subsystem", s.id) for s in self.subsystems]
        taken += [("security server", s.id) for s in self.servers]
        for other_kind, other in taken:
            if other.casefold() == folded:
                same = (
                    "is already" if other == identifier else f"differs only in case from {other},"
                )
                raise FailedPrecondition(
                    f"{kind} {identifier} {same} a registered {other_kind} identifier"
                )


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (PEM certificates) as literal blocks, readable by people."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _server_document(server: Server) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": server.id,
        "address": server.address,
        "tls_certificate": server.tls_certificate,
    }
    # Written only during a rotation, so that other registries stay as they were.
    if server.additional_tls_certificates:
        document["additional_tls_certificates"] = server.additional_tls_certificates
    return document


def _subsystem_document(subsystem: Subsystem) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": subsystem.id,
        "name": subsystem.name,
        "servers": subsystem.servers,
        "methods": [{"path": p, "server_streaming": st} for p, st in subsystem.methods],
        "file_descriptor_set": base64.b64encode(subsystem.file_descriptor_set).decode(),
    }
    # Written only once a topic is added, so that other registries stay as they were.
    if subsystem.topics:
        document["topics"] = [
            {
                "name": name,
                "event_type": event_type,
                "file_descriptor_set": base64.b64encode(descriptors).decode(),
            }
            for name, event_type, descriptors in subsystem.topics
        ]
    # Written only once described, so that other registries stay as they were.
    if subsystem.catalogue is not None:
        document["catalogue"] = subsystem.catalogue
        document["catalogue_updated_at"] = subsystem.catalogue_updated_at
    return document


def registry_to_yaml(registry: Registry) -> bytes:
    document = {
        "format": REGISTRY_FORMAT,
        "instance": registry.instance,
        "next_version": registry.next_version,
        "members": [
            {"id": m.id, "name": m.name, "signing_certificates": m.signing_certificates}
            for m in registry.members
        ],
        "subsystems": [_subsystem_document(s) for s in registry.subsystems],
        "servers": [_server_document(s) for s in registry.servers],
        "issued": [
            {
                "serial": i.serial,
                "thumbprint": i.thumbprint,
                "kind": i.kind,
                "subject": i.subject,
                "not_after": i.not_after,
            }
            for i in registry.issued
        ],
        "revoked": [{"serial": s, "revoked_at": at} for s, at in registry.revoked.items()],
    }
    # Written only once set, so that other registries stay as they were.
    if registry.auditor_public_key:
        document["auditor_public_key"] = registry.auditor_public_key
    if registry.require_approval:
        document["require_approval"] = True
    header = "# Spean federation authority registry. Change it with `spean authority ...`.\n"
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return (header + body).encode()


class _Reader:
    """Reads registry.yaml fields with errors that name the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, detail: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {detail}")

    def mapping(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        return value

    def items(self, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = doc.get(key) or []
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return [self.mapping(item, f"{key}[{n}]") for n, item in enumerate(value)]

    def text(self, doc: dict[str, Any], key: str, where: str) -> str:
        value = doc.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", "must be a string")
        return value

    def texts(self, doc: dict[str, Any], key: str, where: str) -> list[str]:
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of strings")
        return list(value)

    def read(self) -> Registry:
        try:
            doc = yaml.safe_load(self.path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path} is not valid YAML: {exc}") from exc
        doc = self.mapping(doc, "document")
        if doc.get("format") != REGISTRY_FORMAT:
            raise self.fail("format", f"must be {REGISTRY_FORMAT}, found {doc.get('format')!r}")
        next_version = doc.get("next_version")
        if not isinstance(next_version, int) or next_version < 1:
            raise self.fail("next_version", "must be a positive integer")
        registry = Registry(
            instance=self.text(doc, "instance", "document"), next_version=next_version
        )
        for n, item in enumerate(self.items(doc, "members")):
            where = f"members[{n}]"
            registry.members.append(
                Member(
                    id=self.text(item, "id", where),
                    name=self.text(item, "name", where),
                    signing_certificates=self.texts(item, "signing_certificates", where),
                )
            )
        for n, item in enumerate(self.items(doc, "subsystems")):
            where = f"subsystems[{n}]"
            methods = []
            for m, method in enumerate(self.items(item, "methods")):
                streaming = method.get("server_streaming", False)
                if not isinstance(streaming, bool):
                    raise self.fail(
                        f"{where}.methods[{m}].server_streaming", "must be true or false"
                    )
                methods.append((self.text(method, "path", f"{where}.methods[{m}]"), streaming))
            try:
                descriptors = base64.b64decode(
                    self.text(item, "file_descriptor_set", where), validate=True
                )
            except ValueError as exc:
                raise self.fail(f"{where}.file_descriptor_set", "must be base64") from exc
            topics = []
            for t, topic in enumerate(self.items(item, "topics") if "topics" in item else []):
                at = f"{where}.topics[{t}]"
                try:
                    topic_descriptors = base64.b64decode(
                        self.text(topic, "file_descriptor_set", at), validate=True
                    )
                except ValueError as exc:
                    raise self.fail(f"{at}.file_descriptor_set", "must be base64") from exc
                topics.append(
                    (
                        self.text(topic, "name", at),
                        self.text(topic, "event_type", at),
                        topic_descriptors,
                    )
                )
            catalogue = item.get("catalogue")
            if catalogue is not None:
                catalogue = self.mapping(catalogue, f"{where}.catalogue")
            registry.subsystems.append(
                Subsystem(
                    id=self.text(item, "id", where),
                    name=self.text(item, "name", where),
                    servers=self.texts(item, "servers", where),
                    methods=methods,
                    file_descriptor_set=descriptors,
                    topics=topics,
                    catalogue=catalogue,
                    catalogue_updated_at=self.text(item, "catalogue_updated_at", where),
                )
            )
        for n, item in enumerate(self.items(doc, "servers")):
            where = f"servers[{n}]"
            registry.servers.append(
                Server(
                    id=self.text(item, "id", where),
                    address=self.text(item, "address", where),
                    tls_certificate=self.text(item, "tls_certificate", where),
                    additional_tls_certificates=self.texts(
                        item, "additional_tls_certificates", where
                    ),
                )
            )
        for n, item in enumerate(self.items(doc, "issued")):
            where = f"issued[{n}]"
            registry.issued.append(
                Issued(
                    serial=self.text(item, "serial", where),
                    thumbprint=self.text(item, "thumbprint", where),
                    kind=self.text(item, "kind", where),
                    subject=self.text(item, "subject", where),
                    not_after=self.text(item, "not_after", where),
                )
            )
        for n, item in enumerate(self.items(doc, "revoked")):
            where = f"revoked[{n}]"
            registry.revoked[self.text(item, "serial", where)] = self.text(
                item, "revoked_at", where
            )
        if "auditor_public_key" in doc:
            key = self.text(doc, "auditor_public_key", "document")
            try:
                raw = base64.b64decode(key, validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise self.fail("auditor_public_key", "must be a base64 raw 32-byte X25519 key")
            registry.auditor_public_key = key
        approval = doc.get("require_approval", False)
        if not isinstance(approval, bool):
            raise self.fail("require_approval", "must be true or false")
        registry.require_approval = approval
        return registry


def read_registry(path: Path) -> Registry:
    """Read and check registry.yaml; errors name the file and the field."""
    return _Reader(path).read()


def write_registry(path: Path, registry: Registry) -> None:
    keyfiles.write_file_atomically(path, registry_to_yaml(registry), 0o600)


@contextlib.contextmanager
def update_registry(directory: Path) -> Iterator[Registry]:
    """Lock, read, yield for changes, write back atomically (only if no error was raised)."""
    with file_lock(directory / LOCK):
        registry = read_registry(directory / REGISTRY)
        yield registry
        write_registry(directory / REGISTRY, registry)


def issued_record(cert: x509.Certificate, kind: str, subject: str) -> Issued:
    return Issued(
        serial=pki.serial_hex(cert.serial_number),
        thumbprint=pki.thumbprint(cert),
        kind=kind,
        subject=subject,
        not_after=cert.not_valid_after_utc.isoformat(),
    )


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    try:
        handle = path.open("a")
    except OSError as exc:
        raise FailedPrecondition(f"cannot open lock file {path}: {exc.strerror}") from exc
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
