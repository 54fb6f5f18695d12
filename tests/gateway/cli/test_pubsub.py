"""`spean pubsub status`: MoI's operator sees where each subscriber stands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from spean.gateway.cli import main
from spean.gateway.demo.ministries import MOH, MOI, NHIS
from spean.gateway.events import Cursor, TopicId, event_digest
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import Delivery
from spean.gateway.identifiers import MemberId, SubsystemId
from tests.support.events import TOPIC, event_federation


def test_status_shows_each_subscriber_behind_and_its_last_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = event_federation(tmp_path / "federation")
    topic = TopicId.parse(TOPIC)
    nhis = SubsystemId.parse(NHIS)
    with SqliteEventStore(federation.configs[MOI].parent / "state" / "events.db") as store:
        for n in (1, 2, 3):
            body = f"event {n}".encode()
            event_id = f"00000000-0000-4000-8000-{n:012d}"
            store.append(topic, event_id, body, event_digest(body), n, [nhis])
        store.save_cursor(Cursor(topic, nhis, acked=1, attempts=2, last_error="UNAVAILABLE: down"))
    capsys.readouterr()  # the build's own log lines
    assert main(["pubsub", "status", "--config", str(federation.configs[MOI]), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["deliveries"] == [
        {
            "topic": TOPIC,
            "subscriber": NHIS,
            "head": 3,
            "acked": 1,
            "attempts": 2,
            "next_attempt": "now",
            "last_error": "UNAVAILABLE: down",
            "dead_letters": 0,
        }
    ]
    assert main(["pubsub", "status", "--config", str(federation.configs[MOI])]) == 0
    assert "acked 1 of 3 (2 behind), attempts 2" in capsys.readouterr().out
    assert main(["pubsub", "status", "--config", str(federation.configs[MOH])]) == 0
    assert f"{NHIS} <- {TOPIC}: acknowledged up to 0" in capsys.readouterr().out


def test_status_counts_what_waits_in_a_subscribers_inbox_and_how_it_is_delivered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = event_federation(tmp_path / "federation")
    topic = TopicId.parse(TOPIC)
    nhis = SubsystemId.parse(NHIS)
    config = federation.configs[MOH]
    with SqliteEventStore(config.parent / "state" / "events.db") as store:
        for n in (1, 2, 3):
            body = f"event {n}".encode()
            store.receive(
                Delivery(
                    subscriber=nhis,
                    topic=topic,
                    sequence=n,
                    event_id=f"00000000-0000-4000-8000-{n:012d}",
                    payload=body,
                    event_sha256=event_digest(body),
                    published_at_ms=n,
                    issuer=MemberId.parse(MOI),
                    attempt_id=f"00000000-0000-4000-9000-{n:012d}",
                    token_expires_at=2**31,
                )
            )
        store.ack(nhis, topic, 1)
    capsys.readouterr()
    assert main(["pubsub", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{NHIS} <- {TOPIC}: acknowledged up to 1, 2 waiting, delivered by Subscribe" in out
    document = yaml.safe_load(config.read_text())
    secret = config.parent / "push.secret"
    secret.write_text("s" * 32)
    document["pubsub"]["push"] = [
        {
            "client": NHIS,
            "topic": TOPIC,
            "url": "http://127.0.0.1:9/events",
            "secret_file": str(secret),
        }
    ]
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["pubsub", "status", "--config", str(config), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["subscriptions"]
    assert row["waiting"] == 2
    assert row["delivered_by"] == "push to http://127.0.0.1:9/events"
