"""A join request is admitted in one step, or waits for an officer; a bad one changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.authority import (
    Authority,
    JoinRequest,
    SubsystemRequest,
    admit_request,
    approve,
    delivery_folder,
    join_request_yaml,
    parse_join_request,
    pending,
    reject,
    submit,
)
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.identifiers import SubsystemId, parse_server
from spean.gateway.server.reflection import file_descriptor_set

MOE, SS1, PORTAL, SCHOOLS = (
    "KH/GOV/MOE",
    "KH/GOV/MOE/ss1",
    "KH/GOV/MOE/portal",
    "KH/GOV/MOE/schools",
)


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.init(tmp_path / "authority", "KH")


def request(**changes: object) -> JoinRequest:
    fields: dict[str, object] = {
        "member": MOE,
        "member_name": "Ministry of Education",
        "member_csr": pki.csr_pem(pki.make_csr(pki.generate_key("ec-p256"), MOE, "member")),
        "server": SS1,
        "address": "127.0.0.1:24001",
        "server_csr": pki.csr_pem(pki.make_csr(pki.generate_key("ec-p256"), SS1, "server")),
        "clients": (PORTAL,),
        "subsystems": (
            SubsystemRequest(SCHOOLS, "schools", file_descriptor_set(vehicles_pb2.DESCRIPTOR)),
        ),
    }
    fields.update(changes)
    return JoinRequest(**fields)  # type: ignore[arg-type]


def published(authority: Authority) -> GlobalConfiguration:
    return verify_global_configuration(
        authority.published_path.read_bytes(),
        authority.signing_certificate,
        dt.datetime.now(dt.UTC),
    )


def test_a_request_survives_its_file_unchanged() -> None:
    original = request(deliver_to="/srv/moe/keys")
    assert parse_join_request(join_request_yaml(original), "join-request.yaml") == original


def test_the_certificates_go_back_beside_the_request_wherever_the_authority_reads_it() -> None:
    inbox = Path("/srv/authority/inbox/moe/join-request.yaml")
    assert delivery_folder(inbox, "keys") == Path("/srv/authority/inbox/moe/keys")
    assert delivery_folder(inbox, "") == Path("/srv/authority/inbox/moe")


@pytest.mark.parametrize("named", ["/home/moe/keys", "../../etc", "keys/../../x"])
def test_a_request_naming_a_folder_outside_its_own_is_refused_with_the_fix(named: str) -> None:
    with pytest.raises(InvalidArgument, match="is not a folder beside the request") as caught:
        delivery_folder(Path("/srv/inbox/join-request.yaml"), named)
    assert "give --out FOLDER" in caught.value.message


def test_one_admission_certifies_both_keys_registers_the_subsystems_and_publishes(
    authority: Authority,
) -> None:
    admitted = admit_request(authority, request())

    conf = published(authority)
    server = conf.server(parse_server(SS1))
    assert server is not None
    assert server.address == "127.0.0.1:24001"
    tls = pki.parse_certificate_pem(admitted.server_certificate)
    assert pki.thumbprint(tls) == server.tls_certificate_sha256
    signing = pki.parse_certificate_pem(admitted.member_certificate)
    assert conf.signing_key(pki.thumbprint(signing)) is not None
    schools = conf.subsystem(SubsystemId.parse(SCHOOLS))
    assert schools is not None
    assert schools.servers == (parse_server(SS1),)
    assert {m.path for m in schools.methods} == {
        "/vehicles.v1.VehicleRegistry/GetVehicle",
        "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner",
    }
    portal = conf.subsystem(SubsystemId.parse(PORTAL))
    assert portal is not None
    assert portal.methods == ()
    assert admitted.subsystems == (PORTAL, SCHOOLS)


def test_a_request_admitted_once_is_refused_again_and_changes_nothing(
    authority: Authority,
) -> None:
    admit_request(authority, request())
    before = authority.registry()
    with pytest.raises(FailedPrecondition, match="cannot be admitted again"):
        admit_request(authority, request())
    assert authority.registry() == before


def test_descriptors_that_do_not_parse_stop_the_admission_before_it_starts(
    authority: Authority,
) -> None:
    broken = request(subsystems=(SubsystemRequest(SCHOOLS, "", b"\xff not descriptors"),))
    with pytest.raises(InvalidArgument, match="FileDescriptorSet"):
        admit_request(authority, broken)
    assert authority.registry().members == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"server": "KH/GOV/MOH/ss1"}, "does not belong to member KH/GOV/MOE"),
        ({"clients": ("KH/GOV/MOH/nhis",)}, "does not belong to member KH/GOV/MOE"),
        ({"address": "no port"}, "host:port"),
        ({"member_csr": b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}, "member.csr"),
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(
    change: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        parse_join_request(join_request_yaml(request(**change)), "join-request.yaml")


def test_with_approval_a_request_waits_until_an_officer_approves_it(
    authority: Authority,
) -> None:
    authority.set_approval(True)
    assert authority.requires_approval
    submit(authority, request())
    assert [r.server for r in pending(authority)] == [SS1]
    assert authority.registry().members == []
    with pytest.raises(FailedPrecondition, match="already pending"):
        submit(authority, request())

    approved, admitted = approve(authority, SS1)

    assert approved.member == MOE
    assert pending(authority) == []
    assert published(authority).server(parse_server(SS1)) is not None
    assert admitted.published == authority.published_path


def test_a_rejected_request_admits_nothing(authority: Authority) -> None:
    authority.set_approval(True)
    submit(authority, request())
    assert reject(authority, SS1).member == MOE
    assert pending(authority) == []
    assert authority.registry().members == []
    with pytest.raises(NotFound, match="no join request for KH/GOV/MOE/ss1 is pending"):
        approve(authority, SS1)
