"""Micro-benchmark: the provider's replay check, in memory and with each shared store.

Run from the repository root::

    .venv/bin/python -m bench.replay_guard [--seconds 0.5] [--postgres URL] [--processes 2]

Times one `ReplayCache.first_use` of a fresh key (what every accepted
exchange pays), side by side in one run (best of seven interleaved rounds,
the harness of bench/tokens.py):

- ``memory``:       the in-memory set alone (the baseline: one process only);
- ``sqlite``:       memory + the SQLite store as servers run it
                    (WAL, ``synchronous = NORMAL``);
- ``sqlite-fsync``: the same with ``synchronous = FULL``, the mode not chosen;
- ``postgres``:     memory + the PostgreSQL store (``synchronous_commit =
                    off``), when a server answers at ``--postgres`` (default:
                    SPEAN_TEST_POSTGRES_URL or the test default);
- ``replay-hit``:   a replay to the same process (answered from memory).

and prints microseconds per check with the ratio to ``memory``. With
``--processes N`` it also runs N processes checking fresh keys against ONE
SQLite store at once (the ``--workers N`` case: they contend for its write
lock) and prints the combined checks per second.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.tokens import _compare
from spean.gateway.errors import Unavailable
from spean.gateway.server.replay_guard import PostgresReplayStore, ReplayCache, SqliteReplayStore

NOW = 1_700_000_000
DEFAULT_POSTGRES = os.environ.get(
    "SPEAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _fresh_keys(cache: ReplayCache) -> Callable[[], object]:
    counter = itertools.count()
    prefix = f"KH/GOV/MOH|{uuid.uuid4()}-"

    def check() -> object:
        key = f"{prefix}{next(counter)}"
        if not cache.first_use(key, NOW + 60, NOW):
            raise AssertionError(f"{key} refused on first use")
        return None

    return check


@contextlib.contextmanager
def _postgres(url: str) -> Iterator[PostgresReplayStore | None]:
    schema = f"bench_replay_{uuid.uuid4().hex[:8]}"
    try:
        store = PostgresReplayStore(f"{url}?schema={schema}", connect_timeout_s=2)
    except Unavailable as exc:
        print(f"postgres: skipped ({exc.message})")
        yield None
        return
    try:
        yield store
    finally:
        store.close()
        import psycopg

        from spean.gateway.audit.backends.urls import parse_postgres_url

        conninfo, _ = parse_postgres_url(url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(seconds: float, postgres_url: str, processes: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="spean-bench-replay-") as tmp,
        _postgres(postgres_url) as pg,
    ):
        folder = Path(tmp)
        memory = ReplayCache(30)
        normal = ReplayCache(30, SqliteReplayStore(folder / "normal.replay"))
        full = ReplayCache(30, SqliteReplayStore(folder / "full.replay", fsync_each_check=True))
        hit = ReplayCache(30, SqliteReplayStore(folder / "hit.replay"))
        hit.first_use("KH/GOV/MOH|seen", NOW + 60, NOW)
        rows: list[tuple[str, Callable[[], object]]] = [
            ("memory", _fresh_keys(memory)),
            ("sqlite", _fresh_keys(normal)),
            ("sqlite-fsync", _fresh_keys(full)),
            ("replay-hit", lambda: hit.first_use("KH/GOV/MOH|seen", NOW + 60, NOW)),
        ]
        if pg is not None:
            rows.insert(3, ("postgres", _fresh_keys(ReplayCache(30, pg))))
        try:
            timings = _compare([operation for _, operation in rows], seconds)
        finally:
            for cache in (normal, full, hit):
                cache.close()
        baseline = timings[0]
        print(f"{'check':<16}{'µs/check':>10}{'x memory':>10}")
        for (name, _), micros in zip(rows, timings, strict=True):
            print(f"{name:<16}{micros:>10.1f}{micros / baseline:>9.1f}x")
        if processes > 1:
            _contention(folder / "shared.replay", processes, seconds)


def _hammer(path: str, seconds: float, results: multiprocessing.Queue[int]) -> None:
    cache = ReplayCache(30, SqliteReplayStore(path))
    check = _fresh_keys(cache)
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        check()
        done += 1
    cache.close()
    results.put(done)


def _contention(path: Path, processes: int, seconds: float) -> None:
    SqliteReplayStore(path).close()  # create the schema once, before the race
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = context.Queue()
    duration = max(seconds * 4, 1.0)
    workers = [
        context.Process(target=_hammer, args=(str(path), duration, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=duration + 60) for _ in workers)
    for worker in workers:
        worker.join(30)
    print(
        f"{processes} processes, one SQLite store: {total / duration:,.0f} checks/s combined"
        f" ({duration * processes / total * 1e6:.1f} µs per check per process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL URL to use")
    parser.add_argument("--processes", type=int, default=2, help="processes sharing one store")
    args = parser.parse_args()
    run(args.seconds, args.postgres, args.processes)


if __name__ == "__main__":
    main()
