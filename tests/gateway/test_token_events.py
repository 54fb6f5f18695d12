"""Event and ack tokens: MPWT's server signs a delivery to MoH's subscriber, MoH acknowledges.

Each refusal is one defect alone: a forged signature, a claim changed, an ack
for another event, a token of the wrong type.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spean.gateway.digests import b64url
from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.events import TopicId, event_digest
from spean.gateway.token_events import (
    AckClaims,
    EventClaims,
    check_event_payload,
    sign_ack,
    sign_event,
    verify_ack,
    verify_event,
)
from tests.support.tokens import (
    MOF,
    MOH,
    MPWT,
    NHIS,
    NOW,
    RESOLVE,
    assert_clean,
    forge,
    request_claims,
)

TOPIC = TopicId(MPWT.member.child("vehicles"), "ownership-transferred")
PAYLOAD = b"\x0a\x07ABC-123"
EVENT_ID = "5c1f4b7e-2d3a-4f6b-8e9d-0a1b2c3d4e5f"
ATTEMPT = "0b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a"


def event_claims(**changes: Any) -> EventClaims:
    claims = EventClaims(
        issuer=MPWT.member,
        topic=TOPIC,
        subscriber=NHIS,
        sequence=7,
        event_id=EVENT_ID,
        event_sha256=event_digest(PAYLOAD),
        published_at_ms=NOW * 1000,
        attempt_id=ATTEMPT,
        issued_at=NOW,
        expires_at=NOW + 60,
    )
    return replace(claims, **changes)


def ack_for(event: EventClaims, **changes: Any) -> AckClaims:
    return replace(AckClaims.answering(event, MOH.member, NOW, 60), **changes)


def test_an_event_token_round_trips_and_binds_its_payload() -> None:
    claims = event_claims()
    token = sign_event(MPWT.signer, claims)
    verified = verify_event(token, RESOLVE, now=NOW)
    assert verified == claims
    check_event_payload(verified, event_digest(PAYLOAD))
    with pytest.raises(Unauthenticated, match="does not match the digest"):
        check_event_payload(verified, event_digest(PAYLOAD + b"x"))


def test_an_ack_token_acknowledges_exactly_the_event_it_answers() -> None:
    event = event_claims()
    token = sign_ack(MOH.signer, ack_for(event))
    ack = verify_ack(token, RESOLVE, now=NOW, expected=event)
    assert (ack.sequence, ack.event_id, ack.attempt_id) == (7, EVENT_ID, ATTEMPT)
    for other, what in (
        (event_claims(sequence=8), "sequence 7, not 8"),
        (event_claims(attempt_id="1b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a"), "attempt"),
        (event_claims(event_id="6c1f4b7e-2d3a-4f6b-8e9d-0a1b2c3d4e5f"), "event"),
        (event_claims(event_sha256=event_digest(b"other")), "other event bytes"),
    ):
        with pytest.raises(Unauthenticated, match=what) as caught:
            verify_ack(token, RESOLVE, now=NOW, expected=other)
        assert_clean(caught.value)


def test_an_ack_signed_by_another_member_than_the_subscriber_is_refused() -> None:
    event = event_claims()
    header = {"alg": MOF.algorithm, "typ": "spean-ack+jwt", "kid": MOF.kid}
    payload = {
        "iss": str(MOH.member),
        "sub": str(NHIS),
        "aud": str(TOPIC.owner),
        "top": TOPIC.name,
        "seq": 7,
        "evt": EVENT_ID,
        "dig": b64url(event_digest(PAYLOAD)),
        "jti": ATTEMPT,
        "iat": NOW,
        "exp": NOW + 60,
    }
    with pytest.raises(Unauthenticated, match="does not own signing key"):
        verify_ack(forge(payload, MOF, header=header), RESOLVE, now=NOW, expected=event)


def test_a_forged_event_token_is_refused() -> None:
    token = sign_event(MPWT.signer, event_claims())
    header, _payload, signature = token.split(".")
    altered = sign_event(MPWT.signer, event_claims(sequence=8)).split(".")[1]
    with pytest.raises(Unauthenticated, match="signature does not verify") as caught:
        verify_event(f"{header}.{altered}.{signature}", RESOLVE, now=NOW)
    assert_clean(caught.value)


def test_a_request_token_is_not_an_event_token() -> None:
    token = MOH.signer.sign_request(request_claims())
    with pytest.raises(Unauthenticated, match="has type 'spean-req\\+jwt'"):
        verify_event(token, RESOLVE, now=NOW)


def test_an_expired_event_token_is_refused() -> None:
    token = sign_event(MPWT.signer, event_claims())
    with pytest.raises(Unauthenticated, match="expired"):
        verify_event(token, RESOLVE, now=NOW + 600)


def test_an_event_token_with_an_extra_claim_is_refused() -> None:
    claims = event_claims()
    payload = {
        "iss": str(MPWT.member),
        "sub": str(TOPIC.owner),
        "aud": str(NHIS),
        "top": TOPIC.name,
        "seq": 7,
        "evt": EVENT_ID,
        "dig": b64url(claims.event_sha256),
        "pat": NOW * 1000,
        "jti": ATTEMPT,
        "iat": NOW,
        "exp": NOW + 60,
    }
    header = {"alg": MPWT.algorithm, "typ": "spean-evt+jwt", "kid": MPWT.kid}
    assert verify_event(forge(payload, MPWT, header=header), RESOLVE, now=NOW) == claims
    with pytest.raises(Unauthenticated, match="unexpected claim 'mth'"):
        verify_event(forge({**payload, "mth": "x"}, MPWT, header=header), RESOLVE, now=NOW)
    with pytest.raises(Unauthenticated, match="claim 'seq' must be an integer"):
        verify_event(forge({**payload, "seq": True}, MPWT, header=header), RESOLVE, now=NOW)
    with pytest.raises(Unauthenticated, match="topic name"):
        verify_event(forge({**payload, "top": "Bad Name"}, MPWT, header=header), RESOLVE, now=NOW)


def test_claims_refuse_a_topic_not_owned_by_the_issuer_and_a_zero_sequence() -> None:
    with pytest.raises(InvalidArgument, match="is not a subsystem of issuer"):
        event_claims(issuer=MOH.member)
    with pytest.raises(InvalidArgument, match="at least 1"):
        event_claims(sequence=0)
