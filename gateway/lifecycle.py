"""An exchange's life, as a state machine (pure).

Every exchange, on either side, goes through these stages::

    RECEIVED -> ADMITTED -> FORWARDED -> ANSWERED -> RECORDED -> RELEASED
        \\           \\           \\           \\
         +-----------+-----------+-----------+--> REFUSED -> RECORDED -> RELEASED

- RECEIVED: the call arrived; nothing is decided.
- ADMITTED: every check passed (spean.gateway.admission); on the consumer the
  request token is signed.
- FORWARDED: handed on: the consumer called a provider server, the provider
  called its adapter. A consumer that fails over does not forward again: the
  attempt is REFUSED and recorded, and a successor exchange (new id, new
  token) starts ADMITTED.
- ANSWERED: the answer is complete and, on the consumer, its response token
  verified.
- REFUSED: a check, the provider or the adapter said no, the caller went
  away, or the answer could not be trusted. The first refusal is kept:
  refusing again changes nothing.
- RECORDED: the audit record is durable. Nothing leaves a server before.
- RELEASED: the answer's status and trailers are set and its last message
  handed to gRPC, which sends it as the handler returns. Also
  reached from REFUSED when the record itself could not be written: the
  caller then gets UNAVAILABLE and nothing else (fail closed).

`advance` is the whole rule: it returns the next stage or raises `Internal`
for a move the rule does not allow, which is a bug in the server.
"""

from __future__ import annotations

import enum

from spean.gateway.errors import Internal


class Stage(enum.Enum):
    RECEIVED = "received"
    ADMITTED = "admitted"
    FORWARDED = "forwarded"
    ANSWERED = "answered"
    REFUSED = "refused"
    RECORDED = "recorded"
    RELEASED = "released"


_NEXT: dict[Stage, frozenset[Stage]] = {
    Stage.RECEIVED: frozenset({Stage.ADMITTED, Stage.REFUSED}),
    Stage.ADMITTED: frozenset({Stage.FORWARDED, Stage.REFUSED}),
    Stage.FORWARDED: frozenset({Stage.ANSWERED, Stage.REFUSED}),
    Stage.ANSWERED: frozenset({Stage.RECORDED, Stage.REFUSED}),
    Stage.REFUSED: frozenset({Stage.REFUSED, Stage.RECORDED, Stage.RELEASED}),
    Stage.RECORDED: frozenset({Stage.RELEASED}),
    Stage.RELEASED: frozenset(),
}


def advance(current: Stage, to: Stage) -> Stage:
    """`to`, if an exchange at `current` may move there; otherwise `Internal`."""
    if to not in _NEXT[current]:
        raise Internal(f"an exchange cannot move from {current.value} to {to.value}")
    return to


def allowed(current: Stage) -> frozenset[Stage]:
    """The stages an exchange at `current` may move to."""
    return _NEXT[current]
