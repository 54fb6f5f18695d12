"""Open data at scale: a dataset of `--rows` rows generated through the exchange path and
downloaded over HTTP, each beside a direct baseline.

Builds the demo federation with MPWT's registry holding `--rows` vehicles of
one owner, published as the open dataset ``mpwt-fleet`` (ListVehiclesByOwner,
`owner_id` dropped by MPWT's access rule for ``KH/GOV/MOI/catalogue``), and
runs its security servers in this process. Then, each measured step in its
own child process, so that its peak RSS is its own (``os.wait4``):

(a) generation: ``spean catalogue publish-datasets`` through MoI's consumer
    endpoint (MoH's and MPWT's servers, mutual TLS, signed tokens, both audit
    logs) writing CSV, JSON Lines and Parquet; reported as rows/s, MB/s of
    the three files, and the process's peak RSS. Baselines, the same rows
    exported straight from the database to CSV: SQLite ``SELECT`` written with
    `csv.writer`, and (with PostgreSQL) ``COPY (SELECT ...) TO STDOUT`` via
    psycopg from a copy of the table;
(b) download: ``spean catalogue serve --datasets`` serving the generated files,
    each fetched whole over HTTP on loopback; MB/s and the server's peak RSS.
    Baseline: Python's ``http.server`` serving the same folder.

Ratios are baseline / Spean (for time: how many times longer Spean takes;
for speed the inverse). Goals: download >= 50 MB/s, serving RSS < 256 MB.

    .venv/bin/python bench/opendata.py [--rows 1000000] [--postgres URL | --no-postgres]
        [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET = "mpwt-fleet"
OWNER = "099999999"
SELECT = (
    "SELECT plate, vehicle_type, make, model, model_year, colour, engine_cc, registered_on,"
    " last_inspection, tax_status FROM vehicles WHERE owner_id = ? ORDER BY plate"
)
MB = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _peak_rss(pid: int) -> int:
    """The process's peak resident set since its exec (VmHWM), in bytes; 0 once it is gone.

    Not ru_maxrss from wait4: a child forked from this process, which runs
    the security servers, would count this process's pages it held before
    its exec.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run_measured(argv: Sequence[str]) -> tuple[float, int, str]:
    """Run `argv`; (seconds, its peak RSS in bytes, its standard output)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _peak_rss(process.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:5])} ... failed:\n{text}\n{err.read().decode()}")
    return seconds, peak, text


def _fill(database: Path, rows: int) -> None:
    """`rows` vehicles of OWNER in MPWT's SQLite registry (beside the demo's own)."""
    makes = (("Toyota", "Camry", 2500), ("Honda", "Dream", 125), ("Hyundai", "H-1", 2400))
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode = WAL")
        batch = []
        for i in range(rows):
            make, model, cc = makes[i % 3]
            batch.append(
                (f"B{i:08d}", "car" if cc > 1000 else "motorcycle", make, model, 1998 + i % 27,
                 ("silver", "white", "red")[i % 3], cc if i % 10 else None,
                 f"20{10 + i % 15}-0{1 + i % 9}-1{i % 10}",
                 None if i % 4 else "2024-09-03 10:30:00",
                 OWNER, ("paid", "due", "overdue", "exempt")[i % 4])
            )  # fmt: skip
            if len(batch) == 50_000:
                db.executemany("INSERT INTO vehicles VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        db.executemany("INSERT INTO vehicles VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
        db.execute("CREATE INDEX IF NOT EXISTS vehicles_owner ON vehicles (owner_id, plate)")


def _columns(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[1] for row in db.execute("PRAGMA table_info(vehicles)")]


def sqlite_export(database: str, out: str) -> None:
    """Baseline (child): the owner's rows straight from SQLite into a CSV file."""
    with sqlite3.connect(database) as db, open(out, "w", newline="", encoding="utf-8") as f:
        cursor = db.execute(SELECT, (OWNER,))
        writer = csv.writer(f)
        writer.writerow([d[0] for d in cursor.description])
        while batch := cursor.fetchmany(10_000):
            writer.writerows(batch)


def postgres_export(url: str, out: str) -> None:
    """Baseline (child): COPY (SELECT ...) TO STDOUT from PostgreSQL into a CSV file."""
    import psycopg

    query = SELECT.replace("?", "%s").replace("FROM vehicles", "FROM bench_opendata_vehicles")
    with psycopg.connect(url) as db, open(out, "wb") as f, db.cursor() as cursor:
        statement = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)"
        with cursor.copy(statement.replace("%s", f"'{OWNER}'")) as copy:
            for data in copy:
                f.write(data)


