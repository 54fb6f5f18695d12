"""A federation CA and a sample signed global configuration, at a fixed time.

Shared by the tests of the global configuration and of what trusts it
(`spean.gateway.globalconf`, `spean.gateway.trust`): an `Authority` (CA and
configuration-signing key) issues member and server certificates 30 days
before `NOW`, and `sample` lists two members (MoH with an EC and an Ed25519
signing certificate, MPWT with one), a server each and two subsystems.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from spean.gateway import pki
from spean.gateway.globalconf import sign_global_configuration
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server
from spean.v1 import config_pb2

NOW = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.UTC)
MOH = MemberId.parse("KH/GOV/MOH")
MPWT = MemberId.parse("KH/GOV/MPWT")
MOH_SS1 = parse_server("KH/GOV/MOH/ss1")
MPWT_SS1 = parse_server("KH/GOV/MPWT/ss1")
NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")
VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


@dataclass
class Authority:
    """A CA and configuration-signing key, with certificates issued at a fixed time."""

    kind: pki.KeyKind = "ec-p256"
    ca_key: pki.PrivateKey = field(default_factory=pki.generate_key)
    ca: x509.Certificate = field(init=False)
    signing_key: pki.PrivateKey = field(init=False)
    anchor: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        start = NOW - dt.timedelta(days=30)
        self.ca = pki.create_ca(self.ca_key, "KH", now=start)
        self.signing_key = pki.generate_key(self.kind)
        csr = pki.make_csr(self.signing_key, "KH configuration signing", "configuration")
        self.anchor = pki.issue_configuration_signing_certificate(
            self.ca_key, self.ca, csr, "KH", now=start
        )

    def member_cert(
        self, member: MemberId, kind: pki.KeyKind = "ec-p256", **kwargs: object
    ) -> x509.Certificate:
        csr = pki.make_csr(pki.generate_key(kind), str(member), "member")
        kwargs.setdefault("now", NOW - dt.timedelta(days=30))
        return pki.issue_member_certificate(self.ca_key, self.ca, csr, member, "Ministry", **kwargs)  # type: ignore[arg-type]

    def server_cert(self, server: SubsystemId, address: str) -> x509.Certificate:
        csr = pki.make_csr(pki.generate_key(), str(server), "server")
        return pki.issue_server_certificate(
            self.ca_key, self.ca, csr, server, address, now=NOW - dt.timedelta(days=30)
        )

    def sign(self, msg: config_pb2.GlobalConfiguration) -> bytes:
        return sign_global_configuration(msg, self.signing_key, self.anchor)


def der(cert: x509.Certificate) -> bytes:
    return pki.certificate_der(cert)


@dataclass
class Sample:
    msg: config_pb2.GlobalConfiguration
    moh_key: x509.Certificate
    moh_ed_key: x509.Certificate
    mpwt_key: x509.Certificate
    mpwt_tls: x509.Certificate


def sample(authority: Authority, version: int = 7) -> Sample:
    moh_key = authority.member_cert(MOH)
    moh_ed_key = authority.member_cert(MOH, "ed25519")
    mpwt_key = authority.member_cert(MPWT)
    moh_tls = authority.server_cert(MOH_SS1, "127.0.0.1:9001")
    mpwt_tls = authority.server_cert(MPWT_SS1, "127.0.0.1:9002")
    msg = config_pb2.GlobalConfiguration(
        instance="KH",
        version=version,
        ca_certificates=[der(authority.ca)],
        members=[
            config_pb2.Member(
                id=str(MOH),
                name="Ministry of Health",
                signing_certificates=[der(moh_key), der(moh_ed_key)],
            ),
            config_pb2.Member(
                id=str(MPWT), name="Public Works", signing_certificates=[der(mpwt_key)]
            ),
        ],
        servers=[
            config_pb2.SecurityServer(
                id=str(MOH_SS1),
                address="127.0.0.1:9001",
                tls_certificate_sha256=pki.thumbprint(moh_tls),
                tls_certificate=der(moh_tls),
            ),
            config_pb2.SecurityServer(
                id=str(MPWT_SS1),
                address="127.0.0.1:9002",
                tls_certificate_sha256=pki.thumbprint(mpwt_tls),
                tls_certificate=der(mpwt_tls),
            ),
        ],
        subsystems=[
            config_pb2.Subsystem(id=str(NHIS), name="NHIS", servers=[str(MOH_SS1)]),
            config_pb2.Subsystem(
                id=str(VEHICLES),
                servers=[str(MPWT_SS1)],
                methods=[
                    config_pb2.Method(path=GET_VEHICLE),
                    config_pb2.Method(path=LIST_VEHICLES, server_streaming=True),
                ],
                file_descriptor_set=b"\x0a\x00",
            ),
        ],
    )
    msg.issued_at.FromDatetime(NOW - dt.timedelta(hours=1))
    msg.expires_at.FromDatetime(NOW + dt.timedelta(hours=23))
    return Sample(msg, moh_key, moh_ed_key, mpwt_key, mpwt_tls)
