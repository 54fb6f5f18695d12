"""Identifier parsing: total, strict, and with messages that name the problem."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spean.gateway.errors import InvalidArgument
from spean.gateway.identifiers import (
    MemberId,
    ServiceId,
    SubsystemId,
    origin_server,
    parse_instance,
    parse_method,
    parse_server,
)

CODE = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)


def test_member_and_subsystem_round_trip() -> None:
    member = MemberId.parse("KH/GOV/MOH")
    assert (member.instance, member.member_class, member.code) == ("KH", "GOV", "MOH")
    subsystem = SubsystemId.parse("KH/GOV/MOH/nhis")
    assert subsystem.member == member
    assert str(subsystem) == "KH/GOV/MOH/nhis"
    assert member.child("nhis") == subsystem


def test_service_identifier() -> None:
    service = ServiceId.parse("KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle")
    assert service.subsystem == SubsystemId.parse("KH/GOV/MPWT/vehicles")
    assert service.method == "/vehicles.v1.VehicleRegistry/GetVehicle"
    assert str(service) == "KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle"


def test_server_dns_name_is_reversed_and_lower_case() -> None:
    assert parse_server("KH/GOV/MPWT/ss1").dns_name() == "ss1.mpwt.gov.kh.spean"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("KH/GOV", "must have the form INSTANCE/CLASS/MEMBER/CODE"),
        ("KH/GOV/MOH/nhis/extra", "must have the form"),
        ("KH//MOH/nhis", "code ''"),
        ("KH/GOV/MOH/-nhis", "not starting or ending with a hyphen"),
        ("KH/GOV/MOH/nh is", "code 'nh is'"),
        ("KH/GOV/MOH/nhis\n", "code 'nhis\\n'"),
        ("KH/GOV/MOH/" + "x" * 64, "1-63"),
        ("K" * 300, "longer than 255"),
    ],
)
def test_bad_subsystems_are_refused_with_the_reason(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SubsystemId.parse(text)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "method",
    ["", "GetVehicle", "/GetVehicle", "/vehicles.v1.VehicleRegistry/", "/a.B/C/D", "/a.B/C\x00"],
)
def test_bad_methods_are_refused(method: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_method(method)


def test_parse_instance() -> None:
    assert parse_instance("KH") == "KH"
    for bad in ("-KH", "KH-", "", "K/H", "x" * 64, None):
        with pytest.raises(InvalidArgument, match="instance"):
            parse_instance(bad)  # type: ignore[arg-type]


def test_an_audit_log_origin_names_its_security_server() -> None:
    assert origin_server("KH/GOV/MOH/ss1#w0") == parse_server("KH/GOV/MOH/ss1")
    assert origin_server("KH/GOV/MOH/ss1#worker#2").member == MemberId.parse("KH/GOV/MOH")
    assert origin_server("KH/GOV/MOH/ss1") == parse_server("KH/GOV/MOH/ss1")
    with pytest.raises(InvalidArgument, match="security server identifier 'KH/GOV/MOH'"):
        origin_server("KH/GOV/MOH#w0")


def test_service_without_method_separator() -> None:
    with pytest.raises(InvalidArgument, match=r"SUBSYSTEM:/package\.Service/Method"):
        ServiceId.parse("KH/GOV/MPWT/vehicles")


@given(st.tuples(CODE, CODE, CODE, CODE))
def test_every_valid_subsystem_round_trips(codes: tuple[str, str, str, str]) -> None:
    text = "/".join(codes)
    parsed = SubsystemId.parse(text)
    assert str(parsed) == text
    assert SubsystemId.parse(str(parsed)) == parsed


@given(st.text(max_size=80))
def test_parsing_never_fails_other_than_invalid_argument(text: str) -> None:
    try:
        parsed = SubsystemId.parse(text)
    except InvalidArgument:
        return
    assert str(parsed) == text
