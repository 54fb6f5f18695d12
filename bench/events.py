"""Events end to end: Spean publish/subscribe against NATS JetStream, side by side.

For each number of subscribers S (default 1, 10, 100), the same E events
(a serialized CitizenAddressChanged, ~90 bytes) go

- through Spean: MoI's population register publishes them one after the other
  through MoI's security server (each Publish answered once the event and its
  audit record are durable); MoI's server delivers each to the S subscriber
  subsystems hosted on MoH's security server, over mutual TLS with event and
  ack tokens, MoH storing each event and its audit record durably before
  acknowledging. Both servers run as `spean server run` processes. Done when
  MoI's event store shows every cursor at E.
- straight into NATS JetStream (the baseline): one file-backed stream, the
  same payloads published one after the other with `js.publish` (answered
  once the server stored them), S durable pull consumers fetching in batches
  and acknowledging each message (`ack_sync`). Done when every consumer has
  acknowledged E messages.

Reported per S: events/s end to end (E / time from the first publish to the
last acknowledgement), deliveries/s (E x S / the same time), publish rate, and
the delivery latency p50/p99 (Spean: from the event's append at MoI to its
commit in MoH's inbox; JetStream: from publish to the consumer's receipt),
and the ratio of Spean's events/s to JetStream's. E shrinks for large S to
keep E x S within --max-deliveries (both sides use the same E).

    .venv/bin/python -m bench.events [--events 200] [--subscribers 1,10,100]
        [--max-deliveries 4000] [--nats nats://127.0.0.1:4222]
        [--store sqlite,nats] [--out bench/results/events.json]

`--store` names the event store engines the Spean side runs on, one row each:
`sqlite` (the default, a file per server) and `nats` (both servers' stores on
the same JetStream server as the baseline, under prefixes of their own,
deleted afterwards; the row's path is ``spean-nats``).

Needs the `bench` extra (nats-py) and a NATS server with JetStream; without
one the baseline is skipped and the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench import procs
from spean.demo.population.v1 import events_pb2
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import ADDRESS_CHANGED, ADDRESS_TOPIC, MOH, MOI, POPULATION
from spean.gateway.demo.ministries import demo_plans as _demo_plans
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb

PAYLOAD = events_pb2.CitizenAddressChanged(
    id_card_number="010203040",
    new_address="12 Street 310, Boeung Keng Kang",
    province="Phnom Penh",
    effective_date="2026-12-01",
).SerializeToString()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(
    name: str,
    subscribers: int,
    events: int,
    seconds: float,
    publish_s: float,
    latencies_ms: list[float],
) -> dict[str, Any]:
    return {
        "path": name,
        "subscribers": subscribers,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "deliveries_per_s": round(events * subscribers / seconds, 1),
        "publish_per_s": round(events / publish_s, 1),
        "latency_p50_ms": round(percentile(latencies_ms, 0.50), 2),
        "latency_p99_ms": round(percentile(latencies_ms, 0.99), 2),
    }


# -- Spean ------------------------------------------------------------------------------


def _plans(subscribers: int) -> list[Any]:
    clients = [f"KH/GOV/MOH/sub{n:03d}" for n in range(subscribers)]
    plans = []
    for plan in _demo_plans(events=True):
        if plan.member == MOI:
            topics = [dataclasses.replace(t, grants=clients) for t in plan.topics]
            plan = dataclasses.replace(plan, topics=topics, delivery={"poll_ms": 20})
        elif plan.member == MOH:
            plan = dataclasses.replace(
                plan,
                clients=[*plan.clients, *clients],
                subscriptions=[(client, ADDRESS_TOPIC) for client in clients],
            )
        else:
            continue
        plans.append(plan)
    return plans


def _acked(events_db: Path) -> list[int]:
    with sqlite3.connect(f"file:{events_db}?mode=ro", uri=True, timeout=5) as conn:
        return [row[0] for row in conn.execute("SELECT acked FROM cursors")]


def _sqlite_latencies(events_db: Path) -> list[float]:
    with sqlite3.connect(f"file:{events_db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT received_at_ns - published_at_ms * 1000000 FROM inbox WHERE seq > 1"
        ).fetchall()
    return [row[0] / 1e6 for row in rows]


async def _nats_latencies(url: str, prefix: str) -> list[float]:
    """From each inbox message's headers (gateway/eventstore/nats.py), as for SQLite."""
    import nats
    from nats.js.errors import NotFoundError

    connection = await nats.connect(url, connect_timeout=3)
    latencies: list[float] = []
    try:
        js = connection.jetstream()
        seq = 1
        while True:
            try:
                msg = await js.get_msg(
                    f"{prefix}_inbox", seq=seq, subject=f"{prefix}.inbox.>", next=True
                )
            except NotFoundError:
                break
            headers = msg.headers or {}
            if int(headers["Spean-Sequence"]) > 1:
                received = int(headers["Spean-Received-At-Ns"])
                latencies.append(
                    (received - int(headers["Spean-Published-At-Ms"]) * 1_000_000) / 1e6
                )
            seq = (msg.seq or seq) + 1
    finally:
        await connection.close()
    return latencies


