"""The console's browser login through the identity provider (authorization code + PKCE),
against a real OpenID provider on a loopback port (tests/support/oidc.py)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from spean.gateway.config import CertificateRoleConfig, OidcConfig
from spean.gateway.errors import ConfigError, InvalidArgument, Unauthenticated, Unavailable
from spean.gateway.web import oidc_login
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.auth import OidcVerifier
from spean.gateway.web.oidc_login import OidcLogin, code_challenge
from spean.gateway.web.roles import Role
from tests.support.oidc import CLIENT_ID, Provider, identity_provider

CALLBACK = "https://127.0.0.1:8443/console/login/oidc/callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[Provider]:
    with identity_provider() as provider:
        yield provider


def _login(idp: Provider, **changes: Any) -> OidcLogin:
    section = idp.oidc_section()
    section["login"].update(changes)
    config = OidcConfig.model_validate(section)
    return OidcLogin(config, OidcVerifier(config), lambda path: path)


def _authorize(url: str) -> dict[str, str]:
    """What the provider sends the browser back with (its redirect's query)."""
    answer = httpx.get(url)
    assert answer.status_code == 302, answer.text
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).query))


def test_the_rfc_7636_example_challenge() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_login_round_trip_gives_the_mapped_role_and_the_persons_id(idp: Provider) -> None:
    idp.user = {"sub": "c-1", "roles": ["citizen"], "national_id": "KH-NID-000000001"}
    login = _login(idp)
    pending, url = login.begin(CALLBACK)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == CALLBACK
    back = _authorize(url)
    done = login.finish(pending, back["code"], back["state"])
    assert done.principal.role is Role.DATA_SUBJECT
    assert done.principal.subject == "KH-NID-000000001"
    assert done.principal.name == "oidc:c-1"
    assert done.expires_at > 0


def test_an_answer_is_used_once(idp: Provider) -> None:
    idp.user = {"sub": "a-1", "roles": ["ombudsman"]}
    login = _login(idp)
    pending, url = login.begin(CALLBACK)
    back = _authorize(url)
    assert login.finish(pending, back["code"], back["state"]).principal.role is Role.AUDITOR
    with pytest.raises(Unauthenticated, match="no login is waiting"):
        login.finish(pending, back["code"], back["state"])


def test_another_logins_state_is_refused_and_uses_the_pending_login(idp: Provider) -> None:
    idp.user = {"sub": "a-1", "roles": ["ombudsman"]}
    login = _login(idp)
    pending, url = login.begin(CALLBACK)
    back = _authorize(url)
    with pytest.raises(Unauthenticated, match="state"):
        login.finish(pending, back["code"], "forged")
    with pytest.raises(Unauthenticated, match="no login is waiting"):
        login.finish(pending, back["code"], back["state"])


def test_a_code_without_this_logins_verifier_is_refused_by_the_provider(idp: Provider) -> None:
    idp.user = {"sub": "a-1", "roles": ["ombudsman"]}
    login = _login(idp)
    _, first_url = login.begin(CALLBACK)
    second, second_url = login.begin(CALLBACK)
    stolen = _authorize(first_url)["code"]  # a code issued for the first login ...
    state = _authorize(second_url)["state"]
    with pytest.raises(Unauthenticated, match="refused the login code"):
        login.finish(second, stolen, state)  # ... redeemed with the second login's verifier


def test_a_token_for_another_nonce_is_refused(idp: Provider) -> None:
    idp.user = {"sub": "a-1", "roles": ["ombudsman"]}
    login = _login(idp)
    pending, url = login.begin(CALLBACK)
    back = _authorize(url)
    # The provider answers a token minted for another login (a substituted token).
    idp.codes[back["code"]].nonce = "another-login"
    with pytest.raises(Unauthenticated, match="nonce"):
        login.finish(pending, back["code"], back["state"])


def test_a_citizen_without_the_id_claim_is_refused(idp: Provider) -> None:
    idp.user = {"sub": "c-9", "roles": ["citizen"]}
    login = _login(idp)
    pending, url = login.begin(CALLBACK)
    back = _authorize(url)
    with pytest.raises(Unauthenticated, match="national_id"):
        login.finish(pending, back["code"], back["state"])


def test_an_unreachable_token_endpoint_is_unavailable_naming_it(idp: Provider) -> None:
    idp.user = {"sub": "a-1", "roles": ["ombudsman"]}
    login = _login(idp, token_url="http://127.0.0.1:9/token")
    pending, url = login.begin(CALLBACK)
    back = _authorize(url)
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:9/token"):
        login.finish(pending, back["code"], back["state"])


def test_a_pending_login_expires(idp: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    login = _login(idp)
    pending, _ = login.begin(CALLBACK)
    later = oidc_login.time.monotonic() + oidc_login.PENDING_SECONDS + 1
    monkeypatch.setattr(oidc_login.time, "monotonic", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        login.finish(pending, "code", "state")


def test_a_missing_client_secret_file_is_a_config_error(idp: Provider, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="client_secret_file"):
        _login(idp, client_secret_file=str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": ["profile"]}, "openid"),
        ({"token_url": "http://id.example.org/token"}, "https"),
        # A remote host whose name begins like a loopback one is still remote.
        ({"token_url": "http://localhost.evil.example/token"}, "https"),
        ({"authorization_url": "http://127.evil.example/authorize"}, "https"),
    ],
)
def test_the_login_settings_are_checked(
    idp: Provider, change: dict[str, Any], message: str
) -> None:
    section = idp.oidc_section()
    section["login"].update(change)
    with pytest.raises(ValidationError, match=message):
        OidcConfig.model_validate(section)


def test_the_jwks_url_of_a_remote_host_must_be_https(idp: Provider) -> None:
    section = idp.oidc_section(jwks_url="http://localhost.evil.example/jwks")
    with pytest.raises(ValidationError, match="jwks_url must be https"):
        OidcConfig.model_validate(section)
    assert OidcConfig.model_validate(idp.oidc_section()).jwks_url.startswith("http://127.0.0.1")


def test_data_subjects_need_the_claim_that_holds_their_id(idp: Provider) -> None:
    section = idp.oidc_section()
    del section["subject_claim"]
    with pytest.raises(ValidationError, match="subject_claim"):
        OidcConfig.model_validate(section)


def test_neither_a_certificate_nor_an_api_key_can_be_a_data_subject(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="identity provider"):
        CertificateRoleConfig(common_name="someone", role="data-subject")
    with pytest.raises(InvalidArgument, match="identity provider"):
        ApiKeyStore(tmp_path / "keys.json").create("citizen", Role.DATA_SUBJECT)
