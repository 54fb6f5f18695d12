"""The consoles' sessions: how long they last."""

from __future__ import annotations

import time

import pytest

from spean.gateway.web import console
from spean.gateway.web.console import Sessions
from spean.gateway.web.roles import Principal, Role

CITIZEN = Principal("oidc:citizen-1", Role.DATA_SUBJECT, "oidc", subject="KH-NID-000000001")


def test_an_identity_providers_login_ends_when_its_id_token_expires() -> None:
    sessions = Sessions()
    lasting = sessions.create(CITIZEN, None, expires_at=time.time() + 300)
    expired = sessions.create(CITIZEN, None, expires_at=time.time() - 1)
    assert sessions.get(lasting.id) is not None
    assert sessions.get(expired.id) is None
    assert sessions.get(expired.id) is None  # and it is gone


def test_a_session_ends_when_idle_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions()
    session = sessions.create(CITIZEN, None, expires_at=time.time() + 10 * console.IDLE_SECONDS)
    later = time.monotonic() + console.IDLE_SECONDS + 1
    monkeypatch.setattr(console.time, "monotonic", lambda: later)
    assert sessions.get(session.id) is None
