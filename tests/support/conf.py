"""A signed global configuration in memory, with the keys behind it, for pure tests.

The pure rules (admission, trust, tokens) take a `GlobalConfiguration` value;
building a federation on disk for them would slow the tests and hide what they
check. `PureFederation` issues real keys and X.509 certificates from a real CA
(valid from a month ago for a year), signs a real configuration and verifies
it, so a test holds exactly what a security server would hold, plus the
private keys each party would hold: members' signing keys to make tokens and
servers' TLS certificates to play the TLS peer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from spean.gateway import pki
from spean.gateway.globalconf import (
    GlobalConfiguration,
    sign_global_configuration,
    verify_global_configuration,
)
from spean.gateway.identifiers import MemberId, ServerId, SubsystemId, parse_server
from spean.gateway.tokens import TokenSigner
from spean.v1 import config_pb2

MOH = MemberId.parse("KH/GOV/MOH")
MPWT = MemberId.parse("KH/GOV/MPWT")
MOH_SS1 = parse_server("KH/GOV/MOH/ss1")
MPWT_SS1 = parse_server("KH/GOV/MPWT/ss1")
MPWT_SS2 = parse_server("KH/GOV/MPWT/ss2")
NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")
VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


@dataclass
class Party:
    """A member as it holds itself: its signing key, certificate and token signer."""

    member: MemberId
    key: pki.PrivateKey
    certificate: x509.Certificate
    signer: TokenSigner


@dataclass
class PureFederation:
    """A CA, MoH (client nhis) and MPWT (service vehicles on ss1 and ss2), signed."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    revoked: tuple[int, ...] = ()
    parties: dict[MemberId, Party] = field(init=False)
    tls: dict[ServerId, x509.Certificate] = field(init=False)
    conf: GlobalConfiguration = field(init=False)
    _signing: tuple[pki.PrivateKey, x509.Certificate] = field(init=False, repr=False)
    _msg: config_pb2.GlobalConfiguration = field(init=False, repr=False)

    def __post_init__(self) -> None:
        start = self.now - dt.timedelta(days=30)
        ca_key = pki.generate_key()
        ca = pki.create_ca(ca_key, "KH", now=start)
        signing_key = pki.generate_key()
        anchor = pki.issue_configuration_signing_certificate(
            ca_key,
            ca,
            pki.make_csr(signing_key, "KH configuration signing", "configuration"),
            "KH",
            now=start,
        )
        self.parties = {}
        for member in (MOH, MPWT):
            key = pki.generate_key()
            csr = pki.make_csr(key, str(member), "member")
            cert = pki.issue_member_certificate(ca_key, ca, csr, member, str(member), now=start)
            self.parties[member] = Party(member, key, cert, TokenSigner(key, cert))
        addresses = {MOH_SS1: "127.0.0.1:9001", MPWT_SS1: "127.0.0.1:9002"}
        addresses[MPWT_SS2] = "127.0.0.1:9003"
        self.tls = {}
        for server, address in addresses.items():
            csr = pki.make_csr(pki.generate_key(), str(server), "server")
            self.tls[server] = pki.issue_server_certificate(
                ca_key, ca, csr, server, address, now=start
            )
        der = pki.certificate_der
        msg = config_pb2.GlobalConfiguration(
            instance="KH",
            version=3,
            ca_certificates=[der(ca)],
            members=[
                config_pb2.Member(
                    id=str(member),
                    name=str(member),
                    signing_certificates=[der(party.certificate)],
                )
                for member, party in self.parties.items()
            ],
            servers=[
                config_pb2.SecurityServer(
                    id=str(server),
                    address=address,
                    tls_certificate_sha256=pki.thumbprint(self.tls[server]),
                    tls_certificate=der(self.tls[server]),
                )
                for server, address in addresses.items()
            ],
            subsystems=[
                config_pb2.Subsystem(id=str(NHIS), name="NHIS", servers=[str(MOH_SS1)]),
                config_pb2.Subsystem(
                    id=str(VEHICLES),
                    servers=[str(MPWT_SS1), str(MPWT_SS2)],
                    methods=[
                        config_pb2.Method(path=GET_VEHICLE),
                        config_pb2.Method(path=LIST_VEHICLES, server_streaming=True),
                    ],
                ),
            ],
            revoked_serials=[pki.serial_hex(serial) for serial in self.revoked],
        )
        msg.issued_at.FromDatetime(self.now - dt.timedelta(hours=1))
        msg.expires_at.FromDatetime(self.now + dt.timedelta(hours=23))
        self._signing = (signing_key, anchor)
        self._msg = msg
        self.conf = self._signed(msg)

    def _signed(self, msg: config_pb2.GlobalConfiguration) -> GlobalConfiguration:
        key, anchor = self._signing
        return verify_global_configuration(
            sign_global_configuration(msg, key, anchor), anchor, self.now
        )

    def revoking(self, *certificates: x509.Certificate) -> GlobalConfiguration:
        """The next version of the configuration, which revokes `certificates`."""
        msg = config_pb2.GlobalConfiguration()
        msg.CopyFrom(self._msg)
        msg.version += 1
        msg.revoked_serials.extend(pki.serial_hex(cert.serial_number) for cert in certificates)
        return self._signed(msg)

    def with_topics(self, *names: str) -> GlobalConfiguration:
        """The next version of the configuration, where vehicles owns topics `names`."""
        msg = config_pb2.GlobalConfiguration()
        msg.CopyFrom(self._msg)
        msg.version += 1
        for subsystem in msg.subsystems:
            if subsystem.id == str(VEHICLES):
                for name in names:
                    subsystem.topics.add(name=name, event_type="vehicles.v1.OwnershipTransferred")
        return self._signed(msg)

    def signer(self, member: MemberId) -> TokenSigner:
        return self.parties[member].signer

    def tls_pem(self, server: ServerId) -> bytes:
        """The TLS certificate `server` presents, as grpc reports a peer's."""
        return pki.certificate_pem(self.tls[server])
