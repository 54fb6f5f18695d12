"""The federation PKI: keys, certificate requests and certificates.

Theory of operation. The federation authority owns one CA (EC P-256, self
signed, `path_length=0`: it issues end-entity certificates only). Members and
security servers generate their own keys and send a certificate signing
request (CSR); the authority checks that the CSR is signed by the key it
carries (proof of possession) and issues a certificate. Three kinds exist:

- member signing certificate: signs the member's request and response tokens;
  names the member in CN, O and SAN URI ``urn:spean:member:<id>``;
- security server TLS certificate: mutual TLS between security servers; names
  the server in CN, SAN DNS (`ServerId.dns_name()` plus the host of its
  address) and SAN URI ``urn:spean:server:<id>``;
- configuration-signing certificate: the authority's own signing key for the
  global configuration; members receive it out of band as their anchor.

Invariants:

- Issuance uses nothing from a CSR but its public key. Subject, names, usages
  and validity come from the identifier the authority admits, so a requester
  cannot smuggle in a name or a usage it was not given.
- An issued certificate never outlives its issuer, and its serial is a random
  positive 128-bit integer.
- TLS keys are always EC P-256 (accepted by every gRPC stack); member signing
  keys are EC P-256 by default, Ed25519 on request.
- Private keys are PEM PKCS#8, encrypted with the best available algorithm
  when a passphrase is given; `spean.gateway.files.keyfiles` writes them with
  mode 0600 from the first byte and never overwrites one.
- A key's type fixes the one algorithm it signs with (`algorithm_for`): ES256
  (ECDSA over SHA-256) for EC P-256, EdDSA for Ed25519; tokens, the global
  configuration and checkpoints all sign and verify through `sign` and
  `signature_valid`, so no header or envelope can pick another.
- A certificate's thumbprint (`der_thumbprint`) is the lower-case hex SHA-256
  of its DER encoding, whichever form it arrives in (object, DER or PEM):
  token `kid`s, TLS fingerprints and the configuration signer all use it.

Pure: keys, requests and certificates in and out as values and bytes; reading
and writing their files (mode 0600, atomic replace) is
`spean.gateway.files.keyfiles`. Foreign exceptions (cryptography's
ValueError/TypeError) are translated here into the Spean error tree.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import re
import secrets
import ssl
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.identifiers import MemberId, ServerId

KeyKind = Literal["ec-p256", "ed25519"]
CsrKind = Literal["member", "server", "configuration"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Algorithm = Literal["ES256", "EdDSA"]

ES256: Final = "ES256"
EDDSA: Final = "EdDSA"
ALGORITHMS: Final[tuple[Algorithm, ...]] = (ES256, EDDSA)
_ALGORITHM_OF: Final[dict[KeyKind, Algorithm]] = {"ec-p256": ES256, "ed25519": EDDSA}
# Built once: every token and checkpoint signature uses it.
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_THUMBPRINT = re.compile(r"[0-9a-f]{64}\Z")

CA_VALIDITY = dt.timedelta(days=3652)
CONFIGURATION_SIGNING_VALIDITY = dt.timedelta(days=3652)
MEMBER_SIGNING_VALIDITY = dt.timedelta(days=731)
SERVER_TLS_VALIDITY = dt.timedelta(days=366)
# Certificates start a little in the past so that a peer whose clock runs a few
# minutes behind does not refuse a certificate issued a moment ago.
BACKDATE = dt.timedelta(minutes=5)

MEMBER_URI_PREFIX = "urn:spean:member:"
SERVER_URI_PREFIX = "urn:spean:server:"
_CN_MAX = 64  # RFC 5280 ub-common-name

_CSR_PURPOSE = {
    "member": "member signing",
    "server": "security server TLS",
    "configuration": "configuration signing",
}


# --------------------------------------------------------------------------- keys


def generate_key(kind: KeyKind = "ec-p256") -> PrivateKey:
    """A fresh private key: EC P-256 (default) or Ed25519."""
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise InvalidArgument(f"key type {kind!r} is not supported; use 'ec-p256' or 'ed25519'")


def key_kind(key: object) -> KeyKind:
    """The kind of a private or public key; anything but P-256 or Ed25519 is refused."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ec-p256"
        raise InvalidArgument(f"elliptic curve {key.curve.name} is not supported; use P-256")
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise InvalidArgument(
        f"key type {type(key).__name__} is not supported; use EC P-256 or Ed25519"
    )


def algorithm_for(key: object) -> Algorithm:
    """The one signature algorithm `key` is used with: ES256 for EC P-256, EdDSA for Ed25519.

    Any other key is refused with `InvalidArgument` (as `key_kind` refuses it).
    """
    return _ALGORITHM_OF[key_kind(key)]


