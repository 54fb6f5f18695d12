"""Self-signed certificates for tests that need a signer but no federation.

A checkpoint signer or a bundle check only needs a key and a certificate
naming a member; building a whole federation for that would slow the tests
and hide what they check. Real keys, real X.509, valid from yesterday to
tomorrow.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

MEMBER = "KH/GOV/MOH"


def self_signed(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, common_name: str = MEMBER
) -> x509.Certificate:
    """A one-day certificate of `key`, issued by itself to `common_name`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)
