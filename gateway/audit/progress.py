"""Progress of the audit tools' long passes: items counted in steps, for a progress bar.

A pass over a log (export, verify, reconcile, replay, archive) reports how far
it got through a `Progress` callback, `progress(n)` with the items just done.
Calling it once per record would cost a redraw per record; `counted` calls it
once per `STEP` items and once for the rest, so a million records cost a few
hundred calls. What it guarantees: the numbers passed add up to the items
yielded, once the iteration is over; with no callback the items pass through
untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Progress = Callable[[int], None]
"""Called with a number of items just done."""

STEP = 1000
"""Items between two calls of a `Progress` callback."""

T = TypeVar("T")


def counted(items: Iterable[T], progress: Progress | None, step: int = STEP) -> Iterator[T]:
    """`items`, calling `progress(n)` after every `step` of them and once for the rest."""
    if progress is None:
        yield from items
        return
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == step:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)
