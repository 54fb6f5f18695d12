"""Load generators: h2load with pre-framed gRPC bodies, or the Python client.

h2load (Debian's nghttp2-client) is a C HTTP/2 load generator: it costs the
machine far less per request than any Python client, so it is preferred for
unary calls on plaintext entry points. It knows nothing of gRPC: the request
body is framed here (flag byte, 4-byte big-endian length, message), the
gRPC headers are passed with -H, and it counts HTTP statuses only, which are
200 for every gRPC answer, errors included. The caller therefore checks
grpc-status on the server side (`Measurement.server_ok` against
`LoadResult.completed`). Latencies come from h2load's per-request log.
"""

from __future__ import annotations

import json
import shutil
import statistics
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import BenchError, environment, python_argv


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What the load generator saw during the measured window."""

    tool: str
    seconds: float
    completed: int  # answers the generator counted as successful
    failed: int  # transport failures, non-200 statuses, or (Python client) non-OK statuses
    latencies_us: list[int] = field(repr=False)
    bytes: int = 0
    messages: int = 0

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_us:
            return 0.0
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_us) / 1000 if self.latencies_us else 0.0


def find_h2load() -> str | None:
    return shutil.which("h2load")


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def run_h2load(
    binary: str,
    port: int,
    method: str,
    body: bytes,
    metadata: list[tuple[str, str]],
    concurrency: int,
    seconds: float,
    workdir: Path,
    *,
    connections: int = 1,
) -> LoadResult:
    """`concurrency` streams in all, spread over `connections` connections (at most
    one per stream), to http://127.0.0.1:`port``method`."""
    clients = max(1, min(connections, concurrency))
    if concurrency % clients:
        raise BenchError(
            f"concurrency {concurrency} does not spread evenly over {clients} connections"
        )
    data = workdir / "h2load-body.bin"
    data.write_bytes(grpc_frame(body))
    log = workdir / f"h2load-{port}-{concurrency}.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
    argv = [
        binary,
        "-c",
        str(clients),
        "-m",
        str(concurrency // clients),
        "-t",
        "1",
        "-D",
        f"{max(1, round(seconds * 1000))}ms",
    ]
    argv += ["--data", str(data), "--log-file", str(log)]
    for key, value in headers:
        argv += ["-H", f"{key}: {value}"]
    argv.append(f"http://127.0.0.1:{port}{method}")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"h2load failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    latencies: list[int] = []
    ok = failed = 0
    with open(log, encoding="ascii") as lines:
        for line in lines:
            _start, status, elapsed = line.split("\t")[:3]
            if status.strip() == "200":
                ok += 1
                latencies.append(int(elapsed))
            else:
                failed += 1
    measured = _h2load_seconds(done.stdout) or seconds
    return LoadResult("h2load", measured, ok, failed, latencies)


def _h2load_seconds(stdout: str) -> float | None:
    # "finished in 5.00s, 1234.5 req/s, ..."
    for line in stdout.splitlines():
        if line.startswith("finished in "):
            text = line.split()[2].rstrip(",")
            if text.endswith("ms"):
                return float(text[:-2]) / 1000
            if text.endswith("s"):
                return float(text[:-1])
    return None


def run_python_client(
    target: str,
    method: str,
    body: bytes,
    metadata: list[tuple[str, str]],
    concurrency: int,
    seconds: float,
    *,
    warmup: float = 0.5,
    stream: bool = False,
    max_bytes: int = 0,
    cpus: str = "",
) -> LoadResult:
    """Run bench.client in its own process and collect what it saw."""
    argv = python_argv("bench.client", "--target", target, "--method", method)
    argv += ["--body-hex", body.hex(), "--concurrency", str(concurrency)]
    argv += ["--seconds", f"{seconds:g}", "--warmup", f"{warmup:g}"]
    for key, value in metadata:
        argv += ["--metadata", f"{key}={value}"]
    if stream:
        argv.append("--stream")
    if max_bytes:
        argv += ["--max-bytes", str(max_bytes)]
    if cpus:
        argv += ["--cpus", cpus]
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            check=False,
            timeout=seconds + warmup + 600,
            env=environment(),
        )
        if done.returncode != 0:
            err.seek(0)
            raise BenchError(f"bench.client failed: {err.read().decode(errors='replace')[-2000:]}")
    result = json.loads(done.stdout)
    statuses: dict[str, int] = result["statuses"]
    ok = statuses.get("OK", 0)
    return LoadResult(
        "python",
        result["seconds"],
        ok,
        sum(statuses.values()) - ok,
        result["latencies_us"],
        result["bytes"],
        result["messages"],
    )
