"""A Python load client for one target, run in its own process.

Used where h2load cannot serve: server-streaming calls (bytes and messages
counted per message) and machines without h2load. It runs `--concurrency`
callers over one channel (one HTTP/2 connection, as an application would
hold) with grpc.aio, optionally pinned to a set of cores with
`os.sched_setaffinity`, and prints one JSON object on stdout: counts by
status, the measured seconds, per-call latencies (µs) and, for streams,
the bytes and messages received. Requests are pre-serialised bytes and
responses stay bytes: the client spends nothing on protobuf.

    python -m bench.client --target 127.0.0.1:50051 --method /pkg.Svc/M \
        --body-hex 0a07... --concurrency 32 --seconds 5 [--stream] [--cpus 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time
from typing import Any

import grpc
import grpc.aio


async def _run(args: argparse.Namespace) -> dict[str, object]:
    body = bytes.fromhex(args.body_hex)
    metadata = tuple(tuple(item.split("=", 1)) for item in args.metadata)
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[int] = []
    totals = {"bytes": 0, "messages": 0}
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        unary: Any = channel.unary_unary(args.method)
        stream: Any = channel.unary_stream(args.method)
        measuring = False
        stop_at = 0.0

        async def one() -> None:
            start = time.perf_counter_ns()
            code = "OK"
            try:
                if args.stream:
                    call = stream(body, metadata=metadata, timeout=args.timeout)
                    async for message in call:
                        if measuring:
                            totals["bytes"] += len(message)
                            totals["messages"] += 1
                else:
                    await unary(body, metadata=metadata, timeout=args.timeout)
            except grpc.aio.AioRpcError as err:
                code = err.code().name
            if measuring:
                statuses[code] += 1
                latencies.append((time.perf_counter_ns() - start) // 1000)

        async def caller() -> None:
            while time.perf_counter() < stop_at:
                await one()
                if args.max_bytes and totals["bytes"] >= args.max_bytes:
                    return

        await channel.channel_ready()
        stop_at = time.perf_counter() + args.warmup
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        measuring = True
        began = time.perf_counter()
        stop_at = began + args.seconds
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - began
    return {
        "statuses": dict(statuses),
        "seconds": seconds,
        "latencies_us": latencies,
        **totals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--body-hex", default="")
    parser.add_argument("--metadata", action="append", default=[], help="key=value, repeatable")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--stream", action="store_true", help="server-streaming method")
    parser.add_argument("--max-bytes", type=int, default=0, help="stop once this much arrived")
    parser.add_argument("--cpus", default="", help="comma-separated cores to pin to")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    result = asyncio.run(_run(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
