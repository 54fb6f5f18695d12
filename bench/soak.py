"""Soak: a fixed number of exchanges through the demo federation, then account for each.

`make soak` runs 100,000 GetVehicle calls at concurrency 64 from the MoH
hospital application to MPWT's vehicle registry: the three demo security
servers run as subprocesses (``spean server run``), the load client in a
process of its own (grpc.aio, one channel, `concurrency` calls in flight).
While it runs, each server's resident memory (VmRSS in /proc/PID/status) is
sampled. Afterwards the servers are stopped cleanly and their audit logs are
read and chain-verified. The run holds when:

- every call was answered OK (any other status is an unexpected error);
- MoH's log holds one OK consumer record per call and MPWT's log one OK
  provider record per call: audit counts equal on both sides and equal to
  the calls made, and both hash chains verify;
- no server's peak RSS in the last quarter of the run exceeds its peak in
  the first quarter by 10% or more (no leak proportional to traffic).

    python -m bench.soak [--calls 100000] [--concurrency 64] [--dir DIR] [--json]

Exit status 0 when the run holds, 1 when it does not (the summary says why).
`python -m bench.soak client ...` is the load client itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Child, environment, memory_kib, python_argv, start, wait_for_port

MAX_RSS_GROWTH = 0.10
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ServerMemory:
    """One server's RSS samples, cut into four quarters of the run by time."""

    member: str
    quarter_peaks_kib: tuple[int, int, int, int]

    @property
    def growth(self) -> float:
        """Peak of the last quarter over the peak of the first, minus one."""
        first, last = self.quarter_peaks_kib[0], self.quarter_peaks_kib[3]
        return last / first - 1 if first else 0.0


@dataclass(frozen=True, slots=True)
class AuditCount:
    """What one member's audit log holds for the run, its chain verified."""

    member: str
    origin: str
    records: int
    ok: int


