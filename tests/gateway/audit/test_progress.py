"""A long pass reports its progress in steps that add up to what it went through."""

from __future__ import annotations

from spean.gateway.audit.progress import STEP, counted


def test_steps_add_up_to_the_items_once_the_pass_is_over() -> None:
    told: list[int] = []
    items = list(range(2 * STEP + 7))
    assert list(counted(items, told.append)) == items
    assert told == [STEP, STEP, 7]


def test_a_step_is_reported_only_once_its_items_were_handed_out() -> None:
    told: list[int] = []
    passing = counted(range(10), told.append, step=4)
    assert [next(passing) for _ in range(4)] == [0, 1, 2, 3]
    assert told == []  # the fourth item is out; its step is told when the pass moves on
    next(passing)
    assert told == [4]


def test_without_a_callback_the_items_pass_through() -> None:
    assert list(counted("abc", None)) == ["a", "b", "c"]
    assert list(counted([], lambda n: None)) == []
