"""`python -m bench` (`make bench`): Spean against direct gRPC and nginx, in one run.

    python -m bench                 # everything, several minutes
    python -m bench --smoke         # about ten seconds, what CI runs
    python -m bench --seconds 20 --concurrency 1,8,32 --out /tmp/results

Measures, side by side on this machine, the demo's GetVehicle call served by
(a) a plain grpcio service on the same SQLite database, (b) that service
behind two nginx hops with mutual TLS, (c) Spean: consumer and provider
security servers in their own processes, tokens both ways, durable audit on
both sides, the SQL adapter. Then streaming throughput with the servers'
peak RSS, audit verification over the logs just written, and a global
configuration of many members. Writes `<name>.json` and `<name>.png` to
--out (bench/results by default), prints a table. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog

from bench import exchange, profile, report, scale
from bench.exchange import DIRECT, NGINX, SPEAN, Rig
from bench.procs import BenchError

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {
    "c_over_b_throughput_at_32": 1.0,
    "spean_rps_at_32": 1500,
    "p50_c1_over_direct_ms": 1.5,
    "stream_rss_growth_mib": 64,
    "audit_structure_records_per_s": 100_000,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all, for CI")
    parser.add_argument("--seconds", type=float, help="measured seconds per path and level")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each measurement")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated levels")
    parser.add_argument("--stream-mb", type=float, help="MB to stream through each path")
    parser.add_argument(
        "--stream-seconds", type=float, help="time bound per path for the stream (between calls)"
    )
    parser.add_argument("--bulk-rows", type=int, help="vehicles of the streaming owner")
    parser.add_argument(
        "--stream-row-bytes",
        type=int,
        help="size of each streamed vehicle's model text (default 4000; 0: the demo's ~70-byte"
        " vehicles)",
    )
    parser.add_argument("--members", type=int, help="members in the global configuration")
    parser.add_argument("--services", type=int, help="services in the global configuration")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and PNG")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--paths", default="", help="comma-separated subset of direct,nginx,spean (default: all)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes per security server (spean server run --workers; default 2, one per core)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=2,
        help="HTTP/2 connections from the load generator, for every path (default 2)",
    )
    parser.add_argument(
        "--unary-only", action="store_true", help="skip streaming, audit verify and scale"
    )
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    smoke = args.smoke
    return {
        "seconds": args.seconds or (0.5 if smoke else 10.0),
        "warmup": args.warmup if args.warmup is not None else (0.1 if smoke else 2.0),
        "concurrency": [int(c) for c in args.concurrency.split(",")],
        "stream_bytes": int((args.stream_mb or (0.2 if smoke else 100.0)) * 1e6),
        "stream_seconds": args.stream_seconds or (10.0 if smoke else 60.0),
        "bulk_rows": args.bulk_rows or (2_000 if smoke else 20_000),
        "stream_row_bytes": (200 if smoke else 4_000)
        if args.stream_row_bytes is None
        else args.stream_row_bytes,
        "members": args.members or (20 if smoke else 1_000),
        "services": args.services or (200 if smoke else 10_000),
        "profile": not (smoke or args.no_profile),
        "paths": [p for p in args.paths.split(",") if p],
        "workers": args.workers,
        "connections": args.connections,
        "unary_only": args.unary_only,
    }


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "absent"
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def _meta(settings: dict[str, Any], rig: Rig) -> dict[str, Any]:
    nginx_binary = rig.nginx and shutil.which("nginx", path="/usr/sbin:/usr/bin")
    return {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "nginx": _version([nginx_binary, "-v"]) if nginx_binary else "absent",
        "h2load": _version(["h2load", "--version"]),
        "generator": "h2load" if rig.h2load else "python (bench.client)",
        **settings,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    ratios: dict[str, dict[str, float]] = {}
    for level in sorted({r["concurrency"] for r in rows}):
        by_path = {r["path"]: r for r in rows if r["concurrency"] == level}
        spean = by_path.get(SPEAN)
        if spean is None:
            continue
        entry: dict[str, float] = {}
        for other, name in ((DIRECT, "a"), (NGINX, "b")):
            base = by_path.get(other)
            if base is None or not base["throughput_rps"]:
                continue
            entry[f"throughput c/{name}"] = round(
                spean["throughput_rps"] / base["throughput_rps"], 3
            )
            entry[f"p50 c-{name} ms"] = round(spean["p50_ms"] - base["p50_ms"], 3)
            if base["cpu_us_per_exchange_total"]:
                entry[f"cpu c/{name}"] = round(
                    spean["cpu_us_per_exchange_total"] / base["cpu_us_per_exchange_total"], 2
                )
        ratios[f"concurrency {level}"] = entry
    return ratios


def _goals(results: dict[str, Any]) -> dict[str, Any]:
    rows = {(r["path"], r["concurrency"]): r for r in results["unary"]}
    goals: dict[str, Any] = {}
    spean32, nginx32 = rows.get((SPEAN, 32)), rows.get((NGINX, 32))
    if spean32:
        goals["spean_rps_at_32"] = {"value": spean32["throughput_rps"], "goal": ">= 1500"}
    if spean32 and nginx32 and nginx32["throughput_rps"]:
        value = round(spean32["throughput_rps"] / nginx32["throughput_rps"], 3)
        goals["c_over_b_throughput_at_32"] = {"value": value, "goal": ">= 1.0"}
    spean1, direct1 = rows.get((SPEAN, 1)), rows.get((DIRECT, 1))
    if spean1 and direct1:
        value = round(spean1["p50_ms"] - direct1["p50_ms"], 3)
        goals["p50_c1_minus_direct_ms"] = {"value": value, "goal": "<= 1.5"}
    streamed = [s for s in results.get("streaming", []) if s["path"] == SPEAN]
    if streamed:
        value = max(streamed[0]["rss_growth_mib"].values())
        goals["stream_rss_growth_mib"] = {
            "value": value,
            "goal": "< 64",
            "note": f"over {streamed[0]['bytes'] / 1e6:.0f} MB streamed (the goal says 100 MB)",
        }
    audit = results.get("audit_verify") or {}
    if audit.get("records"):
        goals["audit_structure_records_per_s"] = {
            "value": audit["structure_records_per_s"],
            "goal": ">= 100000",
        }
    for goal in goals.values():
        text, value = goal["goal"], goal["value"]
        bound = float(text.split()[1])
        goal["met"] = (
            value >= bound
            if text.startswith(">=")
            else (value <= bound if text.startswith("<=") else value < bound)
        )
    return goals


def run(settings: dict[str, Any], out: Path, name: str, keep: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="spean-bench-"))
    results: dict[str, Any] = {}
    try:
        print(f"building the federation and bench database in {workdir} ...", flush=True)
        rig = exchange.start_rig(
            workdir,
            settings["bulk_rows"],
            row_bytes=settings["stream_row_bytes"],
            workers=settings["workers"],
            connections=settings["connections"],
        )
        try:
            rig.check_same_answers()
            results["meta"] = _meta(settings, rig)
            results["skipped"] = dict(rig.skipped)
            unary: list[dict[str, Any]] = []
            paths = [p for p in rig.paths if p in settings["paths"] or not settings["paths"]]
            for level in settings["concurrency"]:
                for path in paths:  # interleaved, so a noisy spell hits every path
                    print(f"  GetVehicle via {path}, concurrency {level} ...", flush=True)
                    measured = rig.measure(path, level, settings["seconds"], settings["warmup"])
                    unary.append(measured.summary())
            results["unary"] = unary
            results["ratios"] = _ratios(unary)
            if settings["unary_only"]:
                results["goals"] = {}
                out.mkdir(parents=True, exist_ok=True)
                report.write_json(results, out / f"{name}.json")
                report.print_report(results)
                return results
            streaming = []
            for path in paths:
                print(f"  ListVehiclesByOwner stream via {path} ...", flush=True)
                streaming.append(
                    rig.stream(path, settings["stream_bytes"], settings["stream_seconds"])
                )
            results["streaming"] = streaming
            if settings["profile"]:
                results["profile"] = _profile(rig, settings, out)
        finally:
            rig.close()
        print("  audit verify over the logs just written ...", flush=True)
        databases = [
            rig.federation.configs[m].parent / "state" / "audit.db" for m in rig.federation.configs
        ]
        results["audit_verify"] = scale.audit_verify([d for d in databases if d.exists()])
        print(
            f"  global configuration with {settings['members']:,} members and"
            f" {settings['services']:,} services ...",
            flush=True,
        )
        results["globalconf"] = scale.globalconf_at_scale(
            workdir / "globalconf", settings["members"], settings["services"]
        )
        results["goals"] = _goals(results)
        out.mkdir(parents=True, exist_ok=True)
        chart_problem = report.write_chart(results, out / f"{name}.png")
        if chart_problem:
            results["skipped"]["chart"] = chart_problem
        report.write_json(results, out / f"{name}.json")
        report.print_report(results)
        print(f"results: {out / f'{name}.json'}")
        return results
    finally:
        if keep:
            print(f"working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _profile(rig: Rig, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """py-spy on both security servers during a concurrency-32 run of Spean."""
    binary = profile.find_py_spy()
    if binary is None:
        rig.skipped["profile"] = "py-spy is not installed (pip install py-spy): no profile"
        return {}
    seconds = max(5.0, settings["seconds"])
    print(f"  profiling both security servers for {seconds:g} s with py-spy ...", flush=True)
    samplers = {}
    for role, pid in rig.security_servers().items():
        path = out / f"profile-{role}.txt"
        samplers[role] = (profile.start_sampling(binary, pid, seconds, path), path)
    time.sleep(0.5)
    rig.measure(SPEAN, max(settings["concurrency"]), seconds, 0.0)
    summary: dict[str, Any] = {}
    for role, (process, path) in samplers.items():
        _, err = process.communicate(timeout=seconds + 60)
        if process.returncode != 0 or not path.exists():
            summary[role] = {"error": err.decode(errors="replace").strip()[-500:]}
        else:
            summary[role] = profile.summarise(path)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The build steps log as they go; the table is the output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    settings = _settings(args)
    try:
        run(settings, args.out, "smoke" if args.smoke else "bench", args.keep)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
