"""Publish/subscribe rules: topics, who receives what, and the delivery cursor (pure).

Theory of operation (docs/pubsub.md). A topic is a log of events owned by one
provider subsystem and written ``SUBSYSTEM:NAME``. Its subscribers are exactly
the consumer subsystems the provider's access rules grant it (deny by default,
the rule model of `spean.gateway.access` with the topic name in place of a
method). For each (topic, subscriber) the provider keeps a `Cursor`: the last
acknowledged sequence number and the state of the event in flight. The cursor
moves only forward and one event at a time, which is the ordering guarantee:

- `Cursor.acknowledged(seq)` after a verified acknowledgement of ``acked + 1``;
- `Cursor.failed(...)` after a failed attempt: the next attempt is due after an
  exponential backoff (`DeliveryPolicy.delay_ms`); after `max_attempts` the
  event is dead-lettered and the cursor moves past it.

Guarantees: every value is immutable and checked at construction (a topic name
that does not match the grammar, a negative sequence, a policy whose limits
contradict each other raise `InvalidArgument` or `ConfigError`); no function
reads a clock or a random source, both come in as arguments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from spean.gateway.access import ANY_METHOD, AccessRule
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.identifiers import SubsystemId

TOPIC_NAME: Final = re.compile(r"[a-z][a-z0-9._-]{0,63}\Z")
EVENT_TYPE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")
ANY_TOPIC: Final = ANY_METHOD


def parse_topic_name(text: str) -> str:
    """Return `text` if it is a topic name, else raise `InvalidArgument` saying the grammar."""
    if not isinstance(text, str) or not TOPIC_NAME.match(text):
        raise InvalidArgument(
            f"topic name {text!r:.80} must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-',"
            " starting with a letter"
        )
    return text


def parse_event_type(text: str) -> str:
    """Return `text` if it is a fully qualified protobuf message name (``pkg.Message``)."""
    if not isinstance(text, str) or len(text) > 255 or not EVENT_TYPE.match(text):
        raise InvalidArgument(
            f"event type {text!r:.80} must be a fully qualified protobuf message name,"
            " e.g. population.v1.CitizenAddressChanged"
        )
    return text


def event_digest(payload: bytes) -> bytes:
    """SHA-256 of the event bytes exactly as published: what tokens bind and logs record."""
    return hashlib.sha256(payload).digest()


@dataclass(frozen=True, slots=True, order=True)
class TopicId:
    """A topic: its owner subsystem and its name, written ``SUBSYSTEM:NAME``."""

    owner: SubsystemId
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.owner, SubsystemId):
            raise InvalidArgument(f"topic owner must be a SubsystemId, got {self.owner!r:.80}")
        parse_topic_name(self.name)

    @classmethod
    def parse(cls, text: str) -> TopicId:
        owner, sep, name = text.rpartition(":") if isinstance(text, str) else ("", "", "")
        if not sep:
            raise InvalidArgument(
                f"topic {text!r:.80} must be SUBSYSTEM:NAME, e.g."
                " KH/GOV/MOI/population:citizen-address-changed"
            )
        return cls(SubsystemId.parse(owner), parse_topic_name(name))

    def __str__(self) -> str:
        return f"{self.owner}:{self.name}"


class TopicAccess:
    """Who may receive which topic: deny by default, rules as for services.

    A rule names a client (the subscriber), a service (the topic's owner) and
    topic names, ``*`` for every topic of that owner.
    """

    __slots__ = ("_rules",)

    def __init__(self, rules: Iterable[AccessRule]) -> None:
        self._rules = tuple(rules)

    def allows(self, subscriber: SubsystemId, topic: TopicId) -> bool:
        return any(
            rule.client == subscriber
            and rule.service == topic.owner
            and (ANY_TOPIC in rule.methods or topic.name in rule.methods)
            for rule in self._rules
        )

    def subscribers(self, topic: TopicId) -> tuple[SubsystemId, ...]:
        """Every subsystem granted `topic`, sorted: the topic's subscribers."""
        return tuple(
            sorted(
                {
                    rule.client
                    for rule in self._rules
                    if rule.service == topic.owner
                    and (ANY_TOPIC in rule.methods or topic.name in rule.methods)
                }
            )
        )


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How failed deliveries are retried: exponential backoff, then the dead-letter state."""

    initial_backoff_ms: int = 500
    max_backoff_ms: int = 60_000
    max_attempts: int = 200
    attempt_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.initial_backoff_ms <= self.max_backoff_ms:
            raise ConfigError(
                f"delivery backoff: initial_backoff_ms ({self.initial_backoff_ms}) must be at"
                f" least 1 and at most max_backoff_ms ({self.max_backoff_ms})"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"delivery max_attempts must be at least 1, not {self.max_attempts}")
        if self.attempt_timeout_ms < 1:
            raise ConfigError("delivery attempt_timeout_ms must be at least 1")

    def delay_ms(self, attempts: int, jitter: float) -> int:
        """Wait before the next attempt after `attempts` failures (>= 1).

        ``initial * 2^(attempts-1)``, capped at the maximum, less up to 20 %
        (`jitter` in [0, 1), from the caller's random source) so that many
        subscribers do not retry in step.
        """
        if attempts < 1:
            raise InvalidArgument(f"delay after {attempts} failed attempts is undefined")
        if not 0.0 <= jitter < 1.0:
            raise InvalidArgument(f"jitter must be in [0, 1), not {jitter}")
        # Capping the exponent first keeps 2**n small for a long outage.
        exponent = min(attempts - 1, 40)
        base = min(self.max_backoff_ms, self.initial_backoff_ms * (1 << exponent))
        return max(1, round(base * (1.0 - 0.2 * jitter)))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where one subscriber stands on one topic (provider side).

    `acked` is the last sequence acknowledged or dead-lettered (0 before the
    first); `attempts` the failed attempts of event ``acked + 1``;
    `next_attempt_ns` when it may be tried again (0: now).
    """

    topic: TopicId
    subscriber: SubsystemId
    acked: int = 0
    attempts: int = 0
    next_attempt_ns: int = 0
    last_error: str = ""
    dead_letters: int = 0

    def __post_init__(self) -> None:
        for name in ("acked", "attempts", "next_attempt_ns", "dead_letters"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidArgument(f"cursor {name} must be a non-negative integer")

    @property
    def next_sequence(self) -> int:
        return self.acked + 1

    def due(self, head: int, now_ns: int) -> bool:
        """Whether an event waits for this subscriber and its attempt is due."""
        return head > self.acked and now_ns >= self.next_attempt_ns

    def acknowledged(self, sequence: int) -> Cursor:
        """The cursor after `sequence` was acknowledged; only the next one moves it."""
        if sequence != self.next_sequence:
            raise InvalidArgument(
                f"acknowledgement of sequence {sequence} for {self.subscriber} on {self.topic},"
                f" expected {self.next_sequence}"
            )
        return replace(self, acked=sequence, attempts=0, next_attempt_ns=0, last_error="")

    def failed(
        self, policy: DeliveryPolicy, error: str, now_ns: int, jitter: float
    ) -> tuple[Cursor, bool]:
        """The cursor after a failed attempt, and whether the event was dead-lettered."""
        attempts = self.attempts + 1
        if attempts >= policy.max_attempts:
            return (
                replace(
                    self,
                    acked=self.next_sequence,
                    attempts=0,
                    next_attempt_ns=0,
                    last_error=error,
                    dead_letters=self.dead_letters + 1,
                ),
                True,
            )
        delay_ns = policy.delay_ms(attempts, jitter) * 1_000_000
        return (
            replace(self, attempts=attempts, next_attempt_ns=now_ns + delay_ns, last_error=error),
            False,
        )


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """The topics each subsystem of a consumer server takes (consumer side)."""

    pairs: frozenset[tuple[SubsystemId, TopicId]]

    def takes(self, subscriber: SubsystemId, topic: TopicId) -> bool:
        return (subscriber, topic) in self.pairs

    def topics_of(self, subscriber: SubsystemId) -> tuple[TopicId, ...]:
        return tuple(sorted(topic for client, topic in self.pairs if client == subscriber))
