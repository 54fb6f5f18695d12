"""API keys: shown once, kept as hashes, revoked at once."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from spean.gateway.errors import NotFound, Unauthenticated
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role


def test_a_created_key_authenticates_with_its_role(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "keys.json")
    key, entry = store.create("ci-deploy", Role.SERVICE_ADMINISTRATOR)
    principal = store.authenticate(key)
    assert principal.role is Role.SERVICE_ADMINISTRATOR
    assert principal.name == f"api-key:{entry.id}:ci-deploy"


def test_the_store_holds_no_secret_and_is_private(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "keys.json")
    key, _ = store.create("ci", Role.AUDITOR)
    text = store.path.read_text()
    assert key not in text
    assert key.split("_")[2] not in text
    assert json.loads(text)["keys"][0]["role"] == "auditor"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_a_revoked_key_is_refused_at_once(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "keys.json")
    key, entry = store.create("old", Role.SYSTEM_ADMINISTRATOR)
    other, _ = store.create("new", Role.SYSTEM_ADMINISTRATOR)
    # Another process (the CLI) revokes: this store object sees it on the next check.
    ApiKeyStore(store.path).revoke(entry.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        store.authenticate(key)
    assert store.authenticate(other).role is Role.SYSTEM_ADMINISTRATOR


def test_a_key_with_a_changed_secret_is_unknown(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "keys.json")
    key, _ = store.create("ci", Role.AUDITOR)
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthenticated, match="not known"):
        store.authenticate(forged)


def test_revoking_an_unknown_id_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no API key with id abc"):
        ApiKeyStore(tmp_path / "keys.json").revoke("abc")
