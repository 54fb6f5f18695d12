"""The federation PKI: keys on disk, CSRs, issued certificates, and real TLS with them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spean.gateway import pki
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import MemberId, parse_server

MOH = MemberId.parse("KH/GOV/MOH")
SS1 = parse_server("KH/GOV/MOH/ss1")


@dataclass
class CA:
    key: pki.PrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return pki.certificate_pem(self.cert)


def make_ca(instance: str = "KH") -> CA:
    key = pki.generate_key()
    return CA(key, pki.create_ca(key, instance))


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


def key_pem(key: pki.PrivateKey) -> bytes:
    return pki.private_key_pem(key)


USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def usage(cert: x509.Certificate) -> set[str]:
    """The key usages set in `cert`, which must mark the extension critical."""
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    return {name for name in USAGES if getattr(ext.value, name)}


def issue_server(ca: CA, address: str = "127.0.0.1:9443", server=SS1):
    key = pki.generate_key()
    csr = pki.make_csr(key, str(server), "server")
    return key, pki.issue_server_certificate(ca.key, ca.cert, csr, server, address)


# ---------------------------------------------------------------- keys on disk


def test_private_key_is_created_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    keyfiles.write_private_key(path, pki.generate_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    original = path.read_bytes()
    with pytest.raises(FailedPrecondition, match="refusing to overwrite"):
        keyfiles.write_private_key(path, pki.generate_key())
    assert path.read_bytes() == original


def test_private_key_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        keyfiles.write_private_key(tmp_path / "k.key", pki.generate_key())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["ec-p256", "ed25519"])
def test_encrypted_key_round_trip(tmp_path: Path, kind: pki.KeyKind) -> None:
    key = pki.generate_key(kind)
    path = tmp_path / "k.key"
    keyfiles.write_private_key(path, key, b"correct horse")
    text = path.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in text
    loaded = keyfiles.load_private_key(path, b"correct horse")
    assert pki.public_key_bytes(loaded.public_key()) == pki.public_key_bytes(key.public_key())


def test_encrypted_key_without_passphrase_says_how_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keyfiles.write_private_key(path, pki.generate_key(), b"secret")
    with pytest.raises(FailedPrecondition, match=r"is encrypted.*--passphrase-file.*SPEAN_KEY"):
        keyfiles.load_private_key(path)


def test_wrong_passphrase_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keyfiles.write_private_key(path, pki.generate_key(), b"secret")
    with pytest.raises(FailedPrecondition, match=f"wrong passphrase for private key {path}"):
        keyfiles.load_private_key(path, b"guess")


def test_unencrypted_key_loads_even_when_a_passphrase_is_set(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keyfiles.write_private_key(path, pki.generate_key("ed25519"))
    assert isinstance(keyfiles.load_private_key(path, b"unused"), ed25519.Ed25519PrivateKey)


def test_garbage_and_unsupported_keys_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    with pytest.raises(FailedPrecondition, match="is not a PEM private key"):
        keyfiles.load_private_key(garbage)
    p384 = tmp_path / "p384.key"
    p384.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(FailedPrecondition, match="secp384r1 is not supported"):
        keyfiles.load_private_key(p384)
    with pytest.raises(FailedPrecondition, match="cannot read private key"):
        keyfiles.load_private_key(tmp_path / "missing.key")


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="passphrase is empty"):
        keyfiles.write_private_key(tmp_path / "k.key", pki.generate_key(), b"")
    assert not (tmp_path / "k.key").exists()


def test_certificate_file_round_trip(tmp_path: Path, ca: CA) -> None:
    path = tmp_path / "ca.crt"
    keyfiles.write_certificate(path, ca.cert)
    assert keyfiles.load_certificate(path) == ca.cert
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    (tmp_path / "bad.crt").write_text("nope")
    with pytest.raises(InvalidArgument, match=r"is not a PEM X\.509 certificate"):
        keyfiles.load_certificate(tmp_path / "bad.crt")


# ---------------------------------------------------------------- CSRs


def test_csr_with_a_bad_signature_is_refused() -> None:
    key = pki.generate_key()
    der = pki.make_csr(key, "KH/GOV/MOH", "member").public_bytes(serialization.Encoding.DER)
    # Change one byte of the signed subject: the CSR still parses, the signature no longer fits.
    tampered = der.replace(b"KH/GOV/MOH", b"KH/GOV/MOI")
    assert tampered != der
    with pytest.raises(InvalidArgument, match="signature does not match"):
        pki.load_csr(tampered)


def test_csr_round_trips_through_pem_and_der() -> None:
    csr = pki.make_csr(pki.generate_key("ed25519"), "KH/GOV/MOH", "member")
    assert pki.load_csr(pki.csr_pem(csr)) == csr
    assert pki.load_csr(csr.public_bytes(serialization.Encoding.DER)) == csr
    with pytest.raises(InvalidArgument, match="is not a certificate signing request"):
        pki.load_csr(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )


def test_a_server_tls_key_must_be_p256(ca: CA) -> None:
    ed_key = pki.generate_key("ed25519")
    with pytest.raises(InvalidArgument, match="must be EC P-256"):
        pki.make_csr(ed_key, str(SS1), "server")
    # A CSR built elsewhere with an Ed25519 key is refused at issuance too.
    csr = pki.make_csr(ed_key, str(SS1), "member")
    with pytest.raises(InvalidArgument, match="ed25519 key; this certificate needs ec-p256"):
        pki.issue_server_certificate(ca.key, ca.cert, csr, SS1, "127.0.0.1:9443")


# ---------------------------------------------------------------- certificates


def test_ca_is_a_constrained_root(ca: CA) -> None:
    cert = ca.cert
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert usage(cert) == {"key_cert_sign", "crl_sign"}
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert.verify_directly_issued_by(cert)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3650) < lifetime < dt.timedelta(days=3660)


@pytest.mark.parametrize("kind", ["ec-p256", "ed25519"])
def test_member_certificate_names_the_admitted_member_not_the_csr(
    ca: CA, kind: pki.KeyKind
) -> None:
    key = pki.generate_key(kind)
    csr = pki.make_csr(key, "KH/GOV/MOI", "member")  # claims to be someone else
    cert = pki.issue_member_certificate(ca.key, ca.cert, csr, MOH, "Ministry of Health")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "KH/GOV/MOH"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Ministry of Health"
    )
    assert pki.san_uris(cert) == ["urn:spean:member:KH/GOV/MOH"]
    assert usage(cert) == {"digital_signature", "content_commitment"}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    cert.verify_directly_issued_by(ca.cert)
    assert pki.public_key_bytes(cert.public_key()) == pki.public_key_bytes(key.public_key())  # type: ignore[arg-type]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=730) < lifetime < dt.timedelta(days=732)


def test_server_certificate_carries_dns_ip_uri_and_both_tls_usages(ca: CA) -> None:
    _, cert = issue_server(ca, "127.0.0.1:9443")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(SS1)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ss1.moh.gov.kh.spean"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:spean:server:KH/GOV/MOH/ss1"
    ]
    assert usage(cert) == {"digital_signature", "key_encipherment"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=365) < lifetime < dt.timedelta(days=367)
    cert.verify_directly_issued_by(ca.cert)


def test_server_certificate_with_a_host_name_address(ca: CA) -> None:
    _, cert = issue_server(ca, "SS1.health.gov.kh:443")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ss1.moh.gov.kh.spean", "ss1.health.gov.kh"]
    assert san.get_values_for_type(x509.IPAddress) == []


def test_configuration_signing_certificate(ca: CA) -> None:
    key = pki.generate_key()
    csr = pki.make_csr(key, "KH configuration signing", "configuration")
    cert = pki.issue_configuration_signing_certificate(ca.key, ca.cert, csr, "KH")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "KH configuration signing"
    )
    assert usage(cert) == {"digital_signature"}
    cert.verify_directly_issued_by(ca.cert)


def test_serials_are_random_positive_128_bit(ca: CA) -> None:
    serials = {issue_server(ca)[1].serial_number for _ in range(8)}
    assert len(serials) == 8
    assert all(0 < s < 2**128 for s in serials)
    assert pki.parse_serial_hex(pki.serial_hex(max(serials))) == max(serials)


def test_issued_certificates_never_outlive_the_ca() -> None:
    key = pki.generate_key()
    short_ca = CA(key, pki.create_ca(key, "KH", validity=dt.timedelta(days=30)))
    _, cert = issue_server(short_ca)
    assert cert.not_valid_after_utc == short_ca.cert.not_valid_after_utc


def test_an_expired_ca_cannot_issue() -> None:
    key = pki.generate_key()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    old = CA(key, pki.create_ca(key, "KH", now=past, validity=dt.timedelta(days=30)))
    with pytest.raises(FailedPrecondition, match="CA certificate expired"):
        issue_server(old)


def test_issued_by_rejects_a_foreign_ca(ca: CA) -> None:
    _, cert = issue_server(ca)
    assert pki.issued_by(cert, [make_ca().cert, ca.cert])
    assert not pki.issued_by(cert, [make_ca().cert])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9443", ("127.0.0.1", 9443)),
        ("[::1]:50051", ("::1", 50051)),
        ("ss1.moh.gov.kh:443", ("ss1.moh.gov.kh", 443)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert pki.parse_address(address) == expected


@pytest.mark.parametrize(
    "address", ["127.0.0.1", ":443", "host:0", "host:70000", "::1:443", "a b:1"]
)
def test_parse_address_refuses(address: str) -> None:
    with pytest.raises(InvalidArgument, match="address"):
        pki.parse_address(address)


def test_parse_serial_hex() -> None:
    assert pki.parse_serial_hex("0x1F") == 31
    assert pki.parse_serial_hex("0a:ff") == 0xAFF
    for bad in ("", "xyz", "0", "1" * 41):
        with pytest.raises(InvalidArgument):
            pki.parse_serial_hex(bad)


def test_a_thumbprint_is_the_same_from_the_certificate_its_der_and_its_pem(ca: CA) -> None:
    _, cert = issue_server(ca)
    expected = cert.fingerprint(hashes.SHA256()).hex()
    assert pki.thumbprint(cert) == expected
    assert pki.der_thumbprint(pki.certificate_der(cert)) == expected
    assert pki.pem_thumbprint(pki.certificate_pem(cert)) == expected
    assert pki.is_thumbprint(expected)
    for bad in (expected.upper(), expected[:-1], expected + "0", "g" * 64, None, 64):
        assert not pki.is_thumbprint(bad)


def test_pem_thumbprint_refuses_what_is_not_a_pem_certificate() -> None:
    with pytest.raises(ValueError, match="Invalid PEM encoding"):
        pki.pem_thumbprint(b"not a certificate")


# ------------------------------------------------------------ signature algorithms


@pytest.mark.parametrize(("kind", "algorithm"), [("ec-p256", "ES256"), ("ed25519", "EdDSA")])
def test_a_key_signs_with_the_one_algorithm_its_type_implies(
    kind: pki.KeyKind, algorithm: str
) -> None:
    key = pki.generate_key(kind)
    assert pki.algorithm_for(key) == pki.algorithm_for(key.public_key()) == algorithm
    signature = pki.sign(key, b"configuration")
    assert pki.signature_valid(key.public_key(), signature, b"configuration")
    assert not pki.signature_valid(key.public_key(), signature, b"configuratioN")
    other = pki.generate_key(kind)
    assert not pki.signature_valid(other.public_key(), signature, b"configuration")


def test_an_ecdsa_signature_is_der_over_sha256() -> None:
    key = pki.generate_key("ec-p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = pki.sign(key, b"data")
    key.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA256()))  # raises if not


def test_no_algorithm_for_other_keys() -> None:
    with pytest.raises(InvalidArgument, match="elliptic curve secp384r1 is not supported"):
        pki.algorithm_for(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InvalidArgument, match="is not supported; use EC P-256 or Ed25519"):
        pki.algorithm_for(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert pki.ALGORITHMS == ("ES256", "EdDSA")


# ---------------------------------------------------------------- real TLS


def _echo_server(ca: CA, server_key: pki.PrivateKey, server_cert: x509.Certificate):
    seen: list[bytes] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(context.auth_context()["x509_pem_cert"][0])
        return request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(key_pem(server_key), pki.certificate_pem(server_cert))],
        root_certificates=ca.pem,
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port, seen


def _call(port: int, ca: CA, key: pki.PrivateKey, cert: x509.Certificate, target: str) -> bytes:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.pem,
        private_key=key_pem(key),
        certificate_chain=pki.certificate_pem(cert),
    )
    options = [("grpc.ssl_target_name_override", target)]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        response: bytes = channel.unary_unary("/test.Echo/Echo")(b"ping", timeout=5)
        return response


def test_mutual_tls_handshake_with_issued_certificates(ca: CA) -> None:
    server_key, server_cert = issue_server(ca, "127.0.0.1:9443")
    client_key, client_cert = issue_server(ca, "127.0.0.1:9444", parse_server("KH/GOV/MOI/ss1"))
    server, port, seen = _echo_server(ca, server_key, server_cert)
    try:
        # Both the IP SAN and the identifier's DNS name verify.
        assert _call(port, ca, client_key, client_cert, "127.0.0.1") == b"ping"
        assert _call(port, ca, client_key, client_cert, SS1.dns_name()) == b"ping"
    finally:
        server.stop(None)
    peer = x509.load_pem_x509_certificate(seen[0])
    assert pki.thumbprint(peer) == pki.thumbprint(client_cert)


def test_mutual_tls_refuses_a_client_certificate_from_another_ca(ca: CA) -> None:
    server_key, server_cert = issue_server(ca)
    foreign = make_ca("XX")
    client_key, client_cert = issue_server(
        foreign, "127.0.0.1:9444", parse_server("XX/GOV/EVIL/ss1")
    )
    server, port, seen = _echo_server(ca, server_key, server_cert)
    try:
        with pytest.raises(grpc.RpcError) as failure:
            _call(port, ca, client_key, client_cert, "127.0.0.1")
    finally:
        server.stop(None)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert seen == []


def test_mutual_tls_refuses_a_server_name_not_in_the_certificate(ca: CA) -> None:
    server_key, server_cert = issue_server(ca)
    client_key, client_cert = issue_server(ca, "127.0.0.1:9444", parse_server("KH/GOV/MOI/ss1"))
    server, port, seen = _echo_server(ca, server_key, server_cert)
    try:
        with pytest.raises(grpc.RpcError) as failure:
            _call(port, ca, client_key, client_cert, "ss2.moh.gov.kh.spean")
    finally:
        server.stop(None)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert seen == []
