"""Retention: the `pubsub.retention` settings and the periodic prune that applies them.

What each engine prunes is in test_store_contract.py; here, the settings and the
thread that prunes a real SQLite store at start and only where it leads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spean.gateway.config import parse_config
from spean.gateway.events import Cursor
from spean.gateway.eventstore.retention import Pruner, retention_of
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import Retention
from tests.gateway.eventstore.test_sqlite import NHIS, TOPIC, publish
from tests.gateway.test_config_pubsub import errors_of, with_pubsub


def test_retention_has_defaults_and_is_read_in_days() -> None:
    config = parse_config(with_pubsub(), Path("/etc/spean/server.yaml"))
    assert config.pubsub is not None
    assert retention_of(config.pubsub.retention) == Retention(
        events_s=7 * 86_400, inbox_s=7 * 86_400, dead_letters_s=30 * 86_400
    )
    assert config.pubsub.retention.interval_minutes == 60
    config = parse_config(
        with_pubsub(retention={"events_days": 0.5, "interval_minutes": 5}),
        Path("/etc/spean/server.yaml"),
    )
    assert config.pubsub is not None
    assert retention_of(config.pubsub.retention).events_s == 43_200


@pytest.mark.parametrize(
    ("retention", "field"),
    [
        ({"events_days": 0}, "events_days"),
        ({"inbox_days": -1}, "inbox_days"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"keep": 3}, "keep"),
    ],
)
def test_a_bad_retention_setting_is_named(retention: dict[str, object], field: str) -> None:
    assert f"pubsub.retention.{field}" in errors_of(with_pubsub(retention=retention))


class Follower(SqliteEventStore):
    """A store whose process does not lead (another process of a shared store does)."""

    def leads_delivery(self) -> bool:
        return False


def test_the_pruner_prunes_at_start_and_only_where_it_leads(tmp_path: Path) -> None:
    retention = Retention(events_s=1.0, inbox_s=1.0, dead_letters_s=1.0)
    with Follower(tmp_path / "events.db") as store:
        for n in (1, 2, 3):
            publish(store, n)  # published in 1970
        store.save_cursor(Cursor(TOPIC, NHIS, acked=3))
        assert Pruner(store, retention, 3600).prune_once() is None
        assert store.event(TOPIC, 1) is not None
    with SqliteEventStore(tmp_path / "events.db") as store:
        pruner = Pruner(store, retention, 3600)
        pruner.start()
        deadline = time.monotonic() + 30
        while store.event(TOPIC, 2) is not None:
            assert time.monotonic() < deadline, "the pruner did not prune at start"
            time.sleep(0.05)
        pruner.stop()
        assert store.event(TOPIC, 1) is None
        assert store.event(TOPIC, 3) is not None  # the newest stays
