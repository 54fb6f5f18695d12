"""Durations as operators type them on the command line: ``90s``, ``30m``, ``24h``, ``7d``.

One parser for every command that takes a duration (publication validity,
`spean call --wait`), so that they all accept the same spellings and refuse
the same mistakes with the same words.
"""

from __future__ import annotations

import re
from datetime import timedelta

from spean.gateway.errors import InvalidArgument

__all__ = ["parse_duration"]

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1d12h`` or plain seconds."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise InvalidArgument(f"duration {text!r} must look like 90s, 30m, 24h, 7d or 1d12h")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
