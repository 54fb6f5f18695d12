"""Planning grants and revocations against the rules in the file, and their ETag."""

from __future__ import annotations

import pytest

from spean.gateway.config import AccessRuleConfig
from spean.gateway.errors import NotFound
from spean.gateway.management.access_edit import (
    AccessChange,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    access_etag,
    check_if_match,
    plan_grant,
    plan_revoke,
)

NHIS = "KH/GOV/MOH/nhis"
IDREG = "KH/GOV/MOI/idreg"
VEHICLES = "KH/GOV/MPWT/vehicles"
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehicles"
PUBLISHED = {GET, LIST}


def rule(client: str = NHIS, *methods: str) -> AccessRuleConfig:
    return AccessRuleConfig(client=client, service=VEHICLES, methods=list(methods or [GET]))


def test_a_first_grant_appends_a_rule() -> None:
    plan = plan_grant([rule(IDREG)], AccessChange(NHIS, VEHICLES, (GET, GET)), PUBLISHED)
    assert (plan.index, plan.methods, plan.changed) == (None, (GET,), True)


def test_a_grant_extends_the_clients_rule_and_a_repeat_changes_nothing() -> None:
    rules = [rule(IDREG), rule(NHIS, GET)]
    plan = plan_grant(rules, AccessChange(NHIS, VEHICLES, (LIST,)), PUBLISHED)
    assert (plan.index, plan.methods, plan.changed) == (1, (GET, LIST), True)
    again = plan_grant(rules, AccessChange(NHIS, VEHICLES, (GET,)), PUBLISHED)
    assert not again.changed


def test_an_unpublished_method_cannot_be_granted() -> None:
    with pytest.raises(NotFound, match=r"does not publish /x\.v1\.X/Drop"):
        plan_grant([], AccessChange(NHIS, VEHICLES, ("/x.v1.X/Drop",)), PUBLISHED)


def test_revoking_the_last_method_deletes_the_rule() -> None:
    plan = plan_revoke([rule(NHIS, GET)], AccessChange(NHIS, VEHICLES, (GET,)))
    assert plan.deletes
    assert plan.changed


def test_revoking_what_was_never_granted_is_a_no_op() -> None:
    assert not plan_revoke([rule(IDREG)], AccessChange(NHIS, VEHICLES, (GET,))).changed
    assert not plan_revoke([rule(NHIS, GET)], AccessChange(NHIS, VEHICLES, (LIST,))).changed


def test_one_method_cannot_be_revoked_from_a_star_rule() -> None:
    with pytest.raises(Conflict, match="revoke '\\*'"):
        plan_revoke([rule(NHIS, "*")], AccessChange(NHIS, VEHICLES, (GET,)))
    assert plan_revoke([rule(NHIS, "*")], AccessChange(NHIS, VEHICLES, ("*",))).deletes


def test_the_etag_follows_every_change_of_the_rules() -> None:
    before = access_etag([rule(NHIS, GET)])
    assert before == access_etag([rule(NHIS, GET)])
    assert before != access_etag([rule(NHIS, GET, LIST)])
    assert before != access_etag([])


def test_if_match_missing_stale_and_current() -> None:
    current = access_etag([])
    with pytest.raises(PreconditionRequired):
        check_if_match(None, current)
    with pytest.raises(PreconditionFailed, match="changed since you read them"):
        check_if_match('"stale"', current)
    check_if_match(f'"other", {current}', current)
