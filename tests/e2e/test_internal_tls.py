"""Internal TLS: an application must present the client certificate registered for it.

MoH's consumer endpoint is put behind TLS (X-Road's "internal TLS") with a
server certificate from a local CA, and the hospital application's subsystem
KH/GOV/MOH/nhis is registered with a self-signed client certificate (and a
second subsystem, KH/GOV/MOH/portal, with another). A call claiming nhis is
served only with nhis's certificate:

- with the certificate registered for another subsystem, MoH refuses it as
  UNAUTHENTICATED, records the refusal in its own audit log and never contacts
  MPWT;
- with no certificate, or one registered for no subsystem, grpc's handshake
  refuses the connection (grpc cannot ask for a client certificate without
  verifying it), so the application sees UNAVAILABLE and nothing is logged;
- plaintext is not spoken on that port.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from spean.gateway import pki
from spean.gateway.cli import main
from spean.gateway.demo.data import SAMPLE_PLATE
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import MOH, MPWT, NHIS, demo_plans
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import parse_server
from tests.support.exchanges import get_vehicle
from tests.support.world import World, running

MOH_SS1 = parse_server(f"{MOH}/ss1")
PORTAL = f"{MOH}/portal"


@dataclass(frozen=True, slots=True)
class ClientPair:
    key_pem: bytes
    cert_pem: bytes
    thumbprint: str


@dataclass(frozen=True, slots=True)
class InternalTlsWorld:
    world: World
    address: str
    ca_pem: bytes
    registered: ClientPair
    portal: ClientPair
    stranger: ClientPair


def _self_signed_client(name: str) -> ClientPair:
    """A self-signed client certificate, as an application operator would make one."""
    key = pki.generate_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ClientPair(pki.private_key_pem(key), pki.certificate_pem(cert), pki.thumbprint(cert))


@pytest.fixture(scope="module")
def internal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InternalTlsWorld]:
    federation = build_federation(tmp_path_factory.mktemp("federation"), demo_plans())
    config = federation.configs[MOH]
    folder = config.parent
    address = federation.consumer_addresses[MOH]

    ca_key = pki.generate_key()
    ca = pki.create_ca(ca_key, "MoH internal")
    server_key = pki.generate_key()
    server_cert = pki.issue_server_certificate(
        ca_key, ca, pki.make_csr(server_key, str(MOH_SS1), "server"), MOH_SS1, address
    )
    keyfiles.write_private_key(folder / "keys" / "internal.key", server_key)
    keyfiles.write_certificate(folder / "keys" / "internal.crt", server_cert)
    registered = _self_signed_client("hospital application")
    portal = _self_signed_client("portal application")
    stranger = _self_signed_client("someone else")
    (folder / "keys" / "nhis-client.crt").write_bytes(registered.cert_pem)
    (folder / "keys" / "portal-client.crt").write_bytes(portal.cert_pem)

    document = yaml.safe_load(config.read_text())
    document["consumer"]["tls"] = {
        "certificate": "keys/internal.crt",
        "key": "keys/internal.key",
    }
    for client in document["consumer"]["clients"]:
        if client["subsystem"] == NHIS:
            client["certificate"] = "keys/nhis-client.crt"
    document["consumer"]["clients"].append(
        {"subsystem": PORTAL, "certificate": "keys/portal-client.crt"}
    )
    config.write_text(yaml.safe_dump(document, sort_keys=False))

    with running(federation) as world:
        yield InternalTlsWorld(
            world, address, pki.certificate_pem(ca), registered, portal, stranger
        )


def _tls_channel(internal: InternalTlsWorld, client: ClientPair | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=internal.ca_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.secure_channel(internal.address, credentials)


def test_the_registered_client_certificate_is_accepted_and_recorded(
    internal: InternalTlsWorld,
) -> None:
    with _tls_channel(internal, internal.registered) as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.OK, answer.details
    record = internal.world.record(MOH, answer.exchange_id)
    assert record.status == "OK"
    assert record.peer_certificate_sha256 == internal.registered.thumbprint


def test_the_certificate_of_another_subsystem_is_refused_and_recorded(
    internal: InternalTlsWorld,
) -> None:
    with _tls_channel(internal, internal.portal) as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAUTHENTICATED, answer.details
    assert answer.details == (
        f"calls as {NHIS} must present the client certificate registered for it"
    )
    assert answer.exchange_id
    record = internal.world.record(MOH, answer.exchange_id)
    assert record.status == "UNAUTHENTICATED"
    assert record.message == answer.details
    assert record.client == NHIS
    assert record.forwarded_at_ns == 0
    assert internal.world.records_of(MPWT, answer.exchange_id) == []


@pytest.mark.parametrize("presented", ["none", "unregistered"])
def test_a_connection_without_a_registered_certificate_is_refused(
    internal: InternalTlsWorld, presented: str
) -> None:
    client = internal.stranger if presented == "unregistered" else None
    held = len(internal.world.records(MOH)), len(internal.world.records(MPWT))
    with _tls_channel(internal, client) as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.exchange_id == ""
    assert (len(internal.world.records(MOH)), len(internal.world.records(MPWT))) == held


def test_plaintext_is_not_spoken_on_the_tls_port(internal: InternalTlsWorld) -> None:
    held = len(internal.world.records(MOH))
    with grpc.insecure_channel(internal.address) as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.exchange_id == ""
    assert len(internal.world.records(MOH)) == held


def test_spean_call_speaks_internal_tls_with_the_registered_certificate(
    internal: InternalTlsWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ca.crt").write_bytes(internal.ca_pem)
    (tmp_path / "nhis.crt").write_bytes(internal.registered.cert_pem)
    (tmp_path / "nhis.key").write_bytes(internal.registered.key_pem)
    argv = ["call", "--endpoint", internal.address, "--client", NHIS,
            "--service", "KH/GOV/MPWT/vehicles", "--ca", str(tmp_path / "ca.crt"),
            "--cert", str(tmp_path / "nhis.crt"), "--key", str(tmp_path / "nhis.key"),
            "/vehicles.v1.VehicleRegistry/GetVehicle", json.dumps({"plate": SAMPLE_PLATE}),
    ]  # fmt: skip

    assert main(argv) == 0

    out, err = capsys.readouterr()
    assert json.loads(out)["plate"] == SAMPLE_PLATE
    exchange_id = err.split("exchange-id: ")[1].split()[0]
    record = internal.world.record(MOH, exchange_id)
    assert record.peer_certificate_sha256 == internal.registered.thumbprint


def test_spean_call_asks_for_the_ca_of_a_tls_consumer_endpoint(
    internal: InternalTlsWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    config = internal.world.folder(MOH) / "server.yaml"
    argv = ["call", "--config", str(config), "--service", "KH/GOV/MPWT/vehicles",
            "/vehicles.v1.VehicleRegistry/GetVehicle"]  # fmt: skip
    assert main(argv) == 1
    assert "speaks TLS (consumer.tls): give --ca" in capsys.readouterr().err
