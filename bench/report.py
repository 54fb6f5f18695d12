"""Presenting a run: the table on the terminal, the JSON file, the PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def unary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in results["unary"]:
        cpu = " ".join(f"{k}={v:.0f}" for k, v in row["cpu_us_per_exchange"].items())
        errors = sum(row["server_errors"].values()) + row["generator_failed"]
        rows.append(
            [
                row["label"],
                str(row["concurrency"]),
                f"{row['throughput_rps']:,.0f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{row['cpu_us_per_exchange_total']:,.0f}",
                cpu,
                f"{row['server_ok']:,}/{errors}",
            ]
        )
    return rows


HEADERS = ["path", "conc", "req/s", "p50 ms", "p99 ms", "CPU µs/x", "CPU µs/x by process", "ok/err"]


def print_report(results: dict[str, Any]) -> None:
    """The unary table, ratios, streaming, audit and configuration lines."""
    lines_after = _summary_lines(results)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [
            max(len(h), *(len(r[i]) for r in unary_rows(results))) for i, h in enumerate(HEADERS)
        ]
        print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)))
        for row in unary_rows(results):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        for line in lines_after:
            print(line)
        return
    table = Table(title="GetVehicle, side by side (one run, one machine)")
    for header in HEADERS:
        table.add_column(
            header, justify="left" if header.startswith(("path", "CPU µs/x by")) else "right"
        )
    for row in unary_rows(results):
        table.add_row(*row)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    for line in lines_after:
        console.print(line, highlight=False)


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for key, ratio in results["ratios"].items():
        parts = [f"{name} {value}" for name, value in ratio.items()]
        lines.append(f"ratios at {key}: " + ", ".join(parts))
    for row in results.get("streaming", []):
        lines.append(
            f"stream {row['label']}: {row['bytes'] / 1e6:,.1f} MB in {row['seconds']:.2f} s,"
            f" {row['mb_per_s']} MB/s, {row['messages_per_s']:,.0f} msg/s,"
            f" RSS growth MiB {row['rss_growth_mib']}"
        )
    audit = results.get("audit_verify") or {}
    if audit.get("records"):
        lines.append(
            f"audit verify over {audit['records']:,} real records: structure"
            f" {audit['structure_records_per_s']:,}/s (chain {audit['chain_records_per_s']:,}/s,"
            f" tree {audit['tree_records_per_s']:,}/s), with decoding"
            f" {audit['structure_and_decode_records_per_s']:,}/s"
        )
    conf = results.get("globalconf") or {}
    if conf:
        lines.append(
            f"global configuration, {conf['members']:,} members, {conf['services']:,} services,"
            f" {conf['signed_bytes'] / 1e6:.1f} MB: publish {conf['publish_s']} s,"
            f" load+verify {conf['load_verify_s']} s, lookups ns {conf['lookup_ns']}"
        )
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    return lines


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Throughput and latency bars per path and concurrency; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    rows = results["unary"]
    levels = sorted({r["concurrency"] for r in rows})
    paths = list(dict.fromkeys(r["label"] for r in rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(paths))
    for index, label in enumerate(paths):
        mine = {r["concurrency"]: r for r in rows if r["label"] == label}
        xs = [i + index * width for i in range(len(levels))]
        left.bar(
            xs, [mine[c]["throughput_rps"] if c in mine else 0 for c in levels], width, label=label
        )
        right.bar(xs, [mine[c]["p50_ms"] if c in mine else 0 for c in levels], width, label=label)
        right.scatter(
            xs,
            [mine[c]["p99_ms"] if c in mine else 0 for c in levels],
            marker="_",
            s=200,
            color="black",
        )
    for axis, title in ((left, "throughput, requests/s"), (right, "latency ms: bar p50, dash p99")):
        axis.set_xticks([i + width * (len(paths) - 1) / 2 for i in range(len(levels))])
        axis.set_xticklabels([f"concurrency {c}" for c in levels])
        axis.set_title(title)
    left.legend(fontsize="small")
    figure.suptitle(f"GetVehicle side by side, {results['meta']['started']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