def _load_postgres(url: str, database: Path) -> None:
    import psycopg

    columns = _columns(database)
    with psycopg.connect(url) as db, sqlite3.connect(database) as source:
        db.execute("DROP TABLE IF EXISTS bench_opendata_vehicles")
        db.execute(
            "CREATE TABLE bench_opendata_vehicles (plate text PRIMARY KEY, vehicle_type text,"
            " make text, model text, model_year int, colour text, engine_cc int,"
            " registered_on date, last_inspection timestamp, owner_id text, tax_status text)"
        )
        with db.cursor().copy(
            f"COPY bench_opendata_vehicles ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for row in source.execute(f"SELECT {', '.join(columns)} FROM vehicles"):
                copy.write_row(row)
        db.execute("CREATE INDEX ON bench_opendata_vehicles (owner_id, plate)")


def _raw_stream(consumer: str, client: str, method: str) -> float:
    """Seconds to read the dataset's stream through the consumer endpoint, discarding it."""
    import grpc

    from spean.demo.vehicles.v1 import vehicles_pb2
    from spean.gateway.metadata import CLIENT, PURPOSE, SERVICE

    start = time.perf_counter()
    with grpc.insecure_channel(consumer) as channel:
        stream = channel.unary_stream(
            method,
            request_serializer=vehicles_pb2.ListVehiclesByOwnerRequest.SerializeToString,
            response_deserializer=vehicles_pb2.Vehicle.FromString,
        )
        headers = ((CLIENT, client), (SERVICE, "KH/GOV/MPWT/vehicles"), (PURPOSE, "bench"))
        request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=OWNER)
        for _ in stream(request, metadata=headers, timeout=3600):
            pass
    return time.perf_counter() - start


