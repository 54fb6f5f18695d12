"""Charts as server-rendered SVG: values in, markup out (pure).

No script is needed to see them, so they work on a phone over a slow link
and with scripts off. Every chart is an ``<svg role="img">`` with a
``<title>`` and a ``<desc>`` (what a screen reader says), each bar carries
its own ``<title>`` (the value on hover or long press), and the pages put
the same numbers in a table beside it. All text passes through
`html.escape`; colours keep a contrast of at least 3:1 against the white
background (WCAG 2.1, non-text contrast).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

OK_COLOUR = "#1d4ed8"  # blue 700
ERROR_COLOUR = "#b91c1c"  # red 700
WARN_COLOUR = "#b45309"  # amber 700
GOOD_COLOUR = "#15803d"  # green 700
AXIS_COLOUR = "#374151"


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" class="chart">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(body)}</svg>"
    )


def bar_chart(
    calls: Sequence[int],
    errors: Sequence[int],
    labels: Sequence[str],
    title: str,
    desc: str,
    *,
    width: int = 640,
    height: int = 220,
) -> str:
    """One bar per bucket: the calls that succeeded in blue, the errors stacked in red."""
    if not len(calls) == len(errors) == len(labels):
        raise ValueError("calls, errors and labels must be of one length")
    left, bottom, top = 48, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([*calls, 1])
    slot = plot_w / max(len(calls), 1)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"'
        f' stroke="{AXIS_COLOUR}"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="14">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="14">0</text>',
    ]
    for i, (count, failed, label) in enumerate(zip(calls, errors, labels, strict=True)):
        x = left + i * slot + slot * 0.1
        bar_w = slot * 0.8
        ok_h = plot_h * (count - failed) / peak
        err_h = plot_h * failed / peak
        y_ok = top + plot_h - ok_h
        body.append(f"<g><title>{escape(label)}: {count} / {failed}</title>")
        if ok_h:
            body.append(
                f'<rect x="{x:.1f}" y="{y_ok:.1f}" width="{bar_w:.1f}" height="{ok_h:.1f}"'
                f' fill="{OK_COLOUR}"/>'
            )
        if err_h:
            body.append(
                f'<rect x="{x:.1f}" y="{y_ok - err_h:.1f}" width="{bar_w:.1f}"'
                f' height="{err_h:.1f}" fill="{ERROR_COLOUR}"/>'
            )
        body.append("</g>")
    for i in sorted({0, len(labels) // 2, len(labels) - 1}):
        if 0 <= i < len(labels):
            x = left + i * slot + slot / 2
            body.append(
                f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" font-size="14">'
                f"{escape(labels[i])}</text>"
            )
    return _svg(width, height, title, desc, body)


@dataclass(frozen=True, slots=True)
class Expiry:
    """One certificate on the timeline: its label and when it expires."""

    label: str
    not_after: dt.datetime
    note: str  # e.g. "42 days left", already in the page's language


def expiry_colour(days_left: int) -> str:
    if days_left < 30:
        return ERROR_COLOUR
    return WARN_COLOUR if days_left < 90 else GOOD_COLOUR


def expiry_timeline(
    items: Sequence[Expiry],
    now: dt.datetime,
    title: str,
    desc: str,
    today: str,
    *,
    width: int = 640,
) -> str:
    """A bar per certificate from today to its expiry, on one scale."""
    row, left, top = 34, 120, 24
    height = top + row * len(items) + 8
    days = [max(0, (item.not_after - now).days) for item in items]
    horizon = max([*days, 90])
    scale = (width - left - 120) / horizon  # room for the note after the longest bar
    body = [
        f'<line x1="{left}" y1="{top - 8}" x2="{left}" y2="{height - 4}" stroke="{AXIS_COLOUR}"/>',
        f'<text x="{left}" y="{top - 12}" font-size="14">{escape(today)}</text>',
    ]
    for i, (item, left_days) in enumerate(zip(items, days, strict=True)):
        y = top + i * row
        bar = max(2.0, left_days * scale)
        body.append(
            f"<g><title>{escape(item.label)}: {escape(item.note)}"
            f" ({item.not_after.date().isoformat()})</title>"
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="13">'
            f"{escape(item.label)}</text>"
            f'<rect x="{left}" y="{y + 4}" width="{bar:.1f}" height="18"'
            f' fill="{expiry_colour(left_days)}"/>'
            f'<text x="{left + bar + 6:.1f}" y="{y + 17}" font-size="14">{escape(item.note)}'
            "</text></g>"
        )
    return _svg(width, height, title, desc, body)
