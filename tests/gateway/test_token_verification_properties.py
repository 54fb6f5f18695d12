"""Verification properties the other token tests do not state.

tests/gateway/test_token_signing.py proves round trips, test_token_jws.py and
test_token_verification.py that no single byte of a token can change.
Here the attacker holds a genuine signing key (or none) and edits the JSON
itself, then signs what they edited, which is how a dishonest member or a
confused implementation would really go about it:

- verification never fails with anything but `Unauthenticated`, whatever the
  text, header or claims;
- a token that verifies says exactly what was signed: the claims it yields,
  written back as JSON, are the JSON that was signed (nothing is dropped,
  coerced or defaulted on the way);
- any header other than the genuine one is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spean.gateway import pki
from spean.gateway.digests import request_digest
from spean.gateway.errors import Unauthenticated
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.token_claims import REQUEST_TYPE, RequestClaims, VerifyingKey, new_exchange_id
from spean.gateway.token_signing import TokenSigner
from spean.gateway.token_verification import verify_request
from tests.support import rogue

MEMBER = MemberId.parse("KH/GOV/MOH")
KEY = pki.generate_key()
CERT = pki.create_ca(KEY, "KH", now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
SIGNER = TokenSigner(KEY, CERT)
TRUSTED = {SIGNER.kid: VerifyingKey.from_certificate(MEMBER, CERT)}
NOW = int(time.time())
HEADER = {"alg": "ES256", "typ": REQUEST_TYPE, "kid": SIGNER.kid}
GENUINE = RequestClaims(
    issuer=MEMBER,
    client=SubsystemId.parse("KH/GOV/MOH/nhis"),
    audience=SubsystemId.parse("KH/GOV/MPWT/vehicles"),
    method="/vehicles.v1.VehicleRegistry/GetVehicle",
    exchange_id=new_exchange_id(),
    issued_at=NOW,
    expires_at=NOW + 60,
    request_sha256=request_digest(b"\x0a\x072A-1234"),
    user="dr.sokha",
)

CHECKS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
# Values an attacker would try in a claim: other claims' values, near misses, any JSON.
CLAIM_VALUES = st.one_of(
    JSON,
    st.sampled_from(
        [
            "KH/GOV/MOI",
            "KH/GOV/MOH/nhis ",
            "kh/gov/moh",
            "KH/GOV/MOI/idreg",
            "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner",
            GENUINE.exchange_id.upper(),
            NOW + 1,
            NOW - 3600,
            NOW + 3600,
            float(NOW),
            True,
            "",
            "\u0085",
            "a" * 1025,
        ]
    ),
)
CLAIM_NAMES = st.sampled_from(
    ["iss", "sub", "aud", "mth", "jti", "iat", "exp", "req", "usr", "pur", "cnt", "sts", "x"]
)


def _verify(token: str) -> RequestClaims:
    return verify_request(token, TRUSTED.get, now=NOW)


def test_the_genuine_token_verifies() -> None:
    assert _verify(rogue.sign_raw(HEADER, rogue.raw_payload(GENUINE), KEY)) == GENUINE


@CHECKS
@given(edits=st.dictionaries(CLAIM_NAMES, st.one_of(st.just(None), CLAIM_VALUES), max_size=3))
def test_edited_and_resigned_claims_verify_only_as_what_was_signed(
    edits: dict[str, Any],
) -> None:
    payload: dict[str, Any] = rogue.raw_payload(GENUINE)
    for name, value in edits.items():
        if value is None:
            payload.pop(name, None)  # None stands for "drop the claim"
        else:
            payload[name] = value
    try:
        verified = _verify(rogue.sign_raw(HEADER, payload, KEY))
    except Unauthenticated:
        return
    assert rogue.raw_payload(verified) == payload


@CHECKS
@given(payload=JSON)
def test_any_signed_json_is_refused_cleanly(payload: Any) -> None:
    with pytest.raises(Unauthenticated):
        _verify(rogue.sign_raw(HEADER, payload, KEY))


@CHECKS
@given(
    edits=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "jku", "crit", "b64"]), JSON, min_size=1, max_size=2
    ),
)
def test_any_other_header_is_refused(edits: dict[str, Any]) -> None:
    header: dict[str, Any] = {**HEADER, **edits}
    if header == HEADER:
        return
    with pytest.raises(Unauthenticated):
        _verify(rogue.sign_raw(header, rogue.raw_payload(GENUINE), KEY))


@CHECKS
@given(text=st.text(alphabet=st.characters(codec="ascii"), max_size=300))
def test_any_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(Unauthenticated):
        _verify(text)


@CHECKS
@given(
    parts=st.lists(
        st.binary(max_size=120).map(rogue.segment)
        | st.from_regex(r"[A-Za-z0-9_-]{0,40}", fullmatch=True),
        min_size=3,
        max_size=3,
    )
)
def test_any_three_segments_are_refused_cleanly(parts: list[str]) -> None:
    with pytest.raises(Unauthenticated):
        _verify(".".join(parts))


@CHECKS
@given(payload=JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=80))
def test_unsigned_tokens_are_refused_whatever_they_say(payload: bytes) -> None:
    with pytest.raises(Unauthenticated):
        _verify(rogue.sign_raw(HEADER, payload, None))
