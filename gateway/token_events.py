"""Event and ack tokens: the signed contract of one delivery (pure: claims in, token out).

Two more token types beside the request and response tokens, made and checked
by the same machinery (`TokenSigner.sign_typed`, the JWS framing, header, key
and time checks of `spean.gateway.token_verification`), so they have the same
guarantees: exact header and claim set, the key from the global configuration,
its algorithm from its type, bounded lifetime (docs/protocol.md, section 13.5).

- Event token (``spean-evt+jwt``), signed by the provider's member: ``iss``,
  ``sub`` the topic owner, ``aud`` the subscriber, ``top`` topic name, ``seq``,
  ``evt`` event id, ``dig`` event digest, ``pat`` publication time (Unix ms),
  ``jti`` the attempt id, ``iat``, ``exp``.
- Ack token (``spean-ack+jwt``), signed by the subscriber's member: ``iss``,
  ``sub`` the subscriber, ``aud`` the topic owner, and ``top``, ``seq``,
  ``evt``, ``dig``, ``jti`` of the event token it answers, ``iat``, ``exp``.

`verify_ack` takes the event claims it expects to be answered and refuses an
ack that differs in any bound value.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Final

from spean.gateway.digests import b64url, decode_digest
from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.events import TopicId, parse_topic_name
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.token_claims import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    KeyResolver,
    _check_common,
    _check_digest,
    _check_parties,
    parse_exchange_id,
    parse_member_cached,
    parse_subsystem_cached,
)
from spean.gateway.token_signing import TokenSigner
from spean.gateway.token_verification import (
    _check_claimquote_names,
    _check_issuer,
    _check_times,
    _exchange_id_claim,
    _int_claim,
    _parsed_claim,
    _str_claim,
    _verify_jws,
)

EVENT_TYPE: Final = "spean-evt+jwt"
ACK_TYPE: Final = "spean-ack+jwt"
EVENT_CLAIMS: Final = frozenset(
    {"iss", "sub", "aud", "top", "seq", "evt", "dig", "pat", "jti", "iat", "exp"}
)
ACK_CLAIMS: Final = frozenset(
    {"iss", "sub", "aud", "top", "seq", "evt", "dig", "jti", "iat", "exp"}
)


@dataclass(frozen=True, slots=True)
class EventClaims:
    """What an event token asserts about one delivery attempt. Construction checks it."""

    issuer: MemberId
    topic: TopicId
    subscriber: SubsystemId
    sequence: int
    event_id: str
    event_sha256: bytes
    published_at_ms: int
    attempt_id: str
    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.topic, TopicId):
            raise InvalidArgument("event token topic must be a TopicId")
        _check_parties(self.issuer, self.topic.owner, self.subscriber, "topic owner")
        _check_sequence(self.sequence)
        parse_exchange_id(self.event_id)
        _check_digest(self.event_sha256, "event digest")
        if type(self.published_at_ms) is not int or self.published_at_ms < 0:
            raise InvalidArgument("publication time must be a non-negative integer (ms)")
        _check_common(self.attempt_id, self.issued_at, self.expires_at)


@dataclass(frozen=True, slots=True)
class AckClaims:
    """What an ack token asserts: this subscriber stored this event. Construction checks it."""

    issuer: MemberId
    subscriber: SubsystemId
    topic: TopicId
    sequence: int
    event_id: str
    event_sha256: bytes
    attempt_id: str
    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.topic, TopicId):
            raise InvalidArgument("ack token topic must be a TopicId")
        _check_parties(self.issuer, self.subscriber, self.topic.owner, "subscriber")
        _check_sequence(self.sequence)
        parse_exchange_id(self.event_id)
        _check_digest(self.event_sha256, "event digest")
        _check_common(self.attempt_id, self.issued_at, self.expires_at)

    @classmethod
    def answering(
        cls, event: EventClaims, issuer: MemberId, issued_at: int, lifetime: int
    ) -> AckClaims:
        """The ack of `event`, from its subscriber's member."""
        return cls(
            issuer=issuer,
            subscriber=event.subscriber,
            topic=event.topic,
            sequence=event.sequence,
            event_id=event.event_id,
            event_sha256=event.event_sha256,
            attempt_id=event.attempt_id,
            issued_at=issued_at,
            expires_at=issued_at + lifetime,
        )


def _check_sequence(sequence: int) -> None:
    if type(sequence) is not int or sequence < 1:
        raise InvalidArgument(f"sequence number {sequence!r:.40} must be an integer of at least 1")


def sign_event(signer: TokenSigner, claims: EventClaims) -> str:
    return signer.sign_typed(
        EVENT_TYPE,
        {
            "iss": str(claims.issuer),
            "sub": str(claims.topic.owner),
            "aud": str(claims.subscriber),
            "top": claims.topic.name,
            "seq": claims.sequence,
            "evt": claims.event_id,
            "dig": b64url(claims.event_sha256),
            "pat": claims.published_at_ms,
            "jti": claims.attempt_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
        },
    )


