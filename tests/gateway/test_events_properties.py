"""The delivery cursor under any history of acknowledgements and failures.

Whatever happens, the cursor only moves forward and one event at a time, an
event is given up only after exactly `max_attempts` failures, and a due
attempt is never scheduled further out than the backoff cap.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.events import Cursor, DeliveryPolicy, TopicId
from spean.gateway.identifiers import SubsystemId

TOPIC = TopicId.parse("KH/GOV/MOI/population:citizen-address-changed")
NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")

steps = st.lists(
    st.one_of(
        st.just(("ack", 0.0)),
        st.tuples(st.just("fail"), st.floats(min_value=0.0, max_value=0.999)),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    history=steps,
    initial=st.integers(min_value=1, max_value=1000),
    extra=st.integers(min_value=0, max_value=100_000),
    max_attempts=st.integers(min_value=1, max_value=20),
)
def test_any_history_moves_forward_one_event_at_a_time(
    history: list[tuple[str, float]], initial: int, extra: int, max_attempts: int
) -> None:
    policy = DeliveryPolicy(
        initial_backoff_ms=initial, max_backoff_ms=initial + extra, max_attempts=max_attempts
    )
    cursor = Cursor(TOPIC, NHIS)
    now = 0
    failures_of_current = 0
    given_up = 0
    for step, jitter in history:
        now += 1_000_000
        before = cursor
        if step == "ack":
            cursor = cursor.acknowledged(cursor.next_sequence)
            assert cursor.acked == before.acked + 1
            failures_of_current = 0
            continue
        cursor, dead = cursor.failed(policy, "UNAVAILABLE", now, jitter)
        failures_of_current += 1
        if dead:
            given_up += 1
            assert failures_of_current == max_attempts
            assert cursor.acked == before.acked + 1
            assert (cursor.attempts, cursor.next_attempt_ns) == (0, 0)
            failures_of_current = 0
        else:
            assert cursor.acked == before.acked
            assert cursor.attempts == failures_of_current < max_attempts
            assert now < cursor.next_attempt_ns <= now + policy.max_backoff_ms * 1_000_000
        assert cursor.dead_letters == given_up