def _download(port: int, path: str) -> tuple[int, float]:
    """Fetch `path` whole from 127.0.0.1:`port`; (bytes, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {response.read()[:300]!r}")
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
    seconds = time.perf_counter() - start
    connection.close()
    return size, seconds


def _wait_http(port: int, path: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing answered GET {path} on port {port}")


@contextlib.contextmanager
def _server(argv: Sequence[str], port: int, probe: str) -> Iterator[list[int]]:
    """A serving child; on exit it is stopped (SIGTERM) and its peak RSS put in the list."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss: list[int] = []
    try:
        _wait_http(port, probe)
        yield rss
    finally:
        rss.append(_peak_rss(process.pid))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _row(name: str, method: str, rows: int, size: int, seconds: float, rss: int) -> str:
    return (
        f"  {name:<10} {method:<26} {rows:>9} rows {seconds:>8.2f} s {rows / seconds:>10.0f} rows/s"
        f" {size / MB / seconds:>8.1f} MB/s  peak RSS {rss / MB:>6.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        {"sqlite": sqlite_export, "postgres": postgres_export}[args.child[0]](*args.child[1:])
        return
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-opendata-"))
    try:
        run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    from spean.gateway.demo.federation import build_federation
    from spean.gateway.demo.ministries import (
        LIST_VEHICLES,
        MOH,
        MOI,
        MONTHLY_REPORT,
        MPWT,
        demo_plans,
    )
    from spean.gateway.demo.opendata import (
        CATALOGUE,
        DROPPED,
        mask_for_catalogue,
        with_open_data,
        with_vehicles_dataset,
    )
    from spean.gateway.server.logs import configure_logging

    configure_logging("console", level=40)
    work.mkdir(parents=True, exist_ok=True)
    plans = with_vehicles_dataset(with_open_data(demo_plans()), work, DATASET, OWNER)
    federation = build_federation(work / "federation", plans)
    mask_for_catalogue(federation.configs[MOH], MONTHLY_REPORT, DROPPED)
    mask_for_catalogue(federation.configs[MPWT], LIST_VEHICLES, ["owner_id"])
    database = federation.configs[MPWT].parent / "mpwt-vehicles.db"
    started = time.perf_counter()
    _fill(database, args.rows)
    print(
        f"{args.rows} rows of one owner in MPWT's registry ({time.perf_counter() - started:.1f} s)"
    )
    postgres = None if args.no_postgres else args.postgres
    if postgres is not None:
        try:
            _load_postgres(postgres, database)
        except Exception as exc:  # the bench reports and goes on without it
            print(f"PostgreSQL baseline left out: {exc}")
            postgres = None
    datasets = work / "datasets"
    authority = work / "federation" / "authority"
    spean = [sys.executable, "-m", "spean.gateway.cli"]
    with federation.running():
        consumer = federation.consumer_addresses[MOI]
        seconds, rss, out = _run_measured([
            *spean, "catalogue", "publish-datasets", "--authority", str(authority),
            "--datasets", str(datasets), "--dataset", DATASET, "--client", CATALOGUE,
            "--consumer", consumer,
        ])  # fmt: skip
        stream_seconds = _raw_stream(consumer, CATALOGUE, LIST_VEHICLES)
    print(f"(a) generation, {out.strip()[:120]}")
    folder = datasets / DATASET
    files = sorted(folder.glob(f"{DATASET}-v1.*"))
    sizes = {p.suffix: p.stat().st_size for p in files if p.suffix != ".rows"}
    total = sum(sizes.values())
    print("   files: " + ", ".join(f"{k[1:]} {v / MB:.1f} MB" for k, v in sizes.items()))
    print(_row("spean", "exchange path, 3 formats", args.rows, total, seconds, rss))
    print(
        f"  {'stream':<10} {'exchange path, discarded':<26} {args.rows:>9} rows"
        f" {stream_seconds:>8.2f} s {args.rows / stream_seconds:>10.0f} rows/s"
        "  (the same stream read by a plain client in this process, nothing written)"
    )
    baselines = {}
    b_seconds, b_rss, _ = _run_measured([
        sys.executable, __file__, "--child", "sqlite", str(database), str(work / "direct.csv"),
    ])  # fmt: skip
    baselines["sqlite"] = b_seconds
    csv_size = (work / "direct.csv").stat().st_size
    print(_row("baseline", "SQLite SELECT to CSV", args.rows, csv_size, b_seconds, b_rss))
    if postgres is not None:
        p_seconds, p_rss, _ = _run_measured([
            sys.executable, __file__, "--child", "postgres", postgres, str(work / "copy.csv"),
        ])  # fmt: skip
        baselines["postgres"] = p_seconds
        print(_row("baseline", "PostgreSQL COPY TO STDOUT", args.rows,
                   (work / "copy.csv").stat().st_size, p_seconds, p_rss))  # fmt: skip
    for name, value in baselines.items():
        print(f"   spean time / {name} baseline time: x{seconds / value:.1f}")

    print("(b) download over HTTP on loopback, each file whole")
    port = _free_port()
    serve = [
        *spean, "catalogue", "serve", "--authority", str(authority), "--datasets", str(datasets),
        "--port", str(port),
    ]  # fmt: skip
    results: dict[str, dict[str, float]] = {"spean": {}, "http.server": {}}
    with _server(serve, port, f"/api/v1/catalogue/datasets/{DATASET}") as serve_rss:
        for fmt in ("csv", "json", "parquet"):
            size, took = _download(port, f"/api/v1/catalogue/datasets/{DATASET}/latest.{fmt}")
            results["spean"][fmt] = size / MB / took
    base_port = _free_port()
    plain = [sys.executable, "-m", "http.server", str(base_port), "--bind", "127.0.0.1",
             "--directory", str(folder)]  # fmt: skip
    with _server(plain, base_port, "/") as plain_rss:
        for fmt, suffix in (("csv", "csv"), ("json", "jsonl"), ("parquet", "parquet")):
            size, took = _download(base_port, f"/{DATASET}-v1.{suffix}")
            results["http.server"][fmt] = size / MB / took
    for fmt in ("csv", "json", "parquet"):
        spean_speed, plain_speed = results["spean"][fmt], results["http.server"][fmt]
        print(
            f"  {fmt:<8} spean serve {spean_speed:>8.1f} MB/s"
            f"   http.server {plain_speed:>8.1f} MB/s"
            f"   spean / baseline x{spean_speed / plain_speed:.2f}"
        )
    print(
        f"  peak RSS: spean serve {serve_rss[0] / MB:.0f} MB,"
        f" http.server {plain_rss[0] / MB:.0f} MB (goals: >= 50 MB/s, RSS < 256 MB)"
    )


if __name__ == "__main__":
    main()
