"""Topics, who receives them, and a subscriber's cursor through deliveries and failures."""

from __future__ import annotations

import pytest

from spean.gateway.access import AccessRule
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.events import (
    Cursor,
    DeliveryPolicy,
    Subscriptions,
    TopicAccess,
    TopicId,
    event_digest,
    parse_event_type,
    parse_topic_name,
)
from spean.gateway.identifiers import SubsystemId

POPULATION = SubsystemId.parse("KH/GOV/MOI/population")
NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")
VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
ADDRESS = TopicId(POPULATION, "citizen-address-changed")
DEATHS = TopicId(POPULATION, "citizen-deceased")


def test_a_topic_is_written_subsystem_colon_name() -> None:
    text = "KH/GOV/MOI/population:citizen-address-changed"
    assert TopicId.parse(text) == ADDRESS
    assert str(ADDRESS) == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("KH/GOV/MOI/population", "SUBSYSTEM:NAME"),
        ("KH/GOV/MOI/population:", "topic name"),
        ("KH/GOV/MOI/population:Address", "topic name"),
        ("KH/GOV/MOI/population:" + "a" * 65, "1 to 64"),
        ("KH/GOV/MOI:address", "subsystem"),
    ],
)
def test_a_malformed_topic_is_refused_naming_the_grammar(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        TopicId.parse(text)


def test_names_and_event_types() -> None:
    assert parse_topic_name("a.b_c-1") == "a.b_c-1"
    assert parse_event_type("population.v1.CitizenAddressChanged")
    with pytest.raises(InvalidArgument, match="fully qualified"):
        parse_event_type("CitizenAddressChanged")
    assert event_digest(b"") == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_access_is_denied_by_default_and_granted_per_topic_or_star() -> None:
    access = TopicAccess(
        [
            AccessRule(client=NHIS, service=POPULATION, methods=frozenset({ADDRESS.name})),
            AccessRule(client=VEHICLES, service=POPULATION, methods=frozenset({"*"})),
        ]
    )
    assert access.allows(NHIS, ADDRESS)
    assert not access.allows(NHIS, DEATHS)
    assert access.allows(VEHICLES, DEATHS)
    assert access.subscribers(ADDRESS) == (NHIS, VEHICLES)
    assert access.subscribers(DEATHS) == (VEHICLES,)
    assert TopicAccess([]).subscribers(ADDRESS) == ()


def test_backoff_doubles_to_its_cap_less_the_jitter() -> None:
    policy = DeliveryPolicy(initial_backoff_ms=100, max_backoff_ms=1000, max_attempts=10)
    assert [policy.delay_ms(n, 0.0) for n in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]
    assert policy.delay_ms(1, 0.5) == 90
    assert policy.delay_ms(10_000, 0.0) == 1000
    with pytest.raises(InvalidArgument):
        policy.delay_ms(0, 0.0)
    with pytest.raises(InvalidArgument):
        policy.delay_ms(1, 1.0)


def test_a_policy_whose_limits_contradict_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at most max_backoff_ms"):
        DeliveryPolicy(initial_backoff_ms=2000, max_backoff_ms=1000)
    with pytest.raises(ConfigError, match="max_attempts"):
        DeliveryPolicy(max_attempts=0)


def test_the_cursor_moves_one_acknowledged_event_at_a_time() -> None:
    cursor = Cursor(ADDRESS, NHIS)
    assert cursor.due(head=1, now_ns=0)
    assert not cursor.due(head=0, now_ns=0)
    cursor = cursor.acknowledged(1)
    assert (cursor.acked, cursor.next_sequence) == (1, 2)
    with pytest.raises(InvalidArgument, match="expected 2"):
        cursor.acknowledged(3)


def test_failures_back_off_then_dead_letter_and_move_past_the_event() -> None:
    policy = DeliveryPolicy(initial_backoff_ms=100, max_backoff_ms=1000, max_attempts=3)
    cursor = Cursor(ADDRESS, NHIS, acked=4)
    cursor, dead = cursor.failed(policy, "UNAVAILABLE: MoH down", now_ns=1_000, jitter=0.0)
    assert not dead
    assert (cursor.attempts, cursor.next_attempt_ns) == (1, 1_000 + 100_000_000)
    assert not cursor.due(head=5, now_ns=1_000)
    assert cursor.due(head=5, now_ns=1_000 + 100_000_000)
    cursor, dead = cursor.failed(policy, "UNAVAILABLE", now_ns=2_000, jitter=0.0)
    assert (dead, cursor.attempts, cursor.next_attempt_ns) == (False, 2, 2_000 + 200_000_000)
    cursor, dead = cursor.failed(policy, "PERMISSION_DENIED: not subscribed", now_ns=3, jitter=0)
    assert dead
    assert (cursor.acked, cursor.attempts, cursor.dead_letters) == (5, 0, 1)
    assert cursor.last_error == "PERMISSION_DENIED: not subscribed"
    assert cursor.acknowledged(6).last_error == ""


def test_subscriptions_say_which_subsystem_takes_which_topic() -> None:
    subscriptions = Subscriptions(frozenset({(NHIS, ADDRESS)}))
    assert subscriptions.takes(NHIS, ADDRESS)
    assert not subscriptions.takes(NHIS, DEATHS)
    assert not subscriptions.takes(VEHICLES, ADDRESS)
    assert subscriptions.topics_of(NHIS) == (ADDRESS,)


def test_a_consumer_away_for_an_hour_is_still_waited_for_and_retried_within_a_minute() -> None:
    """The default retry limits (docs/pubsub.md): an hour of failed attempts, each made
    when it falls due, never dead-letters the event, and once the consumer is back the
    next attempt is at most `max_backoff_ms` away."""
    policy = DeliveryPolicy()
    topic = TopicId.parse("KH/GOV/MOI/population:citizen-address-changed")
    cursor = Cursor(topic, SubsystemId.parse("KH/GOV/MOH/nhis"))
    now = 0
    hour = 3600 * 1_000_000_000
    while now < hour:
        cursor, dead = cursor.failed(policy, "UNAVAILABLE: down", now, jitter=0.0)
        assert not dead, f"dead-lettered after {now / 1e9:.0f} s"
        now = cursor.next_attempt_ns  # the delivery loop tries again when it is due
    assert cursor.acked == 0
    assert cursor.next_attempt_ns - hour <= policy.max_backoff_ms * 1_000_000
    assert cursor.acknowledged(1).acked == 1  # back: the first success moves on
