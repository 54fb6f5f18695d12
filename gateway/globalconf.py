"""The signed global configuration: model, signing and verification (pure, no I/O).

Theory of operation. The authority builds a `spean.v1.GlobalConfiguration`,
serializes it deterministically, signs exactly those bytes and wraps them in a
`SignedGlobalConfiguration`. A verifier checks, in this order:

1. the envelope parses and names a supported algorithm;
2. the signer thumbprint equals the thumbprint of the verifier's anchor, the
   algorithm matches the anchor's key type (no algorithm confusion) and the
   anchor is within its validity period;
3. the signature over the `configuration` bytes is valid;
4. only then are those bytes parsed, and every field validated: identifiers,
   references between members, subsystems and servers, certificates (they
   must chain to a CA of the configuration and name the member or server
   they are listed under), fingerprints, serials;
5. the configuration is not expired.

Any failure fails closed: steps 1 to 3 raise `Unauthenticated`, step 4 raises
`Unauthenticated` for undecodable bytes and `InvalidArgument` for content that
decodes but is wrong, step 5 raises `Unavailable`. Rollback (a lower version
than the one held) needs state and is checked by
`spean.gateway.server.globalconf_client`, not here.

A `GlobalConfiguration` value is immutable; its lookup indexes are built once
when it is parsed, so every lookup on the data path is a dict access.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from google.protobuf.message import DecodeError

from spean.gateway import pki
from spean.gateway.catalogue_metadata import CatalogueMetadata, parse_catalogue_entry
from spean.gateway.errors import InvalidArgument, Unauthenticated, Unavailable
from spean.gateway.events import TopicId, parse_event_type, parse_topic_name
from spean.gateway.identifiers import (
    MemberId,
    ServerId,
    SubsystemId,
    parse_instance,
    parse_method,
    parse_server,
)
from spean.v1 import config_pb2

# Far above any real federation (thousands of members with descriptors), far
# below what would let a hostile source exhaust memory.
MAX_SIGNED_BYTES = 64 * 1024 * 1024


class GlobalConfigurationExpired(Unavailable):
    """A correctly signed configuration whose expiry has passed.

    Carries the version so that a client can still use it as its rollback floor.
    """

    def __init__(self, version: int, expires_at: dt.datetime) -> None:
        super().__init__(
            f"global configuration version {version} expired at {expires_at.isoformat()};"
            " obtain a newer one from the federation authority"
        )
        self.version = version
        self.expires_at = expires_at


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """A published gRPC method."""

    path: str
    server_streaming: bool


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """An admitted member and its token-signing certificates (revoked ones included)."""

    id: MemberId
    name: str
    signing_certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A published topic (docs/pubsub.md): its owner, name, event type and descriptors."""

    id: TopicId
    event_type: str
    file_descriptor_set: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class SubsystemInfo:
    """A subsystem, the servers that host it and the methods and topics it publishes."""

    id: SubsystemId
    name: str
    servers: tuple[ServerId, ...]
    methods: tuple[MethodInfo, ...]
    file_descriptor_set: bytes = field(default=b"", repr=False)
    topics: tuple[TopicInfo, ...] = ()
    # What the provider says about it in the catalogue (None until described).
    catalogue: CatalogueMetadata | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """An admitted security server: where it listens and the TLS certificates it presents.

    `tls_certificate` is the newest listed certificate; during a TLS key
    rotation the previous ones are in `tls_certificates` too, and a peer
    presenting any of them is this server (`tls_fingerprints`).
    """

    id: ServerId
    address: str
    host: str
    port: int
    tls_certificate_sha256: str
    tls_certificate: x509.Certificate = field(repr=False)
    # Every listed certificate, `tls_certificate` first, and their SHA-256s in the same order.
    tls_certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    tls_fingerprints: tuple[str, ...] = ()

    @property
    def owner(self) -> MemberId:
        return self.id.member


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A member's token-verification key, named by `kid` (its certificate's thumbprint)."""

    member: MemberId
    public_key: pki.PublicKey = field(repr=False)
    algorithm: pki.Algorithm
    certificate: x509.Certificate = field(repr=False)
    kid: str


@dataclass(frozen=True, slots=True, eq=False)
class GlobalConfiguration:
    """A verified global configuration with O(1) lookups.

    Build it with `verify_global_configuration`; `from_proto` is for bytes
    whose signature has already been checked.
    """

    instance: str
    version: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    ca_certificates: tuple[x509.Certificate, ...] = field(repr=False)
    ca_pem: bytes = field(repr=False)
    members: tuple[MemberInfo, ...] = field(repr=False)
    subsystems: tuple[SubsystemInfo, ...] = field(repr=False)
    servers: tuple[ServerInfo, ...] = field(repr=False)
    revoked_serials: frozenset[int] = field(repr=False)
    auditor_public_key: bytes = field(repr=False)
    _members: dict[MemberId, MemberInfo] = field(repr=False)
    _subsystems: dict[SubsystemId, SubsystemInfo] = field(repr=False)
    _servers: dict[ServerId, ServerInfo] = field(repr=False)
    _servers_by_fingerprint: dict[str, ServerInfo] = field(repr=False)
    _servers_for: dict[SubsystemId, list[ServerInfo]] = field(repr=False)
    _methods: dict[tuple[SubsystemId, str], MethodInfo] = field(repr=False)
    _keys: dict[str, TrustedKey] = field(repr=False)
    _topics: dict[TopicId, TopicInfo] = field(default_factory=dict, repr=False)
    # Certificates already found to be issued by one of `ca_certificates`.
    # Checking a signature costs ~100 us and every exchange checks its signer's
    # certificate; the answer cannot change while this (immutable) configuration
    # is in use, and a new configuration starts empty. Only successes are
    # remembered, so the set holds nothing but certificates the federation CA
    # issued (it cannot be grown by a peer presenting junk). Adding to a set is
    # atomic under the GIL; a race only repeats a check.
    _issued: set[x509.Certificate] = field(default_factory=set, repr=False)

    # ------------------------------------------------------------ lookups

    def member(self, member_id: MemberId) -> MemberInfo | None:
        return self._members.get(member_id)

    def subsystem(self, subsystem_id: SubsystemId) -> SubsystemInfo | None:
        return self._subsystems.get(subsystem_id)

    def server(self, server_id: ServerId) -> ServerInfo | None:
        return self._servers.get(server_id)

    def server_by_fingerprint(self, sha256_hex: str) -> ServerInfo | None:
        """The server whose TLS certificate has this SHA-256 (revocation not checked here)."""
        return self._servers_by_fingerprint.get(sha256_hex.lower())

    def servers_for(self, subsystem_id: SubsystemId) -> list[ServerInfo]:
        """The servers hosting `subsystem_id`, in published order (empty if unknown)."""
        return list(self._servers_for.get(subsystem_id, ()))

    def method(self, subsystem_id: SubsystemId, path: str) -> MethodInfo | None:
        """The method `path` if `subsystem_id` publishes it."""
        return self._methods.get((subsystem_id, path))

    def topic(self, topic_id: TopicId) -> TopicInfo | None:
        """The topic `topic_id` if its owner publishes it."""
        return self._topics.get(topic_id)

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revoked_serials

    def is_expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at

    # ------------------------------------------------------------ trust

    def signing_key(self, kid: str, now: dt.datetime | None = None) -> TrustedKey | None:
        """The unrevoked key named `kid`; with `now`, only if its certificate is valid then.

        Token verification resolves keys with `spean.gateway.trust.key_resolver`,
        which says why a listed key cannot be trusted.
        """
        key = self._keys.get(kid.lower())
        if key is None or self.is_revoked(key.certificate.serial_number):
            return None
        if now is not None and not _within_validity(key.certificate, now):
            return None
        return key

    def check_certificate_valid(self, cert: x509.Certificate, now: dt.datetime) -> None:
        """Raise `Unauthenticated` unless `cert` chains to the federation CA, is unrevoked
        and is within its validity period at `now`."""
        if cert not in self._issued:
            if not pki.issued_by(cert, self.ca_certificates):
                raise Unauthenticated(
                    f"certificate {_describe(cert)} was not issued by the federation CA"
                )
            self._issued.add(cert)
        if self.is_revoked(cert.serial_number):
            raise Unauthenticated(
                f"certificate {_describe(cert)} is revoked"
                f" (global configuration version {self.version})"
            )
        if now < cert.not_valid_before_utc:
            raise Unauthenticated(
                f"certificate {_describe(cert)} is not valid before"
                f" {cert.not_valid_before_utc.isoformat()} (check this machine's clock)"
            )
        if now >= cert.not_valid_after_utc:
            raise Unauthenticated(
                f"certificate {_describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}"
            )

    # ------------------------------------------------------------ parsing

    @classmethod
    def from_proto(cls, msg: config_pb2.GlobalConfiguration) -> GlobalConfiguration:
        """Validate `msg` completely and build the indexes; `InvalidArgument` on any defect."""
        return _Builder(msg).build()


# ---------------------------------------------------------------- sign/verify


def sign_global_configuration(
    msg: config_pb2.GlobalConfiguration, key: pki.PrivateKey, cert: x509.Certificate
) -> bytes:
    """Serialize `msg` deterministically, sign it with `key` and return the envelope bytes."""
    if pki.public_key_bytes(key.public_key()) != pki.public_key_bytes(_public_key(cert)):
        raise InvalidArgument("the signing key does not belong to the signing certificate")
    configuration = msg.SerializeToString(deterministic=True)
    envelope = config_pb2.SignedGlobalConfiguration(
        configuration=configuration,
        algorithm=pki.algorithm_for(key),
        signature=pki.sign(key, configuration),
        signer_sha256=pki.thumbprint(cert),
    )
    return envelope.SerializeToString(deterministic=True)


def verify_global_configuration(
    data: bytes, anchor: x509.Certificate, now: dt.datetime
) -> GlobalConfiguration:
    """Verify `data` (a serialized SignedGlobalConfiguration) against `anchor` and parse it.

    Raises `Unauthenticated` (bad envelope, wrong signer, bad signature,
    undecodable configuration, anchor outside its validity), `InvalidArgument`
    (signed but invalid content) or `GlobalConfigurationExpired` (an `Unavailable`).
    """
    configuration = verify_signature(data, anchor, now)
    msg = config_pb2.GlobalConfiguration()
    try:
        msg.ParseFromString(configuration)
    except DecodeError as exc:
        raise Unauthenticated("the signed global configuration cannot be decoded") from exc
    conf = GlobalConfiguration.from_proto(msg)
    if conf.is_expired(now):
        raise GlobalConfigurationExpired(conf.version, conf.expires_at)
    return conf


def verify_signature(data: bytes, anchor: x509.Certificate, now: dt.datetime) -> bytes:
    """Check the envelope's signature against `anchor`; return the signed configuration bytes."""
    if len(data) > MAX_SIGNED_BYTES:
        raise Unauthenticated(
            f"the signed global configuration is {len(data)} bytes, above the"
            f" {MAX_SIGNED_BYTES}-byte limit"
        )
    envelope = config_pb2.SignedGlobalConfiguration()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise Unauthenticated("the signed global configuration envelope cannot be decoded") from exc
    anchor_thumbprint = pki.thumbprint(anchor)
    if envelope.signer_sha256.lower() != anchor_thumbprint:
        raise Unauthenticated(
            f"the global configuration is signed by certificate {envelope.signer_sha256!r},"
            f" not by the configuration anchor {anchor_thumbprint}"
        )
    public_key = _public_key(anchor)
    expected = pki.algorithm_for(public_key)
    if envelope.algorithm != expected:
        raise Unauthenticated(
            f"the global configuration signature algorithm is {envelope.algorithm!r};"
            f" the configuration anchor's key needs {expected!r}"
        )
    if not _within_validity(anchor, now):
        raise Unauthenticated(
            f"the configuration anchor {_describe(anchor)} is valid from"
            f" {anchor.not_valid_before_utc.isoformat()} to"
            f" {anchor.not_valid_after_utc.isoformat()}, not at {now.isoformat()};"
            " obtain a current anchor from the federation authority"
        )
    if not pki.signature_valid(public_key, envelope.signature, envelope.configuration):
        raise Unauthenticated(
            "the global configuration signature is not valid for the configuration anchor"
            " (the file was altered or signed with another key)"
        )
    return envelope.configuration


