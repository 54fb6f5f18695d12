"""Traffic statistics of the management API: the derived index against a full scan.

A SQLite audit store is filled with N provider records spread over the last
hour (a realistic mix: 4 services, 20 clients, 90% OK, the rest refused or
failed), appended by 32 threads (group commit). Then, side by side in one
run, each answering "calls per 5-minute bucket, service, client and status
in the last hour" (`/api/v1/traffic?window=1h&side=provider`):

- baseline, full scan: read every record of the store, decode it, filter by
  side and window, count: what answering from the store alone costs on each
  request;
- index, first query: `TrafficIndex.counts` on an empty index, which first
  indexes all N records (once per index file's life);
- index, steady state: 100 more records appended, then `counts` (the catch-up
  indexes only them); the median of 5 rounds.

Both answers are checked equal. Reported: seconds and each one's time as a
ratio of the baseline's.

    .venv/bin/python bench/management_traffic.py [--records 20000 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.management.statistics import Count, window
from spean.gateway.management.traffic_index import TrafficIndex

SERVER = "KH/GOV/MPWT/ss1"
ORIGIN = f"{SERVER}#w0"
RESULTS = Path(__file__).resolve().parent / "results" / "management_traffic.json"
STATUSES = ["OK"] * 18 + ["PERMISSION_DENIED", "UNAVAILABLE"]


def record(n: int, at_ns: int) -> AuditRecord:
    return AuditRecord(
        exchange_id=f"0192c0de-0000-7000-8000-{n:012d}",
        side=Side.PROVIDER,
        origin=ORIGIN,
        client=f"KH/GOV/M{n % 20:02d}/app",
        service=f"KH/GOV/MPWT/svc{n % 4}",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        received_at_ns=at_ns,
        status=STATUSES[n % len(STATUSES)],
        request_token="e" * 620,
        response_token="f" * 540,
        latency_us=900,
    )


def fill(store: AuditStore, start: int, count: int, now_ns: int) -> None:
    spread = 3_000_000_000_000  # 50 minutes
    with ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda n: store.append(
                    record(n, now_ns - spread + n * spread // max(count + start, 1))
                ),
                range(start, start + count),
            )
        )


def full_scan(store: AuditStore, now_ns: int) -> Counter[tuple[int, str, str, str]]:
    win = window("1h", now_ns)
    found: Counter[tuple[int, str, str, str]] = Counter()
    for stored in store.read():
        r = AuditRecord.from_bytes(stored.record_bytes)
        if r.side is Side.PROVIDER and win.since_ns <= r.received_at_ns < win.until_ns:
            found[(win.bucket_of(r.received_at_ns), r.service, r.client, r.status)] += 1
    return found


def as_counter(counts: list[Count]) -> Counter[tuple[int, str, str, str]]:
    return Counter({(c.bucket_ns, c.service, c.client, c.status): c.calls for c in counts})


def run(records: int, folder: Path) -> dict[str, object]:
    store = open_store(str(folder / f"audit-{records}.sqlite"), ORIGIN)
    now_ns = time.time_ns()
    fill(store, 0, records, now_ns)
    index = TrafficIndex(folder / f"index-{records}.sqlite", store, SERVER)
    win = window("1h", now_ns)
    t0 = time.perf_counter()
    baseline = full_scan(store, now_ns)
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = as_counter(index.counts(win, "PROVIDER"))
    first_s = time.perf_counter() - t0
    assert first == baseline, "the index and the full scan disagree"
    steady = []
    for round_ in range(5):
        fill(store, records + round_ * 100, 100, now_ns)
        t0 = time.perf_counter()
        index.counts(win, "PROVIDER")
        steady.append(time.perf_counter() - t0)
    index.close()
    store.close()
    steady_s = statistics.median(steady)
    return {
        "records": records,
        "full_scan_s": round(scan_s, 4),
        "index_first_query_s": round(first_s, 4),
        "index_steady_query_s": round(steady_s, 5),
        "first_query_ratio": round(first_s / scan_s, 3),
        "steady_query_ratio": round(steady_s / scan_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[20000])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="spean-bench-traffic-") as tmp:
        for records in args.records:
            result = run(records, Path(tmp))
            results.append(result)
            print(
                f"{records} records: full scan {result['full_scan_s']} s;"
                f" index first query {result['index_first_query_s']} s"
                f" ({result['first_query_ratio']}x the scan);"
                f" index steady query {result['index_steady_query_s']} s"
                f" ({result['steady_query_ratio']}x the scan)"
            )
    RESULTS.write_text(
        json.dumps({"bench": "management_traffic", "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
