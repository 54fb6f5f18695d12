"""What offline verification reports: the checks, one problem, the report of a bundle.

A `Report` lists every problem found, each a `Problem` naming the record
index (log numbering; None where no record applies), the `Check` it comes
from and what is wrong in words an auditor can act on; `first` is the
problem at the lowest index. `problem_order` is the one order problems are
listed in: by index, and at one index in the order the checks ran
(`spean.gateway.audit.verify`). `to_dict` is the `--json` document
(docs/auditor.md, "Verifying").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Check(StrEnum):
    """Which check a problem comes from."""

    GLOBALCONF = "globalconf"
    CHECKPOINT = "checkpoint"
    CHAIN = "chain"
    TREE = "tree"
    TRUNCATED = "truncated"
    UNCOVERED = "uncovered"
    RECORD = "record"
    TOKEN = "token"  # noqa: S105 (a check name, not a secret)
    WITNESS = "witness"
    BODIES = "bodies"
    SEQUENCE = "sequence"  # archive segments and a live export that do not chain
    MANIFEST = "manifest"  # a number of manifest.json the bundle's content contradicts


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold; `index` is a record index, None if none applies."""

    index: int | None
    check: Check
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "check": self.check.value, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Report:
    """What `verify_bundle` established."""

    origin: str
    start: int
    records: int
    checkpoints: int
    tokens_verified: int
    anchor: str
    problems: tuple[Problem, ...] = field(default=())
    bodies: int = 0
    bodies_verified: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        indexed = [p for p in self.problems if p.index is not None]
        if indexed:
            return min(indexed, key=lambda p: p.index or 0)
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, object]:
        first = self.first
        return {
            "ok": self.ok,
            "origin": self.origin,
            "start": self.start,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "tokens_verified": self.tokens_verified,
            "bodies": self.bodies,
            "bodies_verified": self.bodies_verified,
            "anchor": self.anchor,
            "first_problem": None if first is None else first.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }


class Problems:
    """Problems as the checks find them, in that order."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, index: int | None, check: Check, reason: str) -> None:
        self.items.append(Problem(index, check, reason))


def problem_order(problem: Problem) -> tuple[int, int]:
    """By record index, those without one first (a stable sort keeps the checks' order)."""
    return (-1 if problem.index is None else problem.index, 0)
