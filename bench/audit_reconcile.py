"""`spean audit reconcile` on two matching synthetic bundles, against a hashlib baseline.

Writes a consumer's and a provider's bundle of N exchanges each (streamed to
the ZIP files, never held in memory): a realistic mix (90% OK, 7% refused
with NOT_FOUND or PERMISSION_DENIED, 3% streaming answers of several
messages), records of ~1.4 kB with two tokens of random base64, hash chained,
checkpointed every 1000 records with a test key (ECDSA P-256); every consumer
record after the provider's first checkpoint witnesses the provider's latest
one. Then, each in a fresh process so that its peak RSS is its own, side by
side in one run:

- baseline: stream both bundles' records from the files and SHA-256 each one
  (what no reconcile can undercut: it must read and hash every record);
- reconcile: `reconcile_files` on the two files (given provider first, so the
  roles are worked out from the bundles), which must find no difference.

Reported: seconds, records/s (records of both sides), peak RSS
(`resource.getrusage` of the measuring process, which only ever held what it
measures; the bundles are written by another), and reconcile's time as a
ratio of the baseline's. `--dir DIR --keep` keeps the bundles for the next
run.

    .venv/bin/python bench/audit_reconcile.py [--exchanges 10000 100000] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVERY = 1000
MOH, MPWT = "KH/GOV/MOH/ss1#w0", "KH/GOV/MPWT/ss1#w0"


def _token(size: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(size)).decode("ascii").rstrip("=")


def generate(exchanges: int, folder: Path) -> tuple[Path, Path]:
    """Write consumer.zip and provider.zip of `exchanges` exchanges into `folder`."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from spean.gateway.audit.bundle import FORMAT, NOTE_SEPARATOR
    from spean.gateway.audit.chain import GENESIS
    from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
    from spean.gateway.audit.merkle import CompactRange, CompactRangeState
    from spean.gateway.audit.record import AuditRecord, Side
    from tests.support.pki import self_signed

    signers = {}
    for origin, member in ((MOH, "KH/GOV/MOH"), (MPWT, "KH/GOV/MPWT")):
        key = ec.generate_private_key(ec.SECP256R1())
        signers[origin] = CheckpointSigner(member, key, self_signed(key, member))
    paths = {MOH: folder / "consumer.zip", MPWT: folder / "provider.zip"}
    archives = {o: zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) for o, p in paths.items()}
    streams = {o: a.open("records.bin", "w", force_zip64=True) for o, a in archives.items()}
    chains: dict[str, list[bytes]] = {MOH: [], MPWT: []}
    heads = dict.fromkeys(paths, GENESIS)
    trees = {o: CompactRange() for o in paths}
    notes: dict[str, list[bytes]] = {MOH: [], MPWT: []}
    previous = dict.fromkeys(paths, 0)
    witness = b""
    base_ns = 1_764_720_000_000_000_000

    def append(origin: str, data: bytes) -> None:
        streams[origin].write(len(data).to_bytes(4, "big") + data)
        heads[origin] = heads[origin].extend(data)
        chains[origin].append(heads[origin].hash)
        tree = trees[origin]
        tree.append_record(data)
        if tree.size % EVERY == 0 or tree.size == exchanges:
            checkpoint = Checkpoint(origin, tree.size, tree.root(), previous[origin], tree.size)
            notes[origin].append(signers[origin].sign(checkpoint).note)
            previous[origin] = tree.size

    for n in range(exchanges):
        if n and n % EVERY == 0:
            witness = notes[MPWT][-1]
        kind = n % 100
        status = "OK" if kind < 90 else ("NOT_FOUND" if kind < 95 else "PERMISSION_DENIED")
        messages = 1 if status == "OK" and kind < 87 else (5 if status == "OK" else 0)
        at = base_ns + n * 1_000_000
        consumer = AuditRecord(
            exchange_id=f"0192c0de-{n >> 32:04x}-4{n >> 16 & 0xFFF:03x}-8000-{n:012x}",
            side=Side.CONSUMER,
            origin=MOH,
            client="KH/GOV/MOH/nhis",
            service="KH/GOV/MPWT/vehicles",
            method="/vehicles.v1.VehicleRegistry/GetVehicle"
            if messages < 5
            else "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner",
            user=f"dr.user-{n % 997}@hospital.example",
            purpose="treatment",
            received_at_ns=at,
            forwarded_at_ns=at + 100_000,
            answered_at_ns=at + 900_000,
            status=status,
            message="" if status == "OK" else "no such vehicle",
            request_sha256=hashlib.sha256(b"req%d" % n).digest(),
            request_size=40,
            response_sha256=hashlib.sha256(b"res%d" % n if status == "OK" else b"").digest(),
            response_size=300 * messages,
            response_messages=messages,
            request_token=_token(300) + "." + _token(64),
            response_token=_token(240) + "." + _token(64),
            latency_us=900,
            witnessed_checkpoint=witness,
        )
        provider = dataclasses.replace(
            consumer,
            side=Side.PROVIDER,
            origin=MPWT,
            received_at_ns=at + 200_000,
            peer_certificate_sha256="ab" * 32,
            witnessed_checkpoint=b"",
        )
        append(MOH, consumer.to_bytes())
        append(MPWT, provider.to_bytes())
    for origin, archive in archives.items():
        streams[origin].close()
        manifest = {
            "format": FORMAT,
            "origin": origin,
            "start": 0,
            "records": exchanges,
            "log_size": exchanges,
            "start_chain": base64.b64encode(GENESIS.hash).decode("ascii"),
            "start_state": CompactRangeState(0, ()).to_dict(),
            "exported_at_ns": time.time_ns(),
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        archive.writestr("chains.bin", b"".join(chains[origin]))
        archive.writestr("checkpoints.txt", b"".join(n + NOTE_SEPARATOR for n in notes[origin]))
        archive.writestr("globalconf.bin", b"")
        archive.writestr("anchor.pem", b"")
        archive.close()
    return paths[MOH], paths[MPWT]


def run_baseline(consumer: Path, provider: Path) -> int:
    from spean.gateway.audit.bundle import iter_bundle_records

    sha = hashlib.sha256
    count = 0
    for path in (consumer, provider):
        for data in iter_bundle_records(path):
            sha(data).digest()
            count += 1
    return count


def run_reconcile(consumer: Path, provider: Path) -> int:
    from spean.gateway.audit.reconcile import reconcile_files

    result = reconcile_files(provider, consumer)
    assert result.ok, result.findings[:5]
    assert result.swapped
    assert result.witnessed_checkpoints > 0 or result.matched < 2 * EVERY
    return result.consumer.records + result.provider.records


def child(what: str, consumer: Path, provider: Path) -> None:
    import spean.gateway.audit.reconcile  # noqa: F401  (imports are not what is timed)

    started = time.perf_counter()
    records = (run_baseline if what == "baseline" else run_reconcile)(consumer, provider)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"records": records, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))


