"""Access rights are deny by default and exact per client, service and method."""

from __future__ import annotations

import pytest

from spean.gateway.access import AccessPolicy, AccessRule
from spean.gateway.errors import PermissionDenied
from spean.gateway.identifiers import SubsystemId

NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")
OTHER = SubsystemId.parse("KH/GOV/MOH/other")
VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
IDREG = SubsystemId.parse("KH/GOV/MOI/idreg")
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


def test_nothing_is_allowed_without_a_rule() -> None:
    assert not AccessPolicy([]).allows(NHIS, VEHICLES, GET)


def test_a_rule_allows_exactly_its_methods() -> None:
    policy = AccessPolicy([AccessRule(NHIS, VEHICLES, frozenset({GET}))])
    assert policy.allows(NHIS, VEHICLES, GET)
    assert not policy.allows(NHIS, VEHICLES, LIST)
    assert not policy.allows(OTHER, VEHICLES, GET)
    assert not policy.allows(NHIS, IDREG, GET)


def test_star_allows_every_method_of_that_service_only() -> None:
    policy = AccessPolicy([AccessRule(NHIS, VEHICLES, frozenset({"*"}))])
    assert policy.allows(NHIS, VEHICLES, LIST)
    assert not policy.allows(NHIS, IDREG, "/identity.v1.IdentityRegistry/GetCitizen")


def test_rules_for_the_same_pair_add_up() -> None:
    policy = AccessPolicy(
        [
            AccessRule(NHIS, VEHICLES, frozenset({GET})),
            AccessRule(NHIS, VEHICLES, frozenset({LIST})),
        ]
    )
    assert policy.allowed_methods(NHIS, VEHICLES) == {GET, LIST}


def test_check_names_client_service_and_method() -> None:
    with pytest.raises(PermissionDenied) as info:
        AccessPolicy([]).check(NHIS, VEHICLES, GET)
    assert str(NHIS) in info.value.message
    assert f"{VEHICLES}:{GET}" in info.value.message