@dataclass(frozen=True, slots=True)
class SoakResult:
    """Everything the run measured, and the verdict."""

    calls: int
    concurrency: int
    seconds: float
    statuses: dict[str, int]
    audit: tuple[AuditCount, ...]
    memory: tuple[ServerMemory, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        errors = sum(n for status, n in self.statuses.items() if status != "OK")
        lines = [
            f"soak: {self.calls} exchanges at concurrency {self.concurrency} in "
            f"{self.seconds:.1f} s: {self.throughput:.0f} exchanges/s, {errors} errors "
            f"{dict(sorted(self.statuses.items()))}",
        ]
        for count in self.audit:
            lines.append(
                f"  audit {count.member}: {count.records} records ({count.ok} OK), chain verified"
            )
        for memory in self.memory:
            quarters = " / ".join(f"{kib / 1024:.1f}" for kib in memory.quarter_peaks_kib)
            lines.append(
                f"  RSS {memory.member} peak per quarter (MiB): {quarters}, "
                f"growth {memory.growth:+.1%}"
            )
        lines.append("OK: the run holds" if self.ok else "FAILED:")
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


class MemorySampler:
    """Samples VmRSS of some processes every `interval` seconds on a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            for name, pid in self._pids.items():
                try:
                    rss, _ = memory_kib(pid)
                except OSError:
                    continue  # exited: the run reports it through the client's errors
                self.samples[name].append((now, rss))
            if self._stop.wait(self._interval):
                return

    def quarters(self, began: float, ended: float) -> list[ServerMemory]:
        span = max(ended - began, 1e-9)
        out = []
        for name, samples in self.samples.items():
            peaks = [0, 0, 0, 0]
            for at, rss in samples:
                if began <= at <= ended:
                    quarter = min(3, int((at - began) / span * 4))
                    peaks[quarter] = max(peaks[quarter], rss)
            out.append(ServerMemory(name, (peaks[0], peaks[1], peaks[2], peaks[3])))
        return out


# -- the load client (its own process) ------------------------------------------


async def _client(target: str, calls: int, concurrency: int) -> dict[str, object]:
    import grpc
    import grpc.aio

    from spean.demo.vehicles.v1 import vehicles_pb2
    from spean.gateway.demo import data as demo_data
    from spean.gateway.demo.ministries import GET_VEHICLE, NHIS, VEHICLES
    from spean.gateway.metadata import CLIENT, PURPOSE, SERVICE, USER

    body = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
    metadata = (
        (CLIENT, NHIS),
        (SERVICE, VEHICLES),
        (USER, "soak@hospital.example"),
        (PURPOSE, "soak test"),
    )
    statuses: collections.Counter[str] = collections.Counter()
    remaining = calls
    async with grpc.aio.insecure_channel(target) as channel:
        unary: Any = channel.unary_unary(GET_VEHICLE)  # bytes in, bytes out
        await asyncio.wait_for(channel.channel_ready(), 30)

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1  # one event loop thread: no lock needed
                try:
                    await unary(body, metadata=metadata, timeout=CALL_TIMEOUT_S)
                    statuses["OK"] += 1
                except grpc.aio.AioRpcError as err:
                    statuses[err.code().name] += 1

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"statuses": dict(statuses), "seconds": seconds}


def _client_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak client")
    parser.add_argument("--target", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(_client(args.target, args.calls, args.concurrency))
    json.dump(result, sys.stdout)
    return 0


# -- the run ----------------------------------------------------------------------


def _count_audit(member: str, database: Path, origin: str, side: str) -> AuditCount:
    from spean.gateway.audit.backends import open_store
    from spean.gateway.audit.chain import verify_chain
    from spean.gateway.audit.record import AuditRecord

    records = ok = 0
    # Read under another origin name: the reader never writes the server's log.
    with open_store(str(database), f"{origin}.soak") as store:
        stored = list(store.read(origin=origin))
    verify_chain(r.chain_entry() for r in stored)
    for item in stored:
        record = AuditRecord.from_bytes(item.record_bytes)
        if record.side.name == side:
            records += 1
            ok += record.status == "OK"
    return AuditCount(member, origin, records, ok)


def run_soak(root: Path, calls: int, concurrency: int) -> SoakResult:
    """Build the demo federation under `root`, run the soak, account for every call."""
    from spean.gateway.demo.ministries import MOH, MOI, MPWT, build_demo

    if calls < 4 or concurrency < 1:
        raise ValueError(f"a soak needs at least 4 calls and 1 caller, got {calls}/{concurrency}")
    federation = build_demo(root / "federation")
    children: dict[str, Child] = {}
    try:
        for member in (MOI, MPWT, MOH):
            config = federation.configs[member]
            argv = python_argv("spean.gateway.cli", "server", "run", "--config", str(config))
            name = member.rsplit("/", 1)[-1].lower()
            children[member] = start(name, argv, root / f"{name}.log")
        for member, child in children.items():
            conf = federation.config(member)
            for side in (conf.provider, conf.consumer):
                if side is not None:
                    wait_for_port(int(side.listen.rsplit(":", 1)[1]), 60, child)
        client = python_argv("bench.soak", "client", "--target")
        client += [federation.consumer_addresses[MOH], "--calls", str(calls)]
        client += ["--concurrency", str(concurrency)]
        pids = {member: child.pid for member, child in children.items()}
        with MemorySampler(pids) as sampler:
            done = subprocess.run(
                client, capture_output=True, text=True, env=environment(), check=False
            )
            ended = time.monotonic()
        if done.returncode != 0:
            raise RuntimeError(f"the soak client failed:\n{done.stderr[-3000:]}")
        answer = json.loads(done.stdout)
        for child in children.values():
            child.stop(grace=30)
        exits = {member: child.process.returncode for member, child in children.items()}
    finally:
        for child in children.values():
            child.stop(grace=5)
    statuses: dict[str, int] = answer["statuses"]
    audit = (
        _count_audit(
            MOH, federation.configs[MOH].parent / "state" / "audit.db", f"{MOH}/ss1#w0", "CONSUMER"
        ),
        _count_audit(
            MPWT,
            federation.configs[MPWT].parent / "state" / "audit.db",
            f"{MPWT}/ss1#w0",
            "PROVIDER",
        ),
    )
    # Quarters of the calls themselves, not of the client's start-up.
    memory = tuple(sampler.quarters(ended - float(answer["seconds"]), ended))
    problems = []
    errors = {status: n for status, n in statuses.items() if status != "OK"}
    if errors:
        problems.append(f"unexpected errors: {errors}")
    if sum(statuses.values()) != calls:
        problems.append(f"the client made {sum(statuses.values())} calls, not {calls}")
    for count in audit:
        if count.records != calls or count.ok != calls:
            problems.append(
                f"{count.member}'s audit log holds {count.records} records ({count.ok} OK) "
                f"for {calls} calls"
            )
    for member, code in exits.items():
        if code != 0:
            problems.append(f"{member}'s server exited with {code} on SIGTERM")
    for server in memory:
        if 0 in server.quarter_peaks_kib:
            problems.append(f"{server.member}: no RSS sample in some quarter of the run")
        elif server.growth >= MAX_RSS_GROWTH:
            problems.append(
                f"{server.member}: peak RSS grew {server.growth:.1%} from the first quarter "
                f"to the last (limit {MAX_RSS_GROWTH:.0%})"
            )
    return SoakResult(
        calls=calls,
        concurrency=concurrency,
        seconds=float(answer["seconds"]),
        statuses=statuses,
        audit=audit,
        memory=memory,
        problems=tuple(problems),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return _client_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--dir", type=Path, help="keep the federation and logs here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spean-soak-") as scratch:
        root = args.dir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        result = run_soak(root, args.calls, args.concurrency)
    if args.json:
        print(json.dumps({**asdict(result), "ok": result.ok, "throughput": result.throughput}))
    else:
        print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
