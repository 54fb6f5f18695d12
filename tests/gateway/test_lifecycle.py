"""An exchange's life: the moves the state machine allows, and the ones it refuses."""

from __future__ import annotations

import pytest

from spean.gateway.errors import Internal
from spean.gateway.lifecycle import Stage, advance, allowed

S = Stage


def _walk(*stages: Stage) -> Stage:
    current = S.RECEIVED
    for stage in stages:
        current = advance(current, stage)
    return current


def test_an_answered_exchange_is_recorded_before_it_is_released() -> None:
    assert _walk(S.ADMITTED, S.FORWARDED, S.ANSWERED, S.RECORDED, S.RELEASED) is S.RELEASED


@pytest.mark.parametrize(
    "before", [(), (S.ADMITTED,), (S.ADMITTED, S.FORWARDED), (S.ADMITTED, S.FORWARDED, S.ANSWERED)]
)
def test_a_refusal_can_happen_at_any_stage_before_the_record(before: tuple[Stage, ...]) -> None:
    assert _walk(*before, S.REFUSED, S.RECORDED, S.RELEASED) is S.RELEASED


def test_the_first_refusal_stands_and_a_failed_record_still_releases_the_refusal() -> None:
    assert _walk(S.REFUSED, S.REFUSED, S.RELEASED) is S.RELEASED


def test_an_abandoned_attempt_ends_recorded() -> None:
    # A consumer's attempt at an unreachable server: refused, recorded, never released.
    assert _walk(S.ADMITTED, S.FORWARDED, S.REFUSED, S.RECORDED) is S.RECORDED
    assert allowed(S.RECORDED) == {S.RELEASED}


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.RECEIVED, S.FORWARDED),  # forwarded without the checks
        (S.RECEIVED, S.RECORDED),
        (S.ADMITTED, S.RELEASED),  # released without a record
        (S.FORWARDED, S.RELEASED),
        (S.ANSWERED, S.RELEASED),
        (S.RECORDED, S.REFUSED),  # a recorded answer cannot change
        (S.RELEASED, S.REFUSED),
        (S.RELEASED, S.RELEASED),
        (S.ANSWERED, S.ANSWERED),
    ],
)
def test_every_other_move_is_a_bug(current: Stage, to: Stage) -> None:
    with pytest.raises(Internal, match=f"from {current.value} to {to.value}"):
        advance(current, to)


def test_nothing_released_leaves_the_released_stage() -> None:
    assert allowed(S.RELEASED) == frozenset()
    unreleasable = {stage for stage in Stage if S.RELEASED in allowed(stage)}
    assert unreleasable == {S.RECORDED, S.REFUSED}