# ---------------------------------------------------------------- internals


def _public_key(cert: x509.Certificate) -> pki.PublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise Unauthenticated(f"certificate {_describe(cert)} has an unsupported key type")
    try:
        pki.key_kind(key)
    except InvalidArgument as exc:
        raise Unauthenticated(f"certificate {_describe(cert)}: {exc.message}") from exc
    return key


def _within_validity(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def _describe(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    return f"{subject!r} (serial {pki.serial_hex(cert.serial_number)})"


class _Builder:
    """Validates one GlobalConfiguration message and builds its indexes."""

    def __init__(self, msg: config_pb2.GlobalConfiguration) -> None:
        self.msg = msg
        self.where = f"global configuration version {msg.version}"

    def fail(self, detail: str) -> InvalidArgument:
        return InvalidArgument(f"{self.where}: {detail}")

    def build(self) -> GlobalConfiguration:
        msg = self.msg
        try:
            parse_instance(msg.instance)
        except InvalidArgument:
            raise self.fail(f"instance {msg.instance!r} is not a valid instance code") from None
        if msg.version < 1:
            raise self.fail("version must be at least 1")
        issued_at = self.timestamp("issued_at")
        expires_at = self.timestamp("expires_at")
        if expires_at <= issued_at:
            raise self.fail("expires_at must be later than issued_at")
        if msg.auditor_public_key and len(msg.auditor_public_key) != 32:
            raise self.fail("auditor_public_key must be a raw 32-byte X25519 key or empty")
        cas = self.ca_certificates()
        revoked = self.revoked_serials()
        members, keys = self.members(cas)
        servers = self.servers(cas, members)
        by_fingerprint = {
            fingerprint: server
            for server in servers.values()
            for fingerprint in server.tls_fingerprints
        }
        subsystems, servers_for, methods = self.subsystems(members, servers)
        topics = {topic.id: topic for info in subsystems.values() for topic in info.topics}
        return GlobalConfiguration(
            instance=msg.instance,
            version=msg.version,
            issued_at=issued_at,
            expires_at=expires_at,
            ca_certificates=cas,
            ca_pem=b"".join(pki.certificate_pem(cert) for cert in cas),
            members=tuple(members.values()),
            subsystems=tuple(subsystems.values()),
            servers=tuple(servers.values()),
            revoked_serials=revoked,
            auditor_public_key=bytes(msg.auditor_public_key),
            _members=members,
            _subsystems=subsystems,
            _servers=servers,
            _servers_by_fingerprint=by_fingerprint,
            _servers_for=servers_for,
            _methods=methods,
            _keys=keys,
            _topics=topics,
        )

    def timestamp(self, name: Literal["issued_at", "expires_at"]) -> dt.datetime:
        if not self.msg.HasField(name):
            raise self.fail(f"{name} is missing")
        try:
            return getattr(self.msg, name).ToDatetime(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        except (ValueError, OverflowError) as exc:
            raise self.fail(f"{name} is not a valid timestamp") from exc

    def certificate(self, der: bytes, what: str) -> x509.Certificate:
        try:
            return pki.parse_certificate_der(der, what)
        except InvalidArgument as exc:
            raise self.fail(exc.message) from exc

    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        if not self.msg.ca_certificates:
            raise self.fail("no CA certificate is listed")
        cas = []
        for index, der in enumerate(self.msg.ca_certificates):
            cert = self.certificate(der, f"CA certificate #{index}")
            try:
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                constraints = None
            if constraints is None or not constraints.ca:
                raise self.fail(f"CA certificate #{index} is not a CA certificate")
            cas.append(cert)
        return tuple(cas)

    def revoked_serials(self) -> frozenset[int]:
        serials = set()
        for text in self.msg.revoked_serials:
            try:
                serials.add(pki.parse_serial_hex(text))
            except InvalidArgument as exc:
                raise self.fail(f"revoked_serials: {exc.message}") from exc
        return frozenset(serials)

    def member_id(self, text: str) -> MemberId:
        try:
            member_id = MemberId.parse(text)
        except InvalidArgument as exc:
            raise self.fail(exc.message) from exc
        self.same_instance(member_id.instance, text)
        return member_id

    def subsystem_id(self, text: str, kind: str) -> SubsystemId:
        try:
            value = parse_server(text) if kind == "server" else SubsystemId.parse(text)
        except InvalidArgument as exc:
            raise self.fail(exc.message) from exc
        self.same_instance(value.instance, text)
        return value

    def same_instance(self, instance: str, text: str) -> None:
        if instance != self.msg.instance:
            raise self.fail(f"{text!r} belongs to instance {instance!r}, not {self.msg.instance!r}")

    def members(
        self, cas: Sequence[x509.Certificate]
    ) -> tuple[dict[MemberId, MemberInfo], dict[str, TrustedKey]]:
        members: dict[MemberId, MemberInfo] = {}
        keys: dict[str, TrustedKey] = {}
        folded: set[str] = set()
        for entry in self.msg.members:
            member_id = self.member_id(entry.id)
            self.unique(folded, str(member_id), "member")
            where = f"member {member_id}"
            certs = []
            for index, der in enumerate(entry.signing_certificates):
                cert = self.certificate(der, f"{where}: signing certificate #{index}")
                kid = pki.der_thumbprint(der)
                self.check_issued(cert, cas, f"{where}: signing certificate {kid}")
                self.check_uri(cert, f"{pki.MEMBER_URI_PREFIX}{member_id}", where)
                if kid in keys:
                    raise self.fail(f"{where}: signing certificate {kid} is listed twice")
                try:
                    public_key = _public_key(cert)
                except Unauthenticated as exc:
                    raise self.fail(f"{where}: {exc.message}") from exc
                keys[kid] = TrustedKey(
                    member=member_id,
                    public_key=public_key,
                    algorithm=pki.algorithm_for(public_key),
                    certificate=cert,
                    kid=kid,
                )
                certs.append(cert)
            members[member_id] = MemberInfo(member_id, entry.name, tuple(certs))
        return members, keys

    def servers(
        self, cas: Sequence[x509.Certificate], members: dict[MemberId, MemberInfo]
    ) -> dict[ServerId, ServerInfo]:
        servers: dict[ServerId, ServerInfo] = {}
        folded: set[str] = set()
        fingerprints: set[str] = set()
        for entry in self.msg.servers:
            server_id = self.subsystem_id(entry.id, "server")
            self.unique(folded, str(server_id), "security server")
            where = f"security server {server_id}"
            if server_id.member not in members:
                raise self.fail(f"{where}: its owner {server_id.member} is not a member")
            try:
                host, port = pki.parse_address(entry.address)
            except InvalidArgument as exc:
                raise self.fail(f"{where}: {exc.message}") from exc
            if not pki.is_thumbprint(entry.tls_certificate_sha256):
                raise self.fail(
                    f"{where}: tls_certificate_sha256 must be 64 lower-case hexadecimal digits"
                )
            if not entry.tls_certificate:
                raise self.fail(f"{where}: tls_certificate is missing")
            if pki.der_thumbprint(entry.tls_certificate) != entry.tls_certificate_sha256:
                raise self.fail(f"{where}: tls_certificate_sha256 does not match tls_certificate")
            certs: list[x509.Certificate] = []
            listed: list[str] = []
            ders = [entry.tls_certificate, *entry.additional_tls_certificates]
            for index, der in enumerate(ders):
                what = (
                    "TLS certificate" if index == 0 else f"additional TLS certificate #{index - 1}"
                )
                fingerprint = pki.der_thumbprint(der)
                if fingerprint in listed:
                    raise self.fail(f"{where}: TLS certificate {fingerprint} is listed twice")
                if fingerprint in fingerprints:
                    raise self.fail(f"{where}: its {what} is also another server's")
                cert = self.certificate(der, f"{where}: {what}")
                self.check_issued(cert, cas, f"{where}: {what}")
                self.check_uri(cert, f"{pki.SERVER_URI_PREFIX}{server_id}", where)
                certs.append(cert)
                listed.append(fingerprint)
            fingerprints.update(listed)
            servers[server_id] = ServerInfo(
                id=server_id,
                address=entry.address,
                host=host,
                port=port,
                tls_certificate_sha256=entry.tls_certificate_sha256,
                tls_certificate=certs[0],
                tls_certificates=tuple(certs),
                tls_fingerprints=tuple(listed),
            )
        return servers

    def subsystems(
        self, members: dict[MemberId, MemberInfo], servers: dict[ServerId, ServerInfo]
    ) -> tuple[
        dict[SubsystemId, SubsystemInfo],
        dict[SubsystemId, list[ServerInfo]],
        dict[tuple[SubsystemId, str], MethodInfo],
    ]:
        subsystems: dict[SubsystemId, SubsystemInfo] = {}
        servers_for: dict[SubsystemId, list[ServerInfo]] = {}
        methods: dict[tuple[SubsystemId, str], MethodInfo] = {}
        folded: set[str] = set()
        for entry in self.msg.subsystems:
            subsystem_id = self.subsystem_id(entry.id, "subsystem")
            self.unique(folded, str(subsystem_id), "subsystem")
            where = f"subsystem {subsystem_id}"
            if subsystem_id.member not in members:
                raise self.fail(f"{where}: its owner {subsystem_id.member} is not a member")
            hosts: list[ServerInfo] = []
            for text in entry.servers:
                server_id = self.subsystem_id(text, "server")
                server = servers.get(server_id)
                if server is None:
                    raise self.fail(f"{where}: server {server_id} is not a security server")
                if server_id.member != subsystem_id.member:
                    raise self.fail(f"{where}: server {server_id} belongs to another member")
                if server in hosts:
                    raise self.fail(f"{where}: server {server_id} is listed twice")
                hosts.append(server)
            published: list[MethodInfo] = []
            for method in entry.methods:
                try:
                    path = parse_method(method.path)
                except InvalidArgument as exc:
                    raise self.fail(f"{where}: {exc.message}") from exc
                if (subsystem_id, path) in methods:
                    raise self.fail(f"{where}: method {path} is listed twice")
                info = MethodInfo(path, method.server_streaming)
                methods[(subsystem_id, path)] = info
                published.append(info)
            subsystems[subsystem_id] = SubsystemInfo(
                id=subsystem_id,
                name=entry.name,
                servers=tuple(server.id for server in hosts),
                methods=tuple(published),
                file_descriptor_set=bytes(entry.file_descriptor_set),
                topics=self.topics(subsystem_id, entry, where),
                catalogue=self.catalogue(entry, subsystem_id, published),
            )
            servers_for[subsystem_id] = hosts
        return subsystems, servers_for, methods

    def topics(
        self, subsystem_id: SubsystemId, entry: config_pb2.Subsystem, where: str
    ) -> tuple[TopicInfo, ...]:
        topics: dict[str, TopicInfo] = {}
        for topic in entry.topics:
            try:
                topic_id = TopicId(subsystem_id, parse_topic_name(topic.name))
                event_type = parse_event_type(topic.event_type)
            except InvalidArgument as exc:
                raise self.fail(f"{where}: {exc.message}") from exc
            if topic.name in topics:
                raise self.fail(f"{where}: topic {topic.name} is listed twice")
            topics[topic.name] = TopicInfo(topic_id, event_type, bytes(topic.file_descriptor_set))
        return tuple(topics.values())

    def catalogue(
        self,
        entry: config_pb2.Subsystem,
        subsystem_id: SubsystemId,
        published: Sequence[MethodInfo],
    ) -> CatalogueMetadata | None:
        if not entry.HasField("catalogue"):
            return None
        paths = {method.path for method in published}
        try:
            return parse_catalogue_entry(entry.catalogue, subsystem_id, paths)
        except InvalidArgument as exc:
            raise self.fail(exc.message) from exc

    def unique(self, folded: set[str], text: str, kind: str) -> None:
        # Identifiers differing only in case would map to the same DNS name.
        key = text.casefold()
        if key in folded:
            raise self.fail(
                f"{kind} {text} is listed twice (identifiers are compared ignoring case)"
            )
        folded.add(key)

    def check_issued(
        self, cert: x509.Certificate, cas: Sequence[x509.Certificate], what: str
    ) -> None:
        if not pki.issued_by(cert, cas):
            raise self.fail(f"{what} was not issued by a CA of this configuration")

    def check_uri(self, cert: x509.Certificate, expected: str, where: str) -> None:
        if expected not in pki.san_uris(cert):
            raise self.fail(f"{where}: certificate {_describe(cert)} does not name {expected}")


__all__ = [
    "MAX_SIGNED_BYTES",
    "GlobalConfiguration",
    "GlobalConfigurationExpired",
    "MemberInfo",
    "MethodInfo",
    "ServerInfo",
    "SubsystemInfo",
    "TopicInfo",
    "TrustedKey",
    "sign_global_configuration",
    "verify_global_configuration",
    "verify_signature",
]