def measure(what: str, consumer: Path, provider: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", what, str(consumer), str(provider)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--exchanges", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dir", type=Path, help="where to write the bundles (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the bundles")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "CONSUMER", "PROVIDER"))
    parser.add_argument("--generate", nargs=2, metavar=("EXCHANGES", "DIR"))
    args = parser.parse_args()
    if args.generate:
        generate(int(args.generate[0]), Path(args.generate[1]))
        return
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="spean-reconcile-bench-"))
    print(f"audit reconcile, {os.cpu_count()} cores; records/s counts both sides' records")
    print(
        f"  {'exchanges/side':>14} {'run':<10} {'seconds':>9} {'records/s':>11} "
        f"{'peak RSS MB':>12} {'x baseline':>10}"
    )
    for exchanges in args.exchanges:
        folder = base / str(exchanges)
        folder.mkdir(parents=True, exist_ok=True)
        consumer, provider = folder / "consumer.zip", folder / "provider.zip"
        if not (consumer.exists() and provider.exists()):
            started = time.perf_counter()
            # In a process of its own: a child's peak RSS counts its parent's at fork.
            command = [sys.executable, __file__, "--generate", str(exchanges), str(folder)]
            subprocess.run(command, check=True)
            made = time.perf_counter() - started
            size = (consumer.stat().st_size + provider.stat().st_size) / 1e6
            print(f"  (generated {exchanges:,} exchanges per side in {made:.0f} s, {size:.0f} MB)")
        rows = {what: measure(what, consumer, provider) for what in ("baseline", "reconcile")}
        for what, row in rows.items():
            ratio = row["seconds"] / rows["baseline"]["seconds"]
            print(
                f"  {exchanges:>14,} {what:<10} {row['seconds']:>9.2f} "
                f"{row['records'] / row['seconds']:>11,.0f} {row['peak_rss_mb']:>12.0f} "
                f"{ratio:>10.2f}"
            )
        if not args.keep and args.dir is None:
            consumer.unlink()
            provider.unlink()


if __name__ == "__main__":
    main()
