"""How much of the caller's deadline each hop may spend (pure).

DESIGN.md: the caller's deadline is propagated end to end. Each security
server passes on a little less than it was given, so that it can still
answer with its own status, exchange id and audit record before the caller
gives up, instead of the caller seeing a bare timeout.
"""

from __future__ import annotations

NO_DEADLINE = 10 * 365 * 86400.0


def hop_budget(remaining: float | None) -> float | None:
    """The share of the caller's remaining time the next hop may use.

    A little is kept back (up to 50 ms, at most a tenth) so that this server
    can still answer with its own status, exchange id and audit record before
    the caller's deadline, rather than the caller seeing a bare timeout.
    """
    if remaining is None or remaining > NO_DEADLINE:
        # grpc reports "no deadline" as an enormous remaining time.
        return None
    return max(remaining - min(0.05, remaining * 0.1), 0.0)
