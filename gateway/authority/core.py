"""The Authority: admission, revocation and publication over the registry.

`Authority.init` creates the CA, the configuration-signing key and an empty
registry; `Authority.open` reopens a directory. Private keys are loaded only
when needed (admission, publication), so `serve` runs without the passphrase.

Invariants enforced at admission, so that a published configuration always
passes `verify_global_configuration`:

- identifiers belong to this authority's instance and are unique ignoring
  case (the DNS names in certificates are lower case);
- a subsystem or server belongs to an admitted member; a subsystem is hosted
  only on servers of its own member;
- a CSR is used only for its public key, after its signature is checked;
- versions increase by one at each publication and are never reused: the
  registry records the next version before the configuration is written.

Every change goes through `registry.update_registry` (file lock, reread,
atomic write back), under a thread lock for callers sharing one instance.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog
from cryptography import x509

from spean.gateway import pki
from spean.gateway.audit.bodies import fingerprint as auditor_fingerprint
from spean.gateway.authority.configuration import (
    described_message,
    published_methods,
    to_global_configuration,
)
from spean.gateway.authority.describe import CatalogueDocument, to_catalogue_entry
from spean.gateway.authority.http import AuthorityHttpServer
from spean.gateway.authority.registry import (
    CA_CERT,
    CA_KEY,
    GLOBALCONF,
    PUBLISHED,
    REGISTRY,
    SIGNING_CERT,
    SIGNING_KEY,
    Member,
    Registry,
    Server,
    Subsystem,
    issued_record,
    read_registry,
    update_registry,
    write_registry,
)
from spean.gateway.catalogue_metadata import parse_catalogue_entry
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.events import TopicId, parse_event_type, parse_topic_name
from spean.gateway.files import keyfiles
from spean.gateway.files.member_keys import make_private_dir
from spean.gateway.globalconf import sign_global_configuration, verify_global_configuration
from spean.gateway.identifiers import MemberId, ServerId, SubsystemId, parse_instance, parse_server
from spean.v1 import config_pb2

log = structlog.get_logger()

DEFAULT_PUBLISH_VALIDITY = dt.timedelta(days=1)
# A configuration is the only way revocations reach security servers; one
# valid for longer than this would make a revocation meaningless for too long.
MAX_PUBLISH_VALIDITY = dt.timedelta(days=366)


class Authority:
    """A federation authority rooted in one directory. Create with `init`, reopen with `open`."""

    def __init__(
        self,
        directory: Path,
        instance: str,
        ca_certificate: x509.Certificate,
        signing_certificate: x509.Certificate,
        passphrase: bytes | None,
    ) -> None:
        self.directory = directory
        self.instance = instance
        self.ca_certificate = ca_certificate
        self.signing_certificate = signing_certificate
        self._passphrase = passphrase
        self._ca_key: pki.PrivateKey | None = None
        self._signing_key: pki.PrivateKey | None = None
        self._thread_lock = threading.Lock()

    @property
    def anchor_path(self) -> Path:
        """The configuration anchor to hand to members out of band."""
        return self.directory / SIGNING_CERT

    @property
    def published_path(self) -> Path:
        return self.directory / GLOBALCONF

    @classmethod
    def init(
        cls,
        directory: Path,
        instance: str,
        passphrase: bytes | None = None,
        *,
        now: dt.datetime | None = None,
    ) -> Authority:
        """Create a new authority: CA, configuration-signing key, empty registry."""
        parse_instance(instance)
        directory = Path(directory)
        for name in (CA_KEY, SIGNING_KEY, REGISTRY):
            if (directory / name).exists():
                raise FailedPrecondition(
                    f"{directory} already holds an authority ({name} exists); refusing to"
                    " overwrite it"
                )
        make_private_dir(directory)
        now = now or dt.datetime.now(dt.UTC)
        ca_key = pki.generate_key("ec-p256")
        ca_cert = pki.create_ca(ca_key, instance, now=now)
        signing_key = pki.generate_key("ec-p256")
        csr = pki.make_csr(signing_key, f"{instance} configuration signing", "configuration")
        signing_cert = pki.issue_configuration_signing_certificate(
            ca_key, ca_cert, csr, instance, now=now
        )
        keyfiles.write_private_key(directory / CA_KEY, ca_key, passphrase)
        keyfiles.write_private_key(directory / SIGNING_KEY, signing_key, passphrase)
        keyfiles.write_certificate(directory / CA_CERT, ca_cert)
        keyfiles.write_certificate(directory / SIGNING_CERT, signing_cert)
        registry = Registry(instance=instance)
        registry.issued.append(issued_record(signing_cert, "configuration", instance))
        write_registry(directory / REGISTRY, registry)
        log.info(
            "authority.initialised",
            directory=str(directory),
            instance=instance,
            anchor_sha256=pki.thumbprint(signing_cert),
        )
        authority = cls(directory, instance, ca_cert, signing_cert, passphrase)
        authority._ca_key, authority._signing_key = ca_key, signing_key
        return authority

    @classmethod
    def open(cls, directory: Path, passphrase: bytes | None = None) -> Authority:
        """Open an existing authority directory (keys are loaded only when needed)."""
        directory = Path(directory)
        if not (directory / REGISTRY).is_file():
            raise FailedPrecondition(
                f"{directory} is not an authority directory (no {REGISTRY});"
                " create one with `spean authority init`"
            )
        registry = read_registry(directory / REGISTRY)
        try:
            parse_instance(registry.instance)
        except InvalidArgument as exc:
            raise ConfigError(f"{directory / REGISTRY}: instance: {exc.message}") from exc
        ca_cert = _load_cert(directory / CA_CERT)
        signing_cert = _load_cert(directory / SIGNING_CERT)
        return cls(directory, registry.instance, ca_cert, signing_cert, passphrase)

    # ------------------------------------------------------------ admission

    def admit_member(
        self,
        member_id: str | MemberId,
        name: str,
        csr_pem: bytes,
        *,
        validity: dt.timedelta = pki.MEMBER_SIGNING_VALIDITY,
        now: dt.datetime | None = None,
    ) -> bytes:
        """Certify a member's signing key; returns the certificate PEM.

        Admitting an existing member again (same identifier, same name) adds
        another signing certificate, for key rotation; the same key twice is
        refused.
        """
        member = self._member_id(member_id)
        name = name.strip()
        if not name:
            raise InvalidArgument(f"member {member}: give its name (e.g. 'Ministry of Health')")
        csr = pki.load_csr(csr_pem, f"the CSR for member {member}")
        with self._registry() as registry:
            record = registry.find_member(str(member))
            if record is None:
                registry.check_new_identifier(str(member), "member")
            elif record.name != name:
                raise FailedPrecondition(
                    f"member {member} is already admitted as {record.name!r}, not {name!r}"
                )
            else:
                new_key = pki.public_key_bytes(_csr_key(csr))
                for pem in record.signing_certificates:
                    old = pki.parse_certificate_pem(pem.encode())
                    if pki.public_key_bytes(_cert_key(old)) == new_key:
                        raise FailedPrecondition(
                            f"member {member} already has a certificate for this key"
                            f" (serial {pki.serial_hex(old.serial_number)}); generate a new key"
                            " to rotate"
                        )
            cert = pki.issue_member_certificate(
                self._load_ca_key(),
                self.ca_certificate,
                csr,
                member,
                name,
                now=now,
                validity=validity,
            )
            pem_text = pki.certificate_pem(cert).decode()
            if record is None:
                record = Member(id=str(member), name=name)
                registry.members.append(record)
            record.signing_certificates.append(pem_text)
            registry.issued.append(issued_record(cert, "member", str(member)))
        log.info(
            "authority.member_admitted",
            member=str(member),
            serial=pki.serial_hex(cert.serial_number),
            kid=pki.thumbprint(cert),
        )
        return pem_text.encode()

    def admit_server(
        self,
        server_id: str | ServerId,
        address: str,
        csr_pem: bytes,
        *,
        replace: bool = False,
        rotate: bool = False,
        validity: dt.timedelta = pki.SERVER_TLS_VALIDITY,
        now: dt.datetime | None = None,
    ) -> bytes:
        """Certify a security server's TLS key; returns the certificate PEM.

        With `replace`, an admitted server gets a new certificate and address
        (renewal, move); its previous certificates leave the configuration at
        the next publication. With `rotate`, an admitted server gets a new
        certificate and keeps the ones it has listed beside it, so that peers
        accept either while the server switches; `retire_certificate` ends the
        overlap. A rotation keeps the address.
        """
        if replace and rotate:
            raise InvalidArgument("give either replace (renewal, move) or rotate, not both")
        server = self._server_id(server_id)
        pki.parse_address(address)
        csr = pki.load_csr(csr_pem, f"the CSR for security server {server}")
        new_key = pki.public_key_bytes(_csr_key(csr))
        with self._registry() as registry:
            if registry.find_member(str(server.member)) is None:
                raise NotFound(
                    f"security server {server}: its owner {server.member} is not an admitted"
                    " member; admit the member first"
                )
            record = registry.find_server(str(server))
            if record is None:
                if rotate:
                    raise NotFound(
                        f"security server {server} is not admitted; admit it without --rotate"
                    )
                registry.check_new_identifier(str(server), "security server")
            elif not (replace or rotate):
                raise FailedPrecondition(
                    f"security server {server} is already admitted; use --replace to issue"
                    " it a new certificate (renewal, new address) or --rotate to add one"
                    " beside the current one (TLS key rotation)"
                )
            if rotate:
                assert record is not None
                _check_rotation(record, address)
            for other in registry.servers:
                if other is record and not rotate:
                    continue
                for listed in _listed_certificates(other):
                    if pki.public_key_bytes(_cert_key(listed)) == new_key:
                        raise FailedPrecondition(
                            f"this TLS key is already certified for security server {other.id};"
                            " every server and every rotation needs a new key"
                        )
            cert = pki.issue_server_certificate(
                self._load_ca_key(),
                self.ca_certificate,
                csr,
                server,
                address,
                now=now,
                validity=validity,
            )
            pem_text = pki.certificate_pem(cert).decode()
            if record is None:
                registry.servers.append(Server(str(server), address, pem_text))
            elif rotate:
                record.additional_tls_certificates.insert(0, record.tls_certificate)
                record.tls_certificate = pem_text
            else:
                record.address, record.tls_certificate = address, pem_text
                record.additional_tls_certificates.clear()
            registry.issued.append(issued_record(cert, "server", str(server)))
        log.info(
            "authority.server_admitted",
            server=str(server),
            address=address,
            serial=pki.serial_hex(cert.serial_number),
            sha256=pki.thumbprint(cert),
            replaced=record is not None and replace,
            rotated=rotate,
        )
        return pem_text.encode()

    def retire_certificate(
        self,
        server_id: str | ServerId,
        *,
        serial: int | None = None,
        thumbprint: str | None = None,
        revoke: bool = False,
        now: dt.datetime | None = None,
    ) -> int:
        """End a TLS rotation overlap: stop listing one certificate of a server; returns its serial.

        The certificate leaves the configuration at the next publication; from
        then on peers refuse it. Retiring the newest certificate (a rotation
        abandoned) makes the previous one the server's certificate again. A
        server's only certificate cannot be retired. With `revoke`, the
        certificate is also revoked, in the same change.
        """
        if (serial is None) == (thumbprint is None):
            raise InvalidArgument("give exactly one of a serial number or a thumbprint")
        server = self._server_id(server_id)
        now = now or dt.datetime.now(dt.UTC)
        wanted = thumbprint.strip().lower().replace(":", "") if thumbprint is not None else None
        with self._registry() as registry:
            record = registry.find_server(str(server))
            if record is None:
                raise NotFound(f"security server {server} is not admitted")
            pems = [record.tls_certificate, *record.additional_tls_certificates]
            certs = [pki.parse_certificate_pem(pem.encode()) for pem in pems]
            index = next(
                (
                    n
                    for n, cert in enumerate(certs)
                    if cert.serial_number == serial or pki.thumbprint(cert) == wanted
                ),
                None,
            )
            if index is None:
                described = f"serial {pki.serial_hex(serial)}" if serial is not None else wanted
                raise NotFound(
                    f"security server {server} lists no TLS certificate with {described}"
                )
            if len(pems) == 1:
                raise FailedPrecondition(
                    f"certificate {pki.serial_hex(certs[0].serial_number)} is the only TLS"
                    f" certificate of security server {server}; admit a new one with --rotate"
                    " first (or revoke it to shut the server out)"
                )
            del pems[index]
            record.tls_certificate, record.additional_tls_certificates = pems[0], pems[1:]
            retired = certs[index]
            serial_text = pki.serial_hex(retired.serial_number)
            if revoke and serial_text not in registry.revoked:
                registry.revoked[serial_text] = now.isoformat()
        log.warning(
            "authority.certificate_retired",
            server=str(server),
            serial=serial_text,
            sha256=pki.thumbprint(retired),
            revoked=revoke,
        )
        return retired.serial_number

    def add_subsystem(
        self,
        subsystem_id: str | SubsystemId,
        name: str = "",
        methods: Sequence[tuple[str, bool]] = (),
        file_descriptor_set: bytes = b"",
        servers: Sequence[str | ServerId] = (),
    ) -> None:
        """Register a subsystem of an admitted member, the methods it publishes and,
        optionally, the member's servers that host it (all or nothing).

        With a `file_descriptor_set` and no `methods`, every method of its
        services is published; with both, each listed method must be in the
        descriptors, whose streaming flag wins.
        """
        subsystem = self._subsystem_id(subsystem_id)
        published = published_methods(methods, file_descriptor_set, subsystem)
        hosts: list[str] = []
        for value in servers:
            server = self._server_id(value)
            if server.member != subsystem.member:
                raise FailedPrecondition(
                    f"subsystem {subsystem} cannot be hosted on {server}: the server belongs"
                    " to another member"
                )
            if str(server) not in hosts:
                hosts.append(str(server))
        with self._registry() as registry:
            if registry.find_member(str(subsystem.member)) is None:
                raise NotFound(
                    f"subsystem {subsystem}: its owner {subsystem.member} is not an admitted member"
                )
            registry.check_new_identifier(str(subsystem), "subsystem")
            for host in hosts:
                if registry.find_server(host) is None:
                    raise NotFound(f"security server {host} is not admitted; admit it first")
            registry.subsystems.append(
                Subsystem(
                    id=str(subsystem),
                    name=name.strip(),
                    servers=hosts,
                    methods=published,
                    file_descriptor_set=file_descriptor_set,
                )
            )
        log.info(
            "authority.subsystem_added",
            subsystem=str(subsystem),
            methods=len(published),
            servers=hosts,
        )

    def update_subsystem(
        self,
        subsystem_id: str | SubsystemId,
        methods: Sequence[tuple[str, bool]] = (),
        file_descriptor_set: bytes = b"",
    ) -> None:
        """Replace a registered subsystem's published methods and descriptors: its
        contract changed (`spean publish-table` run again after the table changed).

        The methods are worked out as for `add_subsystem`; its servers, topics and
        catalogue metadata stay as they are (a catalogue entry describing a method
        that is gone is refused at the next publication, naming it).
        """
        subsystem = self._subsystem_id(subsystem_id)
        if not file_descriptor_set and not methods:
            raise InvalidArgument(
                f"subsystem {subsystem}: give the new descriptor set or the methods it publishes"
            )
        published = published_methods(methods, file_descriptor_set, subsystem)
        with self._registry() as registry:
            entry = registry.find_subsystem(str(subsystem))
            if entry is None:
                raise NotFound(
                    f"subsystem {subsystem} is not registered; register it with add-subsystem"
                )
            before = {path for path, _ in entry.methods}
            entry.methods = published
            entry.file_descriptor_set = file_descriptor_set
        after = {path for path, _ in published}
        log.info(
            "authority.subsystem_updated",
            subsystem=str(subsystem),
            methods=len(published),
            added=sorted(after - before),
            removed=sorted(before - after),
        )

    def add_topic(
        self,
        subsystem_id: str | SubsystemId,
        name: str,
        event_type: str,
        file_descriptor_set: bytes = b"",
    ) -> None:
        """Register a topic owned by a registered subsystem, with its event type and,
        optionally, the descriptors that define it (checked to define it)."""
        subsystem = self._subsystem_id(subsystem_id)
        topic = TopicId(subsystem, parse_topic_name(name))
        parse_event_type(event_type)
        if file_descriptor_set:
            described_message(file_descriptor_set, event_type, f"topic {topic}")
        with self._registry() as registry:
            record = registry.find_subsystem(str(subsystem))
            if record is None:
                raise NotFound(f"subsystem {subsystem} is not registered; add it first")
            if any(existing == name for existing, _, _ in record.topics):
                raise FailedPrecondition(f"topic {topic} is already registered")
            record.topics.append((name, event_type, file_descriptor_set))
        log.info("authority.topic_added", topic=str(topic), event_type=event_type)

    def register_subsystem_on_server(
        self, subsystem_id: str | SubsystemId, server_id: str | ServerId
    ) -> None:
        """Record that `server_id` hosts `subsystem_id` (both of the same member); idempotent."""
        subsystem = self._subsystem_id(subsystem_id)
        server = self._server_id(server_id)
        if subsystem.member != server.member:
            raise FailedPrecondition(
                f"subsystem {subsystem} cannot be hosted on {server}: the server belongs to"
                " another member"
            )
        with self._registry() as registry:
            record = registry.find_subsystem(str(subsystem))
            if record is None:
                raise NotFound(f"subsystem {subsystem} is not registered; add it first")
            if registry.find_server(str(server)) is None:
                raise NotFound(f"security server {server} is not admitted; admit it first")
            if str(server) in record.servers:
                # Idempotent: a subsystem both consumes and provides through the
                # same server, and scripts that rerun must not fail halfway.
                return
            record.servers.append(str(server))
        log.info("authority.subsystem_registered", subsystem=str(subsystem), server=str(server))

    def describe(
        self,
        subsystem_id: str | SubsystemId,
        document: CatalogueDocument,
        *,
        now: dt.datetime | None = None,
    ) -> None:
        """Set the catalogue metadata of a registered subsystem (replacing any before).

        Checked as a security server would check it (`parse_catalogue_entry`):
        clients of this instance, only methods the subsystem publishes. It
        reaches the catalogue with the next publication.
        """
        subsystem = self._subsystem_id(subsystem_id)
        now = now or dt.datetime.now(dt.UTC)
        with self._registry() as registry:
            record = registry.find_subsystem(str(subsystem))
            if record is None:
                raise NotFound(f"subsystem {subsystem} is not registered; add it first")
            published = {path for path, _ in record.methods}
            if not published:
                raise FailedPrecondition(
                    f"subsystem {subsystem} publishes no method; only a provider's subsystem"
                    " is described in the catalogue"
                )
            parse_catalogue_entry(to_catalogue_entry(document, now), subsystem, published)
            record.catalogue = document.stored()
            record.catalogue_updated_at = now.isoformat()
        log.info(
            "authority.subsystem_described",
            subsystem=str(subsystem),
            topics=document.topics,
            data_class=document.data_class,
        )

    def revoke(
        self,
        *,
        serial: int | None = None,
        thumbprint: str | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Revoke a certificate this authority issued, by serial or thumbprint; returns the serial.

        The revocation reaches security servers with the next publication.
        """
        if (serial is None) == (thumbprint is None):
            raise InvalidArgument("give exactly one of a serial number or a thumbprint")
        now = now or dt.datetime.now(dt.UTC)
        with self._registry() as registry:
            if serial is not None:
                wanted = pki.serial_hex(serial)
                record = next((i for i in registry.issued if i.serial == wanted), None)
                described = f"serial {wanted}"
            else:
                assert thumbprint is not None
                wanted = thumbprint.strip().lower().replace(":", "")
                record = next((i for i in registry.issued if i.thumbprint == wanted), None)
                described = f"thumbprint {wanted}"
            if record is None:
                raise NotFound(f"this authority issued no certificate with {described}")
            if record.kind == "configuration":
                raise FailedPrecondition(
                    "the configuration-signing certificate cannot be revoked through the"
                    " configuration it signs; issue a new anchor instead"
                )
            if record.serial in registry.revoked:
                raise FailedPrecondition(
                    f"certificate {record.serial} of {record.subject} is already revoked"
                )
            registry.revoked[record.serial] = now.isoformat()
        log.warning(
            "authority.certificate_revoked",
            serial=record.serial,
            subject=record.subject,
            kind=record.kind,
        )
        return int(record.serial, 16)

    @property
    def requires_approval(self) -> bool:
        """Whether join requests wait for an officer (`spean authority approve`)."""
        return self._read_registry().require_approval

    def set_approval(self, required: bool) -> None:
        """Make join requests wait for an officer's approval, or admit them at once."""
        with self._registry() as registry:
            registry.require_approval = required
        log.info("authority.approval_set", required=required)

    def set_auditor_key(self, public_key: bytes) -> None:
        """Register the auditors' raw 32-byte X25519 public key (replacing any before).

        Security servers seal bodies to it from the next publication on; bodies
        sealed before stay readable only with the previous private key.
        """
        if len(public_key) != 32:
            raise InvalidArgument(
                f"the auditor key must be a raw 32-byte X25519 key, got {len(public_key)} bytes"
            )
        with self._registry() as registry:
            registry.auditor_public_key = base64.b64encode(public_key).decode("ascii")
        log.info("authority.auditor_key_set", sha256=auditor_fingerprint(public_key))

    # ------------------------------------------------------------ publication

    def build_configuration(
        self, version: int, now: dt.datetime, validity: dt.timedelta
    ) -> config_pb2.GlobalConfiguration:
        """The registry as a GlobalConfiguration message (unsigned; no state changes)."""
        return to_global_configuration(
            self._read_registry(), self.ca_certificate, version, now, validity
        )

    def publish(
        self, validity: dt.timedelta = DEFAULT_PUBLISH_VALIDITY, *, now: dt.datetime | None = None
    ) -> Path:
        """Sign the registry as the next version; write globalconf.signed and return its path."""
        if not dt.timedelta(0) < validity <= MAX_PUBLISH_VALIDITY:
            raise InvalidArgument(
                f"publication validity must be positive and at most {MAX_PUBLISH_VALIDITY.days}"
                f" days, got {validity}"
            )
        now = now or dt.datetime.now(dt.UTC)
        signing_key = self._load_signing_key()
        with self._registry() as registry:
            version = registry.next_version
            msg = to_global_configuration(registry, self.ca_certificate, version, now, validity)
            signed = sign_global_configuration(msg, signing_key, self.signing_certificate)
            # Fail closed: publish only what a security server would accept.
            verify_global_configuration(signed, self.signing_certificate, now)
            # The version is consumed before anything is written, so that it is
            # never reused for different content even if the write below fails.
            registry.next_version = version + 1
        history = self.directory / PUBLISHED
        history.mkdir(mode=0o755, exist_ok=True)
        keyfiles.write_file_atomically(history / f"{version:08d}.signed", signed)
        keyfiles.write_file_atomically(self.published_path, signed)
        log.info(
            "authority.published",
            version=version,
            expires_at=(now + validity).isoformat(),
            members=len(msg.members),
            servers=len(msg.servers),
            revoked=len(msg.revoked_serials),
        )
        return self.published_path

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AuthorityHttpServer:
        """Serve GET /v1/globalconf and /v1/anchor on a background thread; returns the server."""
        return AuthorityHttpServer(self.published_path, host, port, anchor=self.anchor_path)

    def registry(self) -> Registry:
        """A fresh read of the registry (a copy: changing it changes nothing)."""
        return self._read_registry()

    def check_identifier(self, identifier: MemberId | SubsystemId) -> None:
        """Refuse an identifier of another instance than this authority's."""
        self._check_instance(identifier.instance, str(identifier))

    # ------------------------------------------------------------ internals

    def _member_id(self, value: str | MemberId) -> MemberId:
        member = value if isinstance(value, MemberId) else MemberId.parse(value)
        self._check_instance(member.instance, str(member))
        return member

    def _subsystem_id(self, value: str | SubsystemId) -> SubsystemId:
        subsystem = value if isinstance(value, SubsystemId) else SubsystemId.parse(value)
        self._check_instance(subsystem.instance, str(subsystem))
        return subsystem

    def _server_id(self, value: str | ServerId) -> ServerId:
        server = value if isinstance(value, SubsystemId) else parse_server(value)
        self._check_instance(server.instance, str(server))
        return server

    def _check_instance(self, instance: str, identifier: str) -> None:
        if instance != self.instance:
            raise InvalidArgument(
                f"{identifier} belongs to instance {instance!r}; this authority serves"
                f" {self.instance!r}"
            )

    def _load_ca_key(self) -> pki.PrivateKey:
        if self._ca_key is None:
            self._ca_key = keyfiles.load_private_key(self.directory / CA_KEY, self._passphrase)
        return self._ca_key

    def _load_signing_key(self) -> pki.PrivateKey:
        if self._signing_key is None:
            self._signing_key = keyfiles.load_private_key(
                self.directory / SIGNING_KEY, self._passphrase
            )
        return self._signing_key

    def _read_registry(self) -> Registry:
        return read_registry(self.directory / REGISTRY)

    @contextlib.contextmanager
    def _registry(self) -> Iterator[Registry]:
        """Lock, read, yield for changes, write back atomically (only if no error was raised)."""
        with self._thread_lock, update_registry(self.directory) as registry:
            yield registry


