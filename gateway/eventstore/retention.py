"""The periodic prune of an event store (`pubsub.retention`, docs/pubsub.md "Retention").

One thread per server process that delivers (worker 0) calls the engine's
`prune` every `interval_minutes`, first at start; with a store shared by
several processes (PostgreSQL, NATS) only the holder of the delivery lease
prunes, so two processes never prune at once. A failed prune is logged and
tried again at the next interval: retention never refuses a call.
"""

from __future__ import annotations

import threading
import time

import structlog

from spean.gateway.config import EventRetentionConfig
from spean.gateway.errors import SpeanError
from spean.gateway.eventstore.store import EventStore, Pruned, Retention

log = structlog.get_logger("spean.pubsub")

_DAY_S = 86_400.0


def retention_of(config: EventRetentionConfig) -> Retention:
    """The engine's retention (seconds) of the configuration's (days)."""
    return Retention(
        events_s=config.events_days * _DAY_S,
        inbox_s=config.inbox_days * _DAY_S,
        dead_letters_s=config.dead_letters_days * _DAY_S,
    )


class Pruner:
    """Prunes `store` every `interval_s` seconds until `stop` (see the module docstring)."""

    def __init__(self, store: EventStore, retention: Retention, interval_s: float) -> None:
        self._store = store
        self._retention = retention
        self._interval = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spean-event-prune", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def prune_once(self) -> Pruned | None:
        """Prune now if this process leads; what went, or None when another process leads."""
        if not self._store.leads_delivery():
            return None
        pruned = self._store.prune(self._retention, time.time_ns())
        log.info(
            "eventstore.pruned",
            events=pruned.events,
            inbox=pruned.inbox,
            dead_letters=pruned.dead_letters,
            replay_memory=pruned.replay_memory,
        )
        return pruned

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.prune_once()
            except SpeanError as exc:
                log.warning("eventstore.prune_failed", status=exc.code.name, error=exc.message)
            except Exception:
                log.exception("eventstore.prune_failed")
            self._stopped.wait(self._interval)
