"""Disabling and enabling a published method through the management API, against MPWT's
live server: the next call is refused with the notice and recorded on both sides, the file
says who and when, and enabling brings the method back; nothing needs a restart."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator

import grpc
import httpx
import pytest
import yaml

from spean.gateway.demo.ministries import GET_VEHICLE, LIST_VEHICLES, MOH, MPWT, VEHICLES
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World

NOTICE = "database maintenance until 06:00 UTC"


def _state(admin: Admin, method: str) -> dict[str, object]:
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        services = client.get("/services").json()
    (vehicles,) = [s for s in services if s["subsystem"] == VEHICLES]
    (entry,) = [m for m in vehicles["methods"] if m["method"] == method]
    return dict(entry)


def _etag(admin: Admin) -> str:
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        return client.get("/services").headers["etag"]


def _post(admin: Admin, action: str, etag: str | None, **body: str) -> httpx.Response:
    headers = {"If-Match": etag} if etag is not None else {}
    with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        return client.post(f"/services/{action}", headers=headers, json=body)


def test_a_disabled_method_is_refused_with_its_notice_until_enabled(
    managed: tuple[World, Admin],
) -> None:
    world, admin = managed
    answer = _post(
        admin, "disablements", _etag(admin), subsystem=VEHICLES, method=GET_VEHICLE, notice=NOTICE
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True
    state = _state(admin, GET_VEHICLE)
    assert state["enabled"] is False
    assert state["notice"] == NOTICE
    assert str(state["disabled_by"]).startswith("api-key:")
    assert _state(admin, LIST_VEHICLES)["enabled"] is True

    with world.consumer_channel() as channel:
        refused = get_vehicle(channel)
    assert refused.code is grpc.StatusCode.FAILED_PRECONDITION
    assert NOTICE in refused.details
    assert "disabled by its provider" in refused.details
    # Recorded on both sides, with the provider's signed status.
    assert world.record(MPWT, refused.exchange_id).status == "FAILED_PRECONDITION"
    assert world.record(MOH, refused.exchange_id).status == "FAILED_PRECONDITION"
    # Written to the file, with who and when.
    document = yaml.safe_load(admin.config.read_text())
    (vehicles,) = [s for s in document["provider"]["services"] if s["subsystem"] == VEHICLES]
    (entry,) = vehicles["disabled"]
    assert entry["method"] == GET_VEHICLE
    assert entry["notice"] == NOTICE
    assert entry["disabled_at"]

    enabled = _post(admin, "enablements", _etag(admin), subsystem=VEHICLES, method=GET_VEHICLE)
    assert enabled.status_code == 200, enabled.text
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code is grpc.StatusCode.OK
    document = yaml.safe_load(admin.config.read_text())
    (vehicles,) = [s for s in document["provider"]["services"] if s["subsystem"] == VEHICLES]
    assert "disabled" not in vehicles
    assert _state(admin, GET_VEHICLE)["enabled"] is True


def test_enabling_an_enabled_method_changes_nothing(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    before = admin.config.read_bytes()
    answer = _post(admin, "enablements", _etag(admin), subsystem=VEHICLES, method=GET_VEHICLE)
    assert answer.status_code == 200
    assert answer.json()["changed"] is False
    assert answer.json()["action_id"] is None
    assert admin.config.read_bytes() == before


def test_a_change_needs_the_current_etag(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    stale = _etag(admin)
    first = _post(admin, "disablements", stale, subsystem=VEHICLES, method=LIST_VEHICLES)
    assert first.status_code == 200, first.text
    missing = _post(admin, "enablements", None, subsystem=VEHICLES, method=LIST_VEHICLES)
    assert missing.status_code == 428
    late = _post(admin, "enablements", stale, subsystem=VEHICLES, method=LIST_VEHICLES)
    assert late.status_code == 412
    assert "the services changed since you read them" in late.text
    again = _post(admin, "enablements", _etag(admin), subsystem=VEHICLES, method=LIST_VEHICLES)
    assert again.status_code == 200, again.text
    assert _state(admin, LIST_VEHICLES)["enabled"] is True


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"subsystem": VEHICLES, "method": "/vehicles.v1.VehicleRegistry/Nope"}, 404, "publish"),
        ({"subsystem": VEHICLES, "method": "*"}, 422, "method"),
        ({"subsystem": "KH/GOV/MPWT/nothing", "method": GET_VEHICLE}, 404, "not a service"),
        ({"subsystem": VEHICLES, "method": GET_VEHICLE, "notice": "x" * 201}, 422, "notice"),
    ],
)
def test_bad_changes_are_refused_naming_what_is_wrong(
    managed: tuple[World, Admin], body: dict[str, str], status: int, words: str
) -> None:
    _, admin = managed
    before = admin.config.read_bytes()
    answer = _post(admin, "disablements", _etag(admin), **body)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert admin.config.read_bytes() == before


def test_an_auditor_may_not_disable(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        answer = client.post(
            "/services/disablements",
            headers={"If-Match": _etag(admin)},
            json={"subsystem": VEHICLES, "method": GET_VEHICLE},
        )
    assert answer.status_code == 403
    assert "may not edit-services" in answer.text


# -- the same through the console -----------------------------------------------------------


@contextlib.contextmanager
def _console_login(admin: Admin, key: str) -> Iterator[httpx.Client]:
    with admin.client() as client:
        client.base_url = httpx.URL(admin.url.removesuffix("/api/v1"))
        answer = client.post("/console/login", data={"api_key": key})
        assert answer.status_code == 303, answer.text
        yield client


def _method_form(page: str, method: str) -> dict[str, str]:
    """The hidden fields of the form on `method`'s row, as a browser would send them."""
    row = page[page.index(f"<code>{method}</code>") :]
    form = row[: row.index("</form>")]
    found = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form)
    return {name: html.unescape(value) for name, value in found}


def test_the_console_disables_and_enables_a_method(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with _console_login(admin, admin.keys[Role.SERVICE_ADMINISTRATOR]) as console:
        page = console.get("/console/services").text
        fields = _method_form(page, GET_VEHICLE)
        done = console.post("/console/services/disable", data={**fields, "notice": NOTICE})
        assert done.status_code == 200, done.text
        assert f"Disabled {GET_VEHICLE}" in done.text
        with world.consumer_channel() as channel:
            refused = get_vehicle(channel)
        assert refused.code is grpc.StatusCode.FAILED_PRECONDITION
        assert NOTICE in refused.details
        # A form from before the change is stale (412), not applied twice.
        stale = console.post("/console/services/disable", data={**fields, "notice": "again"})
        assert stale.status_code == 412
        again = console.post("/console/services/enable", data=_method_form(done.text, GET_VEHICLE))
        assert again.status_code == 200, again.text
        assert f"Enabled {GET_VEHICLE} again" in again.text
        with world.consumer_channel() as channel:
            assert get_vehicle(channel).code is grpc.StatusCode.OK
        # Without the session's CSRF token nothing changes.
        fields = _method_form(again.text, GET_VEHICLE)
        forged = console.post(
            "/console/services/disable", data={**fields, "csrf_token": "forged", "notice": "x"}
        )
        assert forged.status_code == 403
    assert _state(admin, GET_VEHICLE)["enabled"] is True


def test_an_auditor_sees_the_state_without_the_buttons(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _console_login(admin, admin.keys[Role.AUDITOR]) as console:
        page = console.get("/console/services").text
    assert "Enabled" in page
    assert "/console/services/disable" not in page
