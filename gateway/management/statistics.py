"""Traffic statistics over time windows: windows, buckets and series (pure).

A window is one of a fixed set (`WINDOWS`: the last hour to the last 30
days), each with the bucket size its chart uses, so a query is bounded
whatever the caller asks for and a chart has at most 30 bars. Bounds are
aligned to the bucket so that two queries in one bucket agree. `series`
turns the counted rows (bucket, service, client, status, calls) into one
zero-filled series per service, the shape the API answers and the console's
SVG chart draws; `totals` sums them per service, client and status, with the
error rate (every status but OK counts as an error).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spean.gateway.errors import InvalidArgument

_NS = 1_000_000_000
_MINUTE = 60 * _NS
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

# name -> (length, bucket)
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (_HOUR, 5 * _MINUTE),
    "6h": (6 * _HOUR, 15 * _MINUTE),
    "24h": (_DAY, _HOUR),
    "7d": (7 * _DAY, 6 * _HOUR),
    "30d": (30 * _DAY, _DAY),
}


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    since_ns: int
    until_ns: int
    bucket_ns: int

    @property
    def buckets(self) -> int:
        return (self.until_ns - self.since_ns) // self.bucket_ns

    def bucket_of(self, at_ns: int) -> int:
        return self.since_ns + (at_ns - self.since_ns) // self.bucket_ns * self.bucket_ns


def window(name: str, now_ns: int) -> Window:
    """The window `name` ending with the bucket that holds `now_ns`."""
    if name not in WINDOWS:
        raise InvalidArgument(f"window {name!r} is not one of {', '.join(WINDOWS)}")
    length, bucket = WINDOWS[name]
    until = (now_ns // bucket + 1) * bucket
    return Window(name=name, since_ns=until - length, until_ns=until, bucket_ns=bucket)


@dataclass(frozen=True, slots=True)
class Count:
    """Calls counted in one bucket for one service, client and status."""

    bucket_ns: int
    service: str
    client: str
    status: str
    calls: int


@dataclass(frozen=True, slots=True)
class Series:
    """One service's calls and errors per bucket, oldest first."""

    service: str
    calls: tuple[int, ...]
    errors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Total:
    service: str
    client: str
    calls: int
    errors: int
    by_status: tuple[tuple[str, int], ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def series(counts: Iterable[Count], win: Window) -> list[Series]:
    calls: dict[str, list[int]] = {}
    errors: dict[str, list[int]] = {}
    for count in counts:
        slot = (count.bucket_ns - win.since_ns) // win.bucket_ns
        if not 0 <= slot < win.buckets:
            continue
        calls.setdefault(count.service, [0] * win.buckets)[slot] += count.calls
        errors.setdefault(count.service, [0] * win.buckets)
        if count.status != "OK":
            errors[count.service][slot] += count.calls
    return [
        Series(service=name, calls=tuple(calls[name]), errors=tuple(errors[name]))
        for name in sorted(calls)
    ]


def totals(counts: Iterable[Count]) -> list[Total]:
    found: dict[tuple[str, str], dict[str, int]] = {}
    for count in counts:
        statuses = found.setdefault((count.service, count.client), {})
        statuses[count.status] = statuses.get(count.status, 0) + count.calls
    out = []
    for (service, client), statuses in sorted(found.items()):
        calls = sum(statuses.values())
        out.append(
            Total(
                service=service,
                client=client,
                calls=calls,
                errors=calls - statuses.get("OK", 0),
                by_status=tuple(sorted(statuses.items())),
            )
        )
    return out
