"""The offline verifier's rule for event records: an OK delivery holds both tokens, and
they bind exactly what the record says."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spean.gateway.audit.events import check_event_tokens, checks_event_tokens
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.verify import checks_tokens, token_outcome
from spean.gateway.errors import Unauthenticated
from spean.gateway.events import TopicId, event_digest
from spean.gateway.token_events import AckClaims, EventClaims, sign_ack, sign_event
from tests.support.tokens import MOH, MPWT, NHIS, NOW, RESOLVE

TOPIC = TopicId(MPWT.member.child("vehicles"), "ownership-transferred")
PAYLOAD = b"event"
EVENT = EventClaims(
    issuer=MPWT.member,
    topic=TOPIC,
    subscriber=NHIS,
    sequence=3,
    event_id="5c1f4b7e-2d3a-4f6b-8e9d-0a1b2c3d4e5f",
    event_sha256=event_digest(PAYLOAD),
    published_at_ms=NOW * 1000,
    attempt_id="0b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a",
    issued_at=NOW,
    expires_at=NOW + 60,
)
RECORD = AuditRecord(
    exchange_id=EVENT.attempt_id,
    side=Side.PROVIDER,
    origin="KH/GOV/MPWT/ss1#w0",
    received_at_ns=NOW * 10**9,
    answered_at_ns=NOW * 10**9,
    status="OK",
    kind=Kind.EVENT_DELIVERY,
    client=str(NHIS),
    service=str(TOPIC.owner),
    topic=TOPIC.name,
    event_id=EVENT.event_id,
    sequence=3,
    request_sha256=EVENT.event_sha256,
    event_token=sign_event(MPWT.signer, EVENT),
    ack_token=sign_ack(MOH.signer, AckClaims.answering(EVENT, MOH.member, NOW, 60)),
)


def test_an_honest_delivery_record_verifies_both_tokens() -> None:
    assert checks_event_tokens(RECORD)
    assert checks_tokens(RECORD)
    assert check_event_tokens(RECORD, RESOLVE) == 2
    assert token_outcome(RECORD, RESOLVE) == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"sequence": 4}, "sequence is 3, the record says 4"),
        ({"client": "KH/GOV/MOH/other"}, "subscriber"),
        ({"request_sha256": event_digest(b"other")}, "digest differs"),
        ({"exchange_id": "1b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a"}, "attempt"),
        ({"ack_token": ""}, "must hold the event and the ack token"),
    ],
)
def test_a_record_that_disagrees_with_its_tokens_is_reported(
    change: dict[str, object], words: str
) -> None:
    altered = replace(RECORD, **change)  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match=words):
        check_event_tokens(altered, RESOLVE)
    assert words.split()[0] in str(token_outcome(altered, RESOLVE))


def test_refused_deliveries_publishes_and_acks_hold_no_peer_signature_to_check() -> None:
    for record in (
        replace(RECORD, status="UNAVAILABLE", ack_token=""),
        replace(RECORD, kind=Kind.EVENT_PUBLISH, event_token="", ack_token=""),
        replace(RECORD, kind=Kind.EVENT_ACK, side=Side.CONSUMER, event_token="", ack_token=""),
    ):
        assert not checks_tokens(record)
        assert check_event_tokens(record, RESOLVE) == 0