def sign_ack(signer: TokenSigner, claims: AckClaims) -> str:
    return signer.sign_typed(
        ACK_TYPE,
        {
            "iss": str(claims.issuer),
            "sub": str(claims.subscriber),
            "aud": str(claims.topic.owner),
            "top": claims.topic.name,
            "seq": claims.sequence,
            "evt": claims.event_id,
            "dig": b64url(claims.event_sha256),
            "jti": claims.attempt_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
        },
    )


def verify_event(
    token: str,
    resolve: KeyResolver,
    *,
    now: int,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
) -> EventClaims:
    """Verify an event token completely; binding it to the payload is `check_event_payload`."""
    what = "event token"
    key, kid, payload = _verify_jws(token, resolve, EVENT_TYPE, what)
    _check_claimquote_names(payload, EVENT_CLAIMS, frozenset(), what)
    issuer = _parsed_claim(payload, "iss", what, parse_member_cached)
    _check_issuer(issuer, key, kid, what)
    issued_at, expires_at = _check_times(payload, what, now, leeway, max_lifetime)
    try:
        return EventClaims(
            issuer=issuer,
            topic=TopicId(
                _parsed_claim(payload, "sub", what, parse_subsystem_cached),
                _parsed_claim(payload, "top", what, parse_topic_name),
            ),
            subscriber=_parsed_claim(payload, "aud", what, parse_subsystem_cached),
            sequence=_int_claim(payload, "seq", what),
            event_id=_event_id_claim(payload, what),
            event_sha256=_parsed_claim(payload, "dig", what, decode_digest),
            published_at_ms=_int_claim(payload, "pat", what),
            attempt_id=_exchange_id_claim(payload, what),
            issued_at=issued_at,
            expires_at=expires_at,
        )
    except InvalidArgument as error:  # an invariant of EventClaims
        raise Unauthenticated(f"{what}: {error.message}") from None


def check_event_payload(claims: EventClaims, payload_sha256: bytes) -> None:
    """Refuse a verified event token delivered with other bytes than it binds."""
    if not hmac.compare_digest(claims.event_sha256, payload_sha256):
        raise Unauthenticated(
            f"event {claims.event_id} does not match the digest in its event token (claim 'dig')"
        )


def verify_ack(
    token: str,
    resolve: KeyResolver,
    *,
    now: int,
    expected: EventClaims,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
) -> AckClaims:
    """Verify an ack token and that it acknowledges exactly the `expected` delivery."""
    what = "ack token"
    key, kid, payload = _verify_jws(token, resolve, ACK_TYPE, what)
    _check_claimquote_names(payload, ACK_CLAIMS, frozenset(), what)
    issuer = _parsed_claim(payload, "iss", what, parse_member_cached)
    _check_issuer(issuer, key, kid, what)
    issued_at, expires_at = _check_times(payload, what, now, leeway, max_lifetime)
    try:
        claims = AckClaims(
            issuer=issuer,
            subscriber=_parsed_claim(payload, "sub", what, parse_subsystem_cached),
            topic=TopicId(
                _parsed_claim(payload, "aud", what, parse_subsystem_cached),
                _parsed_claim(payload, "top", what, parse_topic_name),
            ),
            sequence=_int_claim(payload, "seq", what),
            event_id=_event_id_claim(payload, what),
            event_sha256=_parsed_claim(payload, "dig", what, decode_digest),
            attempt_id=_exchange_id_claim(payload, what),
            issued_at=issued_at,
            expires_at=expires_at,
        )
    except InvalidArgument as error:
        raise Unauthenticated(f"{what}: {error.message}") from None
    bound = (
        ("attempt", claims.attempt_id, expected.attempt_id),
        ("subscriber", claims.subscriber, expected.subscriber),
        ("topic", claims.topic, expected.topic),
        ("sequence", claims.sequence, expected.sequence),
        ("event", claims.event_id, expected.event_id),
    )
    for name, got, wanted in bound:
        if got != wanted:
            raise Unauthenticated(f"{what} acknowledges {name} {got}, not {wanted}")
    if not hmac.compare_digest(claims.event_sha256, expected.event_sha256):
        raise Unauthenticated(f"{what} acknowledges other event bytes (claim 'dig')")
    return claims


def _event_id_claim(payload: dict[str, Any], what: str) -> str:
    text = _str_claim(payload, "evt", what)
    try:
        return parse_exchange_id(text)
    except InvalidArgument:
        raise Unauthenticated(f"{what} claim 'evt' must be a lower-case UUID4 event id") from None
