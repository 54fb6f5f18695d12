"""Which engine a pubsub.store setting names, and what is refused saying what to use."""

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
        ("redis://127.0.0.1", "scheme 'redis' is not supported"),
        ("nats://127.0.0.1:4222?prefix=a.b", "prefix 'a.b' must be 1 to 32 letters"),
        ("nats://127.0.0.1:4222?stream=x", "unknown parameter"),
        ("nats://127.0.0.1:4222?replicas=9", "replicas '9' must be 1 to 5"),
        ("nats:///nohost", "is not a NATS URL"),
        ("nats://127.0.0.1:99999", "has no valid port"),
        (":memory:", "does not name a file"),
    ],
)
def test_other_locations_are_refused_saying_what_to_use(
    tmp_path: Path, location: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        open_event_store(location, tmp_path)
    assert "spean@" not in caught.value.message


def test_a_nats_store_without_nats_py_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nats", None)  # as if nats-py were not installed
    monkeypatch.delitem(sys.modules, "spean.gateway.eventstore.nats", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'spean\[nats\]'"):
        open_event_store("nats://127.0.0.1:4222?prefix=x", tmp_path)
