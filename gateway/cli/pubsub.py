"""`spean pubsub ...`: the delivery status of a security server's topics.

`spean pubsub status --config server.yaml` reads the server's event store
(docs/pubsub.md, "Delivery status"): for each (topic, subscriber) on the
provider side, the topic's head, the last acknowledged sequence, the attempts
of the event in flight, when the next one is due, the last error and the
dead letters; for each subscription on the consumer side, the position its
applications acknowledged. It only reads, so it may run beside the server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from spean.gateway.errors import ConfigError
from spean.gateway.events import TopicId
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.files.config import load_config
from spean.gateway.identifiers import SubsystemId

WAITING_SHOWN = 1000
"""Events waiting in an inbox are counted up to this many (a bounded read)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("pubsub", help="publish/subscribe: delivery status")
    commands = parser.add_subparsers(dest="pubsub_command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="delivery status per topic and subscriber")
    status.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=cmd_status)


def _when(ns: int) -> str:
    if ns == 0:
        return "now"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def status_rows(config_path: Path) -> dict[str, list[dict[str, object]]]:
    """What `spean pubsub status` prints, as plain values."""
    config = load_config(config_path)
    if config.pubsub is None:
        raise ConfigError(f"{config_path}: has no pubsub section")
    with open_event_store(config.pubsub.store, config.base_dir) as store:
        deliveries: list[dict[str, object]] = []
        for cursor in store.cursors():
            deliveries.append(
                {
                    "topic": str(cursor.topic),
                    "subscriber": str(cursor.subscriber),
                    "head": store.head(cursor.topic),
                    "acked": cursor.acked,
                    "attempts": cursor.attempts,
                    "next_attempt": _when(cursor.next_attempt_ns),
                    "last_error": cursor.last_error,
                    "dead_letters": cursor.dead_letters,
                }
            )
        pushed = {(p.client, p.topic): p.url for p in config.pubsub.push}
        subscriptions = []
        for entry in config.pubsub.subscriptions:
            client, topic = SubsystemId.parse(entry.client), TopicId.parse(entry.topic)
            acked = store.acked_position(client, topic)
            waiting = len(store.read_inbox(client, topic, acked, WAITING_SHOWN + 1))
            subscriptions.append(
                {
                    "client": entry.client,
                    "topic": entry.topic,
                    "acked_position": acked,
                    "waiting": waiting,
                    "delivered_by": f"push to {pushed[(entry.client, entry.topic)]}"
                    if (entry.client, entry.topic) in pushed
                    else "Subscribe",
                }
            )
    return {"deliveries": deliveries, "subscriptions": subscriptions}


def cmd_status(args: argparse.Namespace) -> int:
    rows = status_rows(args.config)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("deliveries (provider side):")
    if not rows["deliveries"]:
        print("  none")
    for row in rows["deliveries"]:
        behind = int(str(row["head"])) - int(str(row["acked"]))
        print(
            f"  {row['topic']} -> {row['subscriber']}: acked {row['acked']} of {row['head']}"
            f" ({behind} behind), attempts {row['attempts']}, next {row['next_attempt']},"
            f" dead letters {row['dead_letters']}"
            + (f", last error: {row['last_error']}" if row["last_error"] else "")
        )
    print("subscriptions (consumer side):")
    if not rows["subscriptions"]:
        print("  none")
    for row in rows["subscriptions"]:
        waiting = int(str(row["waiting"]))
        shown = f"more than {WAITING_SHOWN}" if waiting > WAITING_SHOWN else str(waiting)
        print(
            f"  {row['client']} <- {row['topic']}: acknowledged up to {row['acked_position']},"
            f" {shown} waiting, delivered by {row['delivered_by']}"
        )
    return 0