def sign(key: PrivateKey, data: bytes) -> bytes:
    """`key`'s signature over `data`: DER ECDSA over SHA-256 (P-256), or Ed25519.

    The algorithm is the key's (`algorithm_for`); `key` is a P-256 or Ed25519
    key, which `key_kind` has accepted.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, _ECDSA_SHA256)
    return key.sign(data)


def signature_valid(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` (as `sign` makes it) over `data` verifies with `key`."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, _ECDSA_SHA256)
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PEM PKCS#8, encrypted with the best available algorithm when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    elif not passphrase:
        raise InvalidArgument("the key passphrase is empty; give a non-empty passphrase")
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def parse_private_key(
    data: bytes, passphrase: bytes | None = None, source: str = "private key"
) -> PrivateKey:
    """Parse a PEM private key; errors say whether the passphrase is missing or wrong.

    A passphrase given for an unencrypted key is ignored, so that one
    SPEAN_KEY_PASSPHRASE can serve a mix of encrypted and plain keys.
    """
    encrypted = b"ENCRYPTED" in data
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except TypeError as exc:
        raise FailedPrecondition(
            f"private key {source} is encrypted; give its passphrase with --passphrase-file"
            " or the SPEAN_KEY_PASSPHRASE environment variable"
        ) from exc
    except ValueError as exc:
        if encrypted and passphrase:
            raise FailedPrecondition(f"wrong passphrase for private key {source}") from exc
        raise FailedPrecondition(f"{source} is not a PEM private key") from exc
    except UnsupportedAlgorithm as exc:
        raise FailedPrecondition(f"private key {source} uses an unsupported algorithm") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise FailedPrecondition(
            f"private key {source} is a {type(key).__name__}; use EC P-256 or Ed25519"
        )
    try:
        key_kind(key)
    except InvalidArgument as exc:
        raise FailedPrecondition(f"private key {source}: {exc.message}") from exc
    return key


def public_key_bytes(key: PublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER, to compare two public keys (of any type)."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ----------------------------------------------------------------- certificates


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def parse_certificate_pem(data: bytes, source: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidArgument(f"{source} is not a PEM X.509 certificate") from exc


def parse_certificate_der(data: bytes, source: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidArgument(f"{source} is not a DER X.509 certificate") from exc


def der_thumbprint(der: bytes) -> str:
    """The thumbprint of a DER certificate: its lower-case hexadecimal SHA-256.

    A token's `kid`, a server's TLS fingerprint and the configuration's
    `signer_sha256` are all this value; the other forms below are built on it.
    """
    return hashlib.sha256(der).hexdigest()


def thumbprint(cert: x509.Certificate) -> str:
    """`der_thumbprint` of a parsed certificate."""
    return der_thumbprint(certificate_der(cert))


# A security server sees the same few peer certificates on every exchange:
# each PEM is decoded and hashed once. The key is the PEM itself, so a cached
# answer is exactly the one recomputing would give; the bound keeps a flood of
# distinct certificates from growing it.
@functools.lru_cache(maxsize=1024)
def pem_thumbprint(pem: bytes) -> str:
    """`der_thumbprint` of a PEM certificate (a TLS peer's, as gRPC gives it)."""
    return der_thumbprint(ssl.PEM_cert_to_DER_cert(pem.decode("ascii")))


def is_thumbprint(text: object) -> bool:
    """Whether `text` is written as a thumbprint is: 64 lower-case hexadecimal digits."""
    return isinstance(text, str) and _THUMBPRINT.match(text) is not None


def serial_hex(serial: int) -> str:
    """A serial as the global configuration writes it: lower-case hex, no leading zeros."""
    return format(serial, "x")


def parse_serial_hex(text: str) -> int:
    """Parse a hexadecimal certificate serial (an optional ``0x`` and colons are accepted)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > 40 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InvalidArgument(f"certificate serial {text!r} is not a hexadecimal number")
    value = int(cleaned, 16)
    if value <= 0:
        raise InvalidArgument(f"certificate serial {text!r} must be positive")
    return value


def san_uris(cert: x509.Certificate) -> list[str]:
    """The URI subject alternative names of `cert` (empty when there is no SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def issued_by(cert: x509.Certificate, issuers: Sequence[x509.Certificate]) -> bool:
    """True when one of `issuers` signed `cert` (signature and issuer name both match)."""
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets: ``[::1]:9443``) and check both parts."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise InvalidArgument(f"address {address!r} must have the form host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidArgument(f"address {address!r}: port {port} is outside 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidArgument(f"address {address!r}: {host!r} is not an IPv6 address") from exc
        return host, port
    if ":" in host:
        raise InvalidArgument(f"address {address!r}: write an IPv6 address in brackets, [::1]:port")
    labels = host.split(".")
    if len(host) > 253 or not all(
        label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        raise InvalidArgument(f"address {address!r}: {host!r} is not a valid host name")
    return host, port


# ------------------------------------------------------------------------- CSRs


def make_csr(key: PrivateKey, identifier: str, kind: CsrKind) -> x509.CertificateSigningRequest:
    """A CSR for `identifier`, signed by `key` (which proves possession of it).

    The subject is informative only: the authority sets the real one. A
    security server's TLS key must be EC P-256.
    """
    if kind not in _CSR_PURPOSE:
        raise InvalidArgument(f"CSR kind {kind!r} must be one of {sorted(_CSR_PURPOSE)}")
    if kind == "server" and key_kind(key) != "ec-p256":
        raise InvalidArgument("a security server TLS key must be EC P-256")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(identifier)),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CSR_PURPOSE[kind]),
        ]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(key, _hash_for(key))


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(data: bytes, source: str = "CSR") -> x509.CertificateSigningRequest:
    """Parse a PEM (or DER) CSR and check its self-signature; a forged CSR is refused."""
    try:
        if data.lstrip().startswith(b"-----"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise InvalidArgument(f"{source} is not a certificate signing request") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgument(f"{source}: its signature cannot be checked ({exc})") from exc
    if not valid:
        raise InvalidArgument(
            f"{source}: the signature does not match the public key it carries"
            " (the requester must sign the CSR with the key being certified)"
        )
    return csr


def _csr_public_key(csr: x509.CertificateSigningRequest, allowed: tuple[KeyKind, ...]) -> PublicKey:
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgument(f"the CSR's public key cannot be read ({exc})") from exc
    kind = key_kind(public_key)
    if kind not in allowed:
        raise InvalidArgument(
            f"the CSR carries an {kind} key; this certificate needs {' or '.join(allowed)}"
        )
    assert isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return public_key


# ------------------------------------------------------------------ issuance


def create_ca(
    key: PrivateKey,
    instance: str,
    *,
    now: dt.datetime | None = None,
    validity: dt.timedelta = CA_VALIDITY,
) -> x509.Certificate:
    """The federation's self-signed root: EC P-256, issues end-entity certificates only."""
    if key_kind(key) != "ec-p256":
        raise InvalidArgument("the federation CA key must be EC P-256")
    now = _now(now)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(f"{instance} federation CA")),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, instance),
        ]
    )
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(_random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def issue_member_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    member: MemberId,
    name: str,
    *,
    now: dt.datetime | None = None,
    validity: dt.timedelta = MEMBER_SIGNING_VALIDITY,
) -> x509.Certificate:
    """A member's token-signing certificate (EC P-256 or Ed25519 key)."""
    if not name.strip():
        raise InvalidArgument(f"member {member}: the name must not be empty")
    public_key = _csr_public_key(csr, ("ec-p256", "ed25519"))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(str(member))),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
    )
    builder = (
        _end_entity(ca_cert, public_key, subject, _now(now), validity)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"{MEMBER_URI_PREFIX}{member}")]
            ),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def issue_server_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    server: ServerId,
    address: str,
    *,
    now: dt.datetime | None = None,
    validity: dt.timedelta = SERVER_TLS_VALIDITY,
) -> x509.Certificate:
    """A security server's TLS certificate, for both the server and the client role."""
    public_key = _csr_public_key(csr, ("ec-p256",))
    host, _ = parse_address(address)
    names: list[x509.GeneralName] = [x509.DNSName(server.dns_name())]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host.lower() != server.dns_name():
            names.append(x509.DNSName(host.lower()))
    names.append(x509.UniformResourceIdentifier(f"{SERVER_URI_PREFIX}{server}"))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(str(server)))])
    builder = (
        _end_entity(ca_cert, public_key, subject, _now(now), validity)
        .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def issue_configuration_signing_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    instance: str,
    *,
    now: dt.datetime | None = None,
    validity: dt.timedelta = CONFIGURATION_SIGNING_VALIDITY,
) -> x509.Certificate:
    """The authority's configuration-signing certificate: the members' configuration anchor."""
    public_key = _csr_public_key(csr, ("ec-p256", "ed25519"))
    subject = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, _common_name(f"{instance} configuration signing")
            ),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, instance),
        ]
    )
    builder = _end_entity(ca_cert, public_key, subject, _now(now), validity).add_extension(
        _key_usage(digital_signature=True), critical=True
    )
    return builder.sign(ca_key, hashes.SHA256())


def _end_entity(
    ca_cert: x509.Certificate,
    public_key: PublicKey,
    subject: x509.Name,
    now: dt.datetime,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    if validity <= dt.timedelta(0):
        raise InvalidArgument(f"certificate validity must be positive, got {validity}")
    ca_end = ca_cert.not_valid_after_utc
    if ca_end <= now:
        raise FailedPrecondition(
            f"the federation CA certificate expired at {ca_end.isoformat()}; it cannot issue"
        )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound as exc:
        raise FailedPrecondition("the CA certificate has no subject key identifier") from exc
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_random_serial())
        .not_valid_before(now - BACKDATE)
        # A certificate never outlives the CA that vouches for it.
        .not_valid_after(min(now + validity, ca_end))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _common_name(text: str) -> str:
    if not 0 < len(text) <= _CN_MAX:
        raise InvalidArgument(
            f"{text!r} is longer than {_CN_MAX} characters and cannot be a certificate common name"
        )
    return text


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519 signs the message itself; passing a hash is an error for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _random_serial() -> int:
    # 128 random bits, never zero (RFC 5280 requires a positive serial).
    return secrets.randbits(128) or 1


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise InvalidArgument("timestamps must be timezone-aware")
    return now
