"""The subscriber server's checks of one delivery, in protocol order (pure).

`admit_delivery` takes everything the Deliver call brought (the TLS peer's
certificate, the event token, the payload) and this server's rules, and
either returns the verified `EventClaims` or raises the refusal of the first
check that fails, in the order of docs/protocol.md, section 13.3 (checks 1 to
9; the replay and duplicate checks 10 and 11 need the durable store and are
the store's). `Admitted` carries what is known so far even for a refusal, so
the audit record of a refused delivery names as much as was established.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set
from dataclasses import dataclass, field

from spean.gateway import trust
from spean.gateway.errors import (
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unauthenticated,
)
from spean.gateway.events import Subscriptions, event_digest
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.token_events import EventClaims, check_event_payload, verify_event


@dataclass(frozen=True, slots=True)
class DeliveryRules:
    """What this subscriber server accepts: its clients, their subscriptions, limits."""

    clients: frozenset[SubsystemId]
    subscriptions: Subscriptions
    max_event_bytes: int
    leeway: int = 30


@dataclass(slots=True)
class Admitted:
    """How far a delivery got: the peer's thumbprint, the claims, the refusal if any."""

    peer_sha256: str = ""
    claims: EventClaims | None = None
    payload_sha256: bytes = b""
    refusal: SpeanError | None = field(default=None)


def admit_delivery(
    rules: DeliveryRules,
    conf: GlobalConfiguration | SpeanError,
    *,
    peer_pem: bytes | None,
    token: str,
    payload: bytes,
    now: dt.datetime,
) -> Admitted:
    """Checks 1 to 9 of protocol.md 13.3; the first failure is `Admitted.refusal`."""
    admitted = Admitted(payload_sha256=event_digest(payload))
    try:
        _admit(rules, conf, admitted, peer_pem, token, payload, now)
    except SpeanError as exc:
        admitted.refusal = exc
    return admitted


def _admit(
    rules: DeliveryRules,
    conf: GlobalConfiguration | SpeanError,
    admitted: Admitted,
    peer_pem: bytes | None,
    token: str,
    payload: bytes,
    now: dt.datetime,
) -> None:
    if isinstance(conf, SpeanError):  # 1
        raise conf
    server, admitted.peer_sha256 = trust.identify_server(conf, peer_pem)  # 2
    claims = verify_event(  # 3
        token, trust.key_resolver(conf, now), now=int(now.timestamp()), leeway=rules.leeway
    )
    admitted.claims = claims
    if claims.issuer != server.owner:  # 4
        raise Unauthenticated(
            f"event token issued by {claims.issuer} arrived from security server {server.id}"
            f" of {server.owner}"
        )
    if server.id not in _hosts(conf, claims.topic.owner):
        raise Unauthenticated(
            f"security server {server.id} does not host {claims.topic.owner}, the owner of"
            f" topic {claims.topic}"
        )
    if len(payload) > rules.max_event_bytes:  # 5
        raise ResourceExhausted(
            f"event {claims.event_id} is {len(payload)} bytes, more than the"
            f" {rules.max_event_bytes} this server accepts (limits.max_message_bytes)"
        )
    check_event_payload(claims, admitted.payload_sha256)  # 6
    if conf.topic(claims.topic) is None:  # 7
        raise NotFound(f"topic {claims.topic} is not published in the global configuration")
    if claims.subscriber not in rules.clients:  # 8
        raise NotFound(f"subscriber {claims.subscriber} is not registered on this server")
    if not rules.subscriptions.takes(claims.subscriber, claims.topic):  # 9
        raise PermissionDenied(
            f"{claims.subscriber} has not subscribed to {claims.topic} here; its administrator"
            " adds it under pubsub.subscriptions"
        )


def _hosts(conf: GlobalConfiguration, subsystem: SubsystemId) -> Set[object]:
    return {server.id for server in conf.servers_for(subsystem)}
