"""Which engine a pubsub.store setting names: SQLite now, the others refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from spean.gateway.errors import ConfigError
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.eventstore.sqlite import SqliteEventStore


def test_a_relative_path_or_sqlite_url_opens_sqlite_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    with open_event_store("state/events.db", tmp_path) as store:
        assert isinstance(store, SqliteEventStore)
    assert (tmp_path / "state" / "events.db").exists()
    with open_event_store(f"sqlite:///{tmp_path / 'other.db'}", tmp_path) as store:
        assert isinstance(store, SqliteEventStore)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("nats://127.0.0.1:4222", "scheme 'nats': that engine is not part of this version"),
        ("redis://127.0.0.1", "scheme 'redis' is not supported"),
        (":memory:", "does not name a file"),
    ],
)
def test_other_locations_are_refused_saying_what_to_use(
    tmp_path: Path, location: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        open_event_store(location, tmp_path)
    assert "spean@" not in caught.value.message