async def _drop_prefixes(url: str, prefixes: list[str]) -> None:
    import nats

    connection = await nats.connect(url, connect_timeout=3)
    try:
        js = connection.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if any(name.startswith((f"{p}_", f"KV_{p}_")) for p in prefixes):
                await js.delete_stream(name)
    finally:
        await connection.close()


def _use_store(config: Path, store: str) -> None:
    import yaml

    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["pubsub"]["store"] = store
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def run_spean(
    root: Path, subscribers: int, events: int, store: str = "sqlite", nats_url: str = ""
) -> dict[str, Any]:
    """Spean on the `store` engine: ``sqlite`` (a file per server) or ``nats`` (at `nats_url`)."""
    federation = build_federation(root, _plans(subscribers))
    children = []
    prefixes = {m: f"bench{secrets.token_hex(4)}" for m in (MOI, MOH)}
    moi_store: Any = None
    if store == "nats":
        from spean.gateway.eventstore.nats import NatsEventStore

        for member, prefix in prefixes.items():
            _use_store(federation.configs[member], f"{nats_url}?prefix={prefix}")
        moi_store = NatsEventStore(f"{nats_url}?prefix={prefixes[MOI]}")
    try:
        for member in (MOI, MOH):
            config = federation.configs[member]
            child = procs.start(
                member,
                procs.python_argv("spean.gateway.cli", "server", "run", "--config", str(config)),
                root / f"{member.rsplit('/', 1)[-1].lower()}.log",
            )
            children.append(child)
            port = int(federation.config(member).consumer.listen.rsplit(":", 1)[1])  # type: ignore[union-attr]
            procs.wait_for_port(port, 60, child)
        moi_db = federation.configs[MOI].parent / "state" / "events.db"
        moh_db = federation.configs[MOH].parent / "state" / "events.db"

        def acked() -> list[int]:
            if moi_store is not None:
                return [c.acked for c in moi_store.cursors()]
            return _acked(moi_db)

        with grpc.insecure_channel(federation.consumer_addresses[MOI]) as channel:
            publish = channel.unary_unary(
                "/spean.v1.Publisher/Publish",
                request_serializer=pb.PublishRequest.SerializeToString,
                response_deserializer=pb.PublishResponse.FromString,
            )
            # One event before the clock starts: the subscribers' cursors exist from it on.
            publish(
                pb.PublishRequest(topic=ADDRESS_CHANGED, payload=PAYLOAD),
                metadata=((CLIENT, POPULATION),),
                timeout=30,
            )
            _wait(lambda: len(acked()) == subscribers and min(acked()) >= 1)
            started = time.perf_counter()
            for _ in range(events):
                publish(
                    pb.PublishRequest(topic=ADDRESS_CHANGED, payload=PAYLOAD),
                    metadata=((CLIENT, POPULATION),),
                    timeout=30,
                )
            published = time.perf_counter()
        _wait(lambda: min(acked()) >= events + 1, timeout=1800)
        done = time.perf_counter()
        if moi_store is not None:
            latencies = asyncio.run(_nats_latencies(nats_url, prefixes[MOH]))
        else:
            latencies = _sqlite_latencies(moh_db)
    finally:
        for child in children:
            child.stop()
        if moi_store is not None:
            moi_store.close()
            asyncio.run(_drop_prefixes(nats_url, list(prefixes.values())))
    name = "spean" if store == "sqlite" else f"spean-{store}"
    return _summary(name, subscribers, events, done - started, published - started, latencies)


