"""`spean audit verify` and `reconcile` at national scale, side by side with hashlib.

For each size N (default 10,000, 100,000 and 1,000,000 exchanges per side),
bench/audit_corpus.py writes a consumer's and a provider's bundle of the
demo federation (a realistic mix of OK, streaming and refused exchanges,
real distinct ES256 tokens, witnessed checkpoints), unless `--dir` already
holds them. Then, each measurement in a fresh process, so that its peak RSS
(VmHWM) is its own, on the consumer's bundle:

- baseline: read records.bin from the ZIP in 256 KiB chunks, split the
  records and SHA-256 each one (hashlib): the least any verifier must do;
- structure: `verify_structure` (leaf hashes, hash chain, Merkle root at
  every checkpoint, checkpoint signatures), streamed from the file;
- no-tokens: `verify_bundle(check_tokens=False)`: structure plus the content
  pass (every record decoded canonically, origins, each distinct witnessed
  checkpoint verified once), what `spean audit verify --no-tokens` runs;
- full, jobs=1 and jobs=2: `verify_bundle` with every token, what
  `spean audit verify` runs (jobs=2: two worker processes);
- ecdsa: the cryptography library's raw ES256 verification (one P-256
  signature over a token-sized message, no JWS parsing), as many as the
  bundle holds tokens, up to 20,000: the ceiling full verify can approach;

and on both bundles:

- reconcile baseline: read both files' records and SHA-256 each one;
- reconcile: `reconcile_files(provider, consumer)` (roles worked out from the
  bundles), which must find no difference.

Also `inflate`: records.bin read from the ZIP and nothing else, the floor
under every measurement from a file (the bundle format deflates its members);
and, on request, `no-tokens-whole`: the bundle read whole (`read_bundle`) and
then verified without tokens, as `spean audit verify` did before it streamed;
with `--code DIR` (the spean of another checkout, such as
`git archive <commit> | tar -x -C DIR`) it measures that code, for a
before/after comparison of time and peak RSS:

    .venv/bin/python bench/audit_scale.py --exchanges 1000000 --dir DIR \
        --modes baseline no-tokens-whole --code /tmp/spean-before

Each line: seconds and records/s (wall), records/s per core (records per CPU
second of the measuring process, which the other load on a shared machine
inflates less than the wall time; for jobs=2, whose workers' CPU is not the
measuring process's, the wall rate over the 2 cores), the per-core ratio to
its baseline, and the peak RSS.

    .venv/bin/python bench/audit_scale.py [--exchanges 10000 100000 1000000] [--dir DIR]
        [--modes baseline structure ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

VERIFY_MODES = (
    "inflate",
    "baseline",
    "structure",
    "no-tokens",
    "full-jobs1",
    "full-jobs2",
    "ecdsa",
)
RECONCILE_MODES = ("reconcile-baseline", "reconcile")
CHUNK = 1 << 18


def _hash_records(path: Path) -> int:
    """The baseline: records.bin streamed from the ZIP, each record SHA-256'd."""
    sha = hashlib.sha256
    records = 0
    with zipfile.ZipFile(path) as archive, archive.open("records.bin") as stream:
        buffer = b""
        while block := stream.read(CHUNK):
            buffer += block
            offset, end = 0, len(buffer)
            while offset + 4 <= end:
                stop = offset + 4 + int.from_bytes(buffer[offset : offset + 4], "big")
                if stop > end:
                    break
                sha(buffer[offset + 4 : stop]).digest()
                records += 1
                offset = stop
            buffer = buffer[offset:]
    return records


def _ecdsa(tokens: int) -> int:
    """Raw ES256 verifications: `tokens` P-256 signatures over token-sized messages."""
    key = ec.generate_private_key(ec.SECP256R1())
    message = b"e" * 600
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    algorithm = ec.ECDSA(hashes.SHA256())
    for _ in range(tokens):
        public.verify(signature, message, algorithm)
    return tokens