# A server lists at most this many certificates at once: one rotation in
# progress and one more started before the first was retired.
MAX_SERVER_CERTIFICATES = 3


def _listed_certificates(server: Server) -> list[x509.Certificate]:
    pems = [server.tls_certificate, *server.additional_tls_certificates]
    return [pki.parse_certificate_pem(pem.encode()) for pem in pems]


def _check_rotation(record: Server, address: str) -> None:
    if address != record.address:
        raise FailedPrecondition(
            f"security server {record.id} is at {record.address}, not {address}; a rotation"
            " keeps the address (use --replace to move the server)"
        )
    if 1 + len(record.additional_tls_certificates) >= MAX_SERVER_CERTIFICATES:
        raise FailedPrecondition(
            f"security server {record.id} already lists"
            f" {1 + len(record.additional_tls_certificates)} TLS certificates; retire one"
            " first (spean authority retire-certificate)"
        )


def _csr_key(csr: x509.CertificateSigningRequest) -> pki.PublicKey:
    key = csr.public_key()
    pki.key_kind(key)
    assert isinstance(key, pki.PublicKey)
    return key


def _cert_key(cert: x509.Certificate) -> pki.PublicKey:
    key = cert.public_key()
    assert isinstance(key, pki.PublicKey)
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return keyfiles.load_certificate(path)
    except InvalidArgument as exc:
        raise ConfigError(exc.message) from exc
