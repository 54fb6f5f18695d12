"""The tokens of publish/subscribe audit records, as the offline verifier judges them (pure).

An event record (`Kind.EVENT_DELIVERY` that ended OK) must hold both the
event token and the ack token, each verifying with the key the global
configuration lists for its member, and both binding exactly what the record
says: the attempt (`exchange_id`), the event id, topic owner (`service`) and
name, sequence, subscriber (`client`) and the event digest (`request_sha256`).
A refused or failed delivery proves nothing about the event (a forged token is
kept as it was presented) and is not checked; neither are publish and ack
records, which no peer signed. Times are judged at the record's own
timestamps, as the request and response tokens are (`audit.verify`).
"""

from __future__ import annotations

from spean.gateway.audit.record import AuditRecord, Kind
from spean.gateway.errors import Unauthenticated
from spean.gateway.token_claims import KeyResolver
from spean.gateway.token_events import verify_ack, verify_event

OK = "OK"


def checks_event_tokens(record: AuditRecord) -> bool:
    """Whether the content pass checks this event record's tokens."""
    return record.kind is Kind.EVENT_DELIVERY and record.status == OK


def check_event_tokens(record: AuditRecord, resolve: KeyResolver) -> int:
    """Verify an event record's tokens (see the module docstring); the number verified.

    Raises `Unauthenticated` naming the first disagreement.
    """
    if not checks_event_tokens(record):
        return 0
    if not (record.event_token and record.ack_token):
        raise Unauthenticated("a delivery that ended OK must hold the event and the ack token")
    now = record.received_at_ns // 1_000_000_000
    event = verify_event(record.event_token, resolve, now=now)
    bound = (
        ("attempt", event.attempt_id, record.exchange_id),
        ("event id", event.event_id, record.event_id),
        ("topic owner", str(event.topic.owner), record.service),
        ("topic", event.topic.name, record.topic),
        ("sequence", event.sequence, record.sequence),
        ("subscriber", str(event.subscriber), record.client),
    )
    for name, token_value, record_value in bound:
        if token_value != record_value:
            raise Unauthenticated(
                f"event token {name} is {token_value}, the record says {record_value}"
            )
    if event.event_sha256 != record.request_sha256:
        raise Unauthenticated("event token digest differs from the record's event digest")
    answered = (record.answered_at_ns or record.received_at_ns) // 1_000_000_000
    verify_ack(record.ack_token, resolve, now=answered, expected=event)
    return 2
