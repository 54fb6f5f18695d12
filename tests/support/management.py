"""A security server with its management API switched on, as the API tests see it.

`enable_management` gives a member of a built federation what a ministry's
IT team would set up: its own administrators' CA (not the federation's), a
TLS certificate for the management listener on 127.0.0.1, client
certificates for an administrator and an auditor, API keys of each role in
the key store, and a ``management`` section in its server.yaml. `Admin`
holds the paths and keys, and opens real HTTPS clients with them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spean.gateway import pki
from spean.gateway.files import keyfiles
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role

ADMIN_CN = "admin.mpwt.gov.kh"
AUDITOR_CN = "auditor.mpwt.gov.kh"


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pair(
    folder: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> tuple[Path, Path]:
    keyfiles.write_private_key(folder / f"{name}.key", key)
    keyfiles.write_certificate(folder / f"{name}.crt", cert)
    return folder / f"{name}.crt", folder / f"{name}.key"


@dataclass
class Admin:
    """What the ministry's administrators hold to reach the management API."""

    config: Path
    ca: Path
    listener_cert: Path
    admin_cert: tuple[Path, Path]
    auditor_cert: tuple[Path, Path]
    stranger_cert: tuple[Path, Path]
    keys: dict[Role, str] = field(default_factory=dict)
    revoked_key: str = ""
    port: int = 0

    def listener_spki_sha256(self) -> str:
        """The listener key's SPKI pin (base64 SHA-256), as Chromium's flags take it."""
        certificate = x509.load_pem_x509_certificate(self.listener_cert.read_bytes())
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api/v1"

    def client(self, key: str | None = None, cert: tuple[Path, Path] | None = None) -> httpx.Client:
        """A real HTTPS client that trusts the listener; an API key or a certificate."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=20.0)


def enable_management(config: Path, max_body_bytes: int = 8192) -> Admin:
    """Switch on `config`'s management API on a free loopback port; returns its `Admin`."""
    folder = config.parent / "management"
    folder.mkdir()
    ca_key = pki.generate_key()
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = _certificate("MPWT administrators CA", ca_key, None, ca_key, ca=True)
    keyfiles.write_certificate(folder / "ca.crt", ca)

    def issued(cn: str, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _write_pair(folder, cn, key, _certificate(cn, key, ca, ca_key, server=server))

    listener_cert, listener_key = issued("listener", server=True)
    # A certificate from another CA: the handshake must refuse it.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _certificate("another CA", other_key, None, other_key, ca=True)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _write_pair(
        folder, "stranger", stranger_key, _certificate(ADMIN_CN, stranger_key, other_ca, other_key)
    )
    document = yaml.safe_load(config.read_text())
    document["management"] = {
        "listen": "127.0.0.1:0",
        "tls": {
            "certificate": str(listener_cert),
            "key": str(listener_key),
            "client_ca": str(folder / "ca.crt"),
        },
        "client_certificates": [
            {"common_name": ADMIN_CN, "role": "system-administrator"},
            {"common_name": AUDITOR_CN, "role": "auditor"},
        ],
        "max_body_bytes": max_body_bytes,
    }
    # A comment an operator wrote: write-back must keep it.
    config.write_text(
        "# MPWT's security server, kept by the IT team\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    admin = Admin(
        config=config,
        ca=folder / "ca.crt",
        listener_cert=listener_cert,
        admin_cert=issued(ADMIN_CN),
        auditor_cert=issued(AUDITOR_CN),
        stranger_cert=stranger,
    )
    store = ApiKeyStore(config.parent / "state" / "management-keys.json")
    for role in Role:
        if role is not Role.DATA_SUBJECT:  # only an identity provider's login names a person
            admin.keys[role], _ = store.create(f"test {role.value}", role)
    admin.revoked_key, entry = store.create("retired automation", Role.SYSTEM_ADMINISTRATOR)
    store.revoke(entry.id)
    return admin