def _wait(condition: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except sqlite3.Error:
            pass  # the store is being created
        if time.monotonic() > deadline:
            raise procs.BenchError("the deliveries did not finish in time")
        time.sleep(0.02)


# -- NATS JetStream ----------------------------------------------------------------------


async def _jetstream(url: str, subscribers: int, events: int) -> dict[str, Any]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

    connection = await nats.connect(url, connect_timeout=3)
    js = connection.jetstream()
    name = f"spean-bench-{secrets.token_hex(4)}"
    subject = f"{name}.address"
    await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE))
    latencies: list[float] = []
    try:
        pulls = []
        for n in range(subscribers):
            await js.add_consumer(
                name, ConsumerConfig(durable_name=f"sub{n}", ack_policy=AckPolicy.EXPLICIT)
            )
            pulls.append(await js.pull_subscribe(subject, durable=f"sub{n}", stream=name))

        async def consume(pull: Any) -> None:
            taken = 0
            while taken < events:
                try:
                    batch = await pull.fetch(min(256, events - taken), timeout=5)
                except nats.errors.TimeoutError:
                    continue
                for message in batch:
                    sent = float(message.headers["sent"])
                    latencies.append((time.time() - sent) * 1000)
                    await message.ack_sync()
                    taken += 1

        started = time.perf_counter()
        consumers = [asyncio.create_task(consume(pull)) for pull in pulls]
        for _ in range(events):
            await js.publish(subject, PAYLOAD, headers={"sent": repr(time.time())})
        published = time.perf_counter()
        await asyncio.gather(*consumers)
        done = time.perf_counter()
    finally:
        await js.delete_stream(name)
        await connection.close()
    return _summary(
        "jetstream", subscribers, events, done - started, published - started, latencies
    )


def run_jetstream(url: str, subscribers: int, events: int) -> dict[str, Any] | str:
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install -e '.[bench]')"
    try:
        return asyncio.run(_jetstream(url, subscribers, events))
    except (TimeoutError, OSError) as exc:
        return f"no NATS JetStream at {url}: {exc}"
    except Exception as exc:
        return f"NATS JetStream at {url} failed: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--subscribers", default="1,10,100")
    parser.add_argument("--max-deliveries", type=int, default=4000)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--store", default="sqlite", help="sqlite, nats or both: sqlite,nats")
    parser.add_argument("--out", type=Path, default=Path("bench/results/events.json"))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for subscribers in (int(s) for s in args.subscribers.split(",")):
        events = max(10, min(args.events, args.max_deliveries // subscribers))
        spean_rows = []
        for store in args.store.split(","):
            with tempfile.TemporaryDirectory(prefix="spean-bench-events-") as folder:
                spean_rows.append(run_spean(Path(folder), subscribers, events, store, args.nats))
        baseline = run_jetstream(args.nats, subscribers, events)
        rows.extend(spean_rows)
        if isinstance(baseline, str):
            skipped["jetstream"] = baseline
        else:
            rows.append(baseline)
            for spean in spean_rows:
                spean["events_per_s_over_jetstream"] = round(
                    spean["events_per_s"] / baseline["events_per_s"], 3
                )
        print(json.dumps([r for r in rows if r["subscribers"] == subscribers]), flush=True)
    result = {
        "meta": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "skipped": skipped,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"{'path':<12}{'subs':>5}{'events':>7}{'events/s':>10}{'deliv/s':>10}"
        f"{'publish/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}"
    )
    for row in rows:
        print(
            f"{row['path']:<12}{row['subscribers']:>5}{row['events']:>7}"
            f"{row['events_per_s']:>10}{row['deliveries_per_s']:>10}{row['publish_per_s']:>10}"
            f"{row['latency_p50_ms']:>9}{row['latency_p99_ms']:>9}"
            f"{row.get('events_per_s_over_jetstream', ''):>8}"
        )
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
