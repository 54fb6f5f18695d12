"""What `spean doctor` reports: findings, each with its level and the fix.

A finding is ``ok``, ``warn`` (works now, will not for long, or degrades) or
``fail`` (the server cannot work, or part of it cannot); every warning and
failure carries a fix an operator can act on. Kept apart from the checks so
that each family of checks (`doctor`, `doctor_adapters`) builds the same
values and `render` prints them one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: which area, how bad, what was seen, and what to do about it."""

    check: str
    level: Level
    message: str
    fix: str = ""


def failed(findings: Sequence[Finding]) -> bool:
    return any(f.level == "fail" for f in findings)


def render(findings: Sequence[Finding]) -> str:
    """Findings as aligned text lines; each problem followed by its fix."""
    lines = []
    for f in findings:
        lines.append(f"{f.level.upper():<4}  {f.check:<12} {f.message}")
        if f.fix and f.level != "ok":
            lines.append(f"{'':<4}  {'':<12} fix: {f.fix}")
    problems = sum(f.level == "fail" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    lines.append(f"{problems} problem(s), {warnings} warning(s)")
    return "\n".join(lines)
