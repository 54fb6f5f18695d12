"""Publishing at the applications' edge: gRPC Publish, the webhook and the outbox, side by side.

One MoI security server runs as a `spean server run` process with its
webhook listener on loopback (plain HTTP, an API key); the same E events (a
serialized CitizenAddressChanged) are published one after the other, each
answered once the event and its audit record are durable:

- `grpc`: Publisher/Publish on the consumer endpoint (the baseline);
- `webhook-protobuf`: POST /api/v1/events with the event bytes (one
  keep-alive HTTP connection, httpx);
- `webhook-json`: the same with the event's JSON mapping, which the server
  maps to the topic's type;
- `outbox`: E rows written to a SQLite outbox table, then published by the
  outbox relay (gRPC Publish, then one DELETE per row).

Reported per path: events/s, the per-event latency p50/p99 (the outbox: the
batch's time per row) and the ratio of its events/s to gRPC's. The rounds
alternate (grpc, protobuf, json, outbox, grpc, ...) so that a change of load
on the shared machine touches every path alike; the best round of each is
reported.

    .venv/bin/python -m bench.webhooks [--events 300] [--rounds 3]
        [--out bench/results/webhooks.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml
from google.protobuf import json_format
from sqlalchemy import create_engine

from bench import procs
from spean.adapters.outbox import GrpcPublisher, OutboxRelay, OutboxTable
from spean.demo.population.v1 import events_pb2
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import ADDRESS_CHANGED, MOI, POPULATION
from spean.gateway.demo.ministries import demo_plans as _demo_plans
from spean.gateway.metadata import CLIENT
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role
from spean.v1 import pubsub_pb2 as pb

EVENT = events_pb2.CitizenAddressChanged(
    id_card_number="010203040",
    new_address="12 Street 310, Boeung Keng Kang",
    province="Phnom Penh",
    effective_date="2026-12-03",
)
PAYLOAD = EVENT.SerializeToString()
JSON = json.dumps(json_format.MessageToDict(EVENT)).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _federation(root: Path, webhook_port: int) -> tuple[Path, str, str]:
    plans = []
    for plan in _demo_plans(events=True):
        if plan.member == MOI:
            topics = [dataclasses.replace(t, grants=[]) for t in plan.topics]
            plans.append(dataclasses.replace(plan, topics=topics))
    federation = build_federation(root, plans)
    config = federation.configs[MOI]
    key, entry = ApiKeyStore(config.parent / "state" / "webhook-keys.json").create(
        "bench", Role.SERVICE_ADMINISTRATOR
    )
    document = yaml.safe_load(config.read_text())
    document["pubsub"]["webhook"] = {
        "listen": f"127.0.0.1:{webhook_port}",
        "keys": [{"id": entry.id, "client": POPULATION}],
    }
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config, federation.consumer_addresses[MOI], key


def _grpc(address: str, events: int) -> list[float]:
    with grpc.insecure_channel(address) as channel:
        publish = channel.unary_unary(
            "/spean.v1.Publisher/Publish",
            request_serializer=pb.PublishRequest.SerializeToString,
            response_deserializer=pb.PublishResponse.FromString,
        )
        times = []
        for _ in range(events):
            started = time.perf_counter()
            publish(
                pb.PublishRequest(topic=ADDRESS_CHANGED, payload=PAYLOAD),
                metadata=((CLIENT, POPULATION),),
                timeout=30,
            )
            times.append(time.perf_counter() - started)
        return times


def _webhook(url: str, key: str, events: int, as_json: bool) -> list[float]:
    media, body = ("application/json", JSON) if as_json else ("application/x-protobuf", PAYLOAD)
    headers = {
        "Authorization": f"Bearer {key}",
        "Spean-Client": POPULATION,
        "Spean-Topic": ADDRESS_CHANGED,
        "Content-Type": media,
    }
    times = []
    # As curl does: TCP_NODELAY, or each request waits for the server's delayed ACK.
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        for _ in range(events):
            started = time.perf_counter()
            answer = http.post("/events", content=body, headers=headers)
            times.append(time.perf_counter() - started)
            if answer.status_code != 201:
                raise procs.BenchError(f"webhook answered {answer.status_code}: {answer.text}")
        return times


def _outbox(folder: Path, address: str, events: int) -> list[float]:
    database = folder / f"outbox-{uuid.uuid4().hex[:8]}.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT, event_id TEXT, payload BLOB)"
        )
        conn.executemany(
            "INSERT INTO outbox (topic, event_id, payload) VALUES (?, ?, ?)",
            [(ADDRESS_CHANGED, str(uuid.uuid4()), PAYLOAD) for _ in range(events)],
        )
    engine = create_engine(f"sqlite:///{database}")
    relay = OutboxRelay(
        engine, OutboxTable("outbox"), GrpcPublisher(address, POPULATION), batch=events
    )
    try:
        started = time.perf_counter()
        done = relay.run_once()
        elapsed = time.perf_counter() - started
    finally:
        relay.close()
        engine.dispose()
    if len(done) != events:
        raise procs.BenchError(f"the outbox published {len(done)} of {events} rows")
    return [elapsed / events] * events


def _summary(name: str, times: list[float]) -> dict[str, Any]:
    return {
        "path": name,
        "events": len(times),
        "events_per_s": round(len(times) / sum(times), 1),
        "p50_ms": round(percentile(times, 0.5) * 1000, 2),
        "p99_ms": round(percentile(times, 0.99) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/webhooks.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spean-bench-webhooks-") as tmp:
        root = Path(tmp)
        port = procs.free_port()
        config, address, key = _federation(root / "federation", port)
        child = procs.start(
            "moi",
            procs.python_argv("spean.gateway.cli", "server", "run", "--config", str(config)),
            root / "moi.log",
        )
        try:
            procs.wait_for_port(int(address.rsplit(":", 1)[1]), 60, child)
            procs.wait_for_port(port, 60, child)
            url = f"http://127.0.0.1:{port}/api/v1"
            paths = {
                "grpc": lambda n: _grpc(address, n),
                "webhook-protobuf": lambda n: _webhook(url, key, n, as_json=False),
                "webhook-json": lambda n: _webhook(url, key, n, as_json=True),
                "outbox": lambda n: _outbox(root, address, n),
            }
            for run in paths.values():
                run(20)  # warm-up: connections, caches, the first pages of the stores
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):
                for name, run in paths.items():
                    summary = _summary(name, run(args.events))
                    if name not in best or summary["events_per_s"] > best[name]["events_per_s"]:
                        best[name] = summary
        finally:
            child.stop()
    baseline = best["grpc"]["events_per_s"]
    rows = [
        {**row, "ratio_to_grpc": round(row["events_per_s"] / baseline, 3)} for row in best.values()
    ]
    print("| path | events | events/s | p50 / p99 ms | / gRPC Publish |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['path']} | {row['events']} | {row['events_per_s']} |"
            f" {row['p50_ms']} / {row['p99_ms']} | {row['ratio_to_grpc']} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.platform(),
                "python": sys.version.split()[0],
                "events": args.events,
                "rounds": args.rounds,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
