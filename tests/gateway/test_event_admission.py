"""MoH's server admits a delivery from MPWT's, one check at a time (protocol.md 13.3)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

from spean.gateway.errors import Unavailable
from spean.gateway.event_admission import DeliveryRules, admit_delivery
from spean.gateway.events import Subscriptions, TopicId, event_digest
from spean.gateway.token_events import EventClaims, sign_event
from tests.support.conf import MOH, MPWT, MPWT_SS1, NHIS, VEHICLES, PureFederation

TOPIC = TopicId(VEHICLES, "ownership-transferred")
PAYLOAD = b"\x0a\x07ABC-123"


@pytest.fixture(scope="module")
def federation() -> PureFederation:
    return PureFederation()


def rules(**changes: Any) -> DeliveryRules:
    made = DeliveryRules(
        clients=frozenset({NHIS}),
        subscriptions=Subscriptions(frozenset({(NHIS, TOPIC)})),
        max_event_bytes=1024,
    )
    return replace(made, **changes)


def claims(**changes: Any) -> EventClaims:
    now = int(time.time())
    made = EventClaims(
        issuer=MPWT,
        topic=TOPIC,
        subscriber=NHIS,
        sequence=1,
        event_id=str(uuid.uuid4()),
        event_sha256=event_digest(PAYLOAD),
        published_at_ms=now * 1000,
        attempt_id=str(uuid.uuid4()),
        issued_at=now,
        expires_at=now + 60,
    )
    return replace(made, **changes)


def admit(
    federation: PureFederation,
    *,
    conf: Any = None,
    rule: DeliveryRules | None = None,
    made: EventClaims | None = None,
    signer: Any = MPWT,
    peer: Any = MPWT_SS1,
    payload: bytes = PAYLOAD,
) -> Any:
    token = sign_event(federation.signer(signer), made or claims())
    return admit_delivery(
        rule or rules(),
        conf if conf is not None else federation.with_topics(TOPIC.name),
        peer_pem=federation.tls_pem(peer) if peer is not None else None,
        token=token,
        payload=payload,
        now=dt.datetime.now(dt.UTC),
    )


def test_an_honest_delivery_is_admitted_with_its_claims(federation: PureFederation) -> None:
    made = claims()
    admitted = admit(federation, made=made)
    assert admitted.refusal is None
    assert admitted.claims == made
    assert admitted.payload_sha256 == event_digest(PAYLOAD)
    assert len(admitted.peer_sha256) == 64


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("no configuration", "UNAVAILABLE", "expired"),
        ("no certificate", "UNAUTHENTICATED", "no client certificate"),
        ("signed by the subscriber", "UNAUTHENTICATED", "arrived from security server"),
        ("too large", "RESOURCE_EXHAUSTED", "more than the 4 this server"),
        ("other bytes", "UNAUTHENTICATED", "does not match the digest"),
        ("unpublished topic", "NOT_FOUND", "not published"),
        ("unknown subscriber", "NOT_FOUND", "not registered on this server"),
        ("not subscribed", "PERMISSION_DENIED", "has not subscribed"),
    ],
)
def test_each_defect_alone_is_refused_with_its_status(
    federation: PureFederation, case: str, code: str, words: str
) -> None:
    subscriber = claims(topic=TopicId(VEHICLES, "other"))
    admitted = {
        "no configuration": lambda: admit(federation, conf=Unavailable("expired")),
        "no certificate": lambda: admit(federation, peer=None),
        "signed by the subscriber": lambda: admit(
            federation,
            made=claims(issuer=MOH, topic=TopicId(NHIS, "x"), subscriber=VEHICLES),
            signer=MOH,
        ),
        "too large": lambda: admit(federation, rule=rules(max_event_bytes=4)),
        "other bytes": lambda: admit(federation, payload=PAYLOAD + b"!"),
        "unpublished topic": lambda: admit(federation, made=subscriber),
        "unknown subscriber": lambda: admit(federation, rule=rules(clients=frozenset())),
        "not subscribed": lambda: admit(
            federation, rule=rules(subscriptions=Subscriptions(frozenset()))
        ),
    }[case]()
    assert admitted.refusal is not None
    assert admitted.refusal.code.name == code
    assert words in admitted.refusal.message