def child(mode: str, consumer: Path, provider: Path) -> None:
    """One measurement in this (fresh) process; prints one JSON line. Imports come
    before the clock starts (a fixed ~0.5 s, not a cost per record)."""
    from spean.gateway.audit import bundle as bundles
    from spean.gateway.audit.reconcile import reconcile_files
    from spean.gateway.audit.verify import load_configuration, verify_structure
    from spean.gateway.audit.verify_parallel import verify_bundle
    from spean.gateway.identifiers import origin_server

    # The whole-bundle mode also runs on code from before streaming (`--code`),
    # which has no open_bundle.
    open_bundle = getattr(bundles, "open_bundle", None)
    extra: dict[str, object] = {"code": str(Path(bundles.__file__).resolve().parents[2])}
    started = time.perf_counter()
    cpu = time.process_time()
    if mode == "no-tokens-whole":
        report = verify_bundle(bundles.read_bundle(consumer), check_tokens=False)
        assert report.ok, report.problems[:3]
        records = report.records
    elif mode == "inflate":
        records = open_bundle(consumer).frame.declared_records or 0
        with zipfile.ZipFile(consumer) as archive, archive.open("records.bin") as stream:
            while stream.read(CHUNK):
                pass
    elif mode == "baseline":
        records = _hash_records(consumer)
    elif mode == "reconcile-baseline":
        records = _hash_records(consumer) + _hash_records(provider)
    elif mode == "ecdsa":
        declared = open_bundle(consumer).frame.declared_records or 0
        started, cpu = time.perf_counter(), time.process_time()
        records = _ecdsa(min(20_000, 2 * declared))
    elif mode == "reconcile":
        result = reconcile_files(provider, consumer)
        assert result.ok, result.findings[:3]
        assert result.swapped
        records = result.consumer.records + result.provider.records
        extra |= {"matched": result.matched, "witnessed": result.witnessed_checkpoints}
    elif mode == "structure":
        source = open_bundle(consumer)
        conf, _ = load_configuration(source.frame, None)
        info = conf.member(origin_server(source.frame.origin).member)
        assert info is not None
        verified, problems = verify_structure(source, info.signing_certificates)
        assert not problems, problems[:3]
        records = source.frame.declared_records or 0
        extra |= {"checkpoints": verified}
    else:
        jobs = 2 if mode == "full-jobs2" else 1
        report = verify_bundle(open_bundle(consumer), check_tokens=mode != "no-tokens", jobs=jobs)
        assert report.ok, report.problems[:3]
        records = report.records
        extra |= {"tokens": report.tokens_verified, "checkpoints": report.checkpoints}
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    result = {"records": records, "seconds": seconds, "cpu": cpu, "rss_mb": _peak_rss_mb()}
    print(json.dumps(result | extra))


def _peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; getrusage's maxrss survives
    execve, so it would report the bench's own peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run(mode: str, consumer: Path, provider: Path, code: Path | None) -> dict[str, float]:
    env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(consumer), str(provider)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, help="where the bundles are (kept; made if missing)")
    parser.add_argument("--modes", nargs="+", default=[*VERIFY_MODES, *RECONCILE_MODES])
    parser.add_argument(
        "--code",
        type=Path,
        help="run the measurements with the spean of this checkout (e.g. an export of an "
        "older commit), for a before/after comparison; modes baseline and no-tokens-whole",
    )
    args = parser.parse_args()
    from bench.audit_corpus import generate

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        root = args.dir or Path(scratch)
        for exchanges in args.exchanges:
            folder = root / str(exchanges)
            consumer, provider = folder / "consumer.zip", folder / "provider.zip"
            if not (consumer.exists() and provider.exists()):
                started = time.perf_counter()
                generate(exchanges, folder)
                made = f"generated in {time.perf_counter() - started:.0f} s"
            else:
                made = f"from {folder}"
            size = consumer.stat().st_size / 1e6
            print(f"{exchanges:,} exchanges per side ({made}; consumer.zip {size:.0f} MB)")
            baselines: dict[str, float] = {}
            for mode in args.modes:
                run = _run(mode, consumer, provider, args.code)
                rate = run["records"] / run["seconds"]
                # Per core: records per CPU second of this process, which other
                # engineers' load on the machine does not inflate as it does the
                # wall time; for jobs=2 (the workers' CPU is not this process's)
                # the wall rate over the two cores it keeps busy.
                per_core = (
                    rate / min(cores, 2) if mode == "full-jobs2" else run["records"] / run["cpu"]
                )
                group = "reconcile" if mode.startswith("reconcile") else "verify"
                if mode in ("baseline", "reconcile-baseline"):
                    baselines[group] = per_core
                ratio = per_core / baselines[group] if group in baselines else float("nan")
                unit = "verifies/s" if mode == "ecdsa" else "records/s"
                if args.code is not None:
                    print(f"  (code of {run['code']})")
                print(
                    f"  {mode:<19} {run['seconds']:>8.2f} s {rate:>10,.0f} {unit:<10} "
                    f"{per_core:>10,.0f} per core  x{ratio:>6.3f}  "
                    f"peak RSS {run['rss_mb']:>5.0f} MB",
                    flush=True,
                )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        # The installed spean, or the one `--code` put on PYTHONPATH: never the
        # checkout this file is in, which would shadow it.
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        main()
