"""Which provider security server a consumer tries first: recent failures, remembered briefly.

Theory of operation. The global configuration lists a provider subsystem's
servers in failover order, and the consumer tries them in turn until one
answers (docs/protocol.md, section 3.4). Without memory, every call would
try a dead server first and pay for the failed attempt. `ProviderBackoff`
remembers, per server, the connection failures of the last moments:

- a server that could not be reached is *backed off*: for `initial` seconds
  after its first failure, doubling with each further failure up to
  `maximum`, calls try the other servers first;
- a backed-off server is moved to the end of the order, never removed: when
  every other server fails too, it is still tried, so the back-off alone
  never fails a call;
- when its time is up, exactly one call (the probe) tries it in its listed
  place again; concurrent calls keep skipping it until the probe ends. A
  probe that reaches it clears its memory; one that fails doubles the next
  back-off;
- failures of attempts that started before the server was backed off (calls
  in flight when it died) do not lengthen the back-off.

Pure apart from the injected clock; safe to share between threads. `order`
returns a permutation of its input, keeping the listed order within the
servers that are not backed off and within those that are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spean.gateway.globalconf import ServerInfo
from spean.gateway.identifiers import ServerId

INITIAL_BACKOFF_SECONDS = 1.0
MAXIMUM_BACKOFF_SECONDS = 30.0

# A server is remembered by identity and address: a server that moved is a new one.
_Key = tuple[ServerId, str]


@dataclass(slots=True)
class _Failing:
    failures: int
    retry_at: float
    probing: bool = False


class ProviderBackoff:
    """Per provider server: consecutive connection failures and when to try it first again."""

    def __init__(
        self,
        *,
        initial: float = INITIAL_BACKOFF_SECONDS,
        maximum: float = MAXIMUM_BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"back-off needs 0 < initial <= maximum, got {initial}, {maximum}")
        self._initial = initial
        self._maximum = maximum
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: dict[_Key, _Failing] = {}

    def interval(self, failures: int) -> float:
        """The back-off after `failures` consecutive failures (at least one)."""
        exponent = min(max(failures, 1) - 1, 62)
        return min(self._maximum, self._initial * float(2**exponent))

    def order(self, servers: Sequence[ServerInfo]) -> list[ServerInfo]:
        """`servers` with the backed-off ones moved to the end; may claim one probe."""
        if not self._failing:  # the common case, read without the lock
            return list(servers)
        now = self._clock()
        ready: list[ServerInfo] = []
        later: list[ServerInfo] = []
        with self._lock:
            for server in servers:
                state = self._failing.get(_key(server))
                if state is None:
                    ready.append(server)
                elif state.retry_at <= now:
                    # This call is the probe; others skip the server until it ends.
                    state.probing = True
                    state.retry_at = now + self.interval(state.failures + 1)
                    ready.append(server)
                else:
                    later.append(server)
        return ready + later

    def failed(self, server: ServerInfo) -> float:
        """Record that `server` could not be reached; returns its back-off in seconds."""
        now = self._clock()
        with self._lock:
            state = self._failing.get(_key(server))
            if state is None:
                state = self._failing[_key(server)] = _Failing(failures=0, retry_at=now)
            elif not state.probing and now < state.retry_at:
                # An attempt that began before the back-off: nothing new is known.
                return state.retry_at - now
            state.failures += 1
            state.probing = False
            backoff = self.interval(state.failures)
            state.retry_at = now + backoff
            return backoff

    def reached(self, server: ServerInfo) -> None:
        """Record that `server` answered (any answer): forget its failures."""
        if not self._failing:
            return
        with self._lock:
            self._failing.pop(_key(server), None)

    def backed_off(self) -> dict[ServerId, float]:
        """The servers tried last right now and the seconds until each is probed."""
        now = self._clock()
        with self._lock:
            return {
                server_id: state.retry_at - now
                for (server_id, _), state in self._failing.items()
                if state.retry_at > now
            }


def _key(server: ServerInfo) -> _Key:
    return (server.id, server.address)


__all__ = [
    "INITIAL_BACKOFF_SECONDS",
    "MAXIMUM_BACKOFF_SECONDS",
    "ProviderBackoff",
]
