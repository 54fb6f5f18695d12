"""`spean audit verify` records per second on one core, for the log's structure.

Structure = what proves the log was not altered: leaf hash of every record,
the stored hash chain, the Merkle root recomputed at every checkpoint, and
every checkpoint's signature. Measured against two baselines in the same run,
over the same realistic records (~1.4 kB, two JWS tokens):

- floor: SHA-256 of each record and nothing else (no verifier can do less);
- chain: the foundation's hash-chain-only check (`verify_chain`), which
  proves order but not against a signed size.

Also reported: decoding every record canonically (the content pass without
tokens), token signature verification (ES256, per token), and the largest
proof sizes for 10^6 and 10^9 leaves.

Last, the whole `verify_bundle` with token signatures, over a log of the demo
federation with real tokens (MoH's request, MPWT's response) and its real
signed configuration, with `jobs=1` (in-process) and `jobs=2` (two worker
processes verifying tokens) side by side, pool start included.

    .venv/bin/python bench/audit_verify.py [--records 200000] [--every 1000] [--repeat 3]
        [--token-records 20000]

`--files 10000,100000` instead measures what an auditor runs, end to end from
a bundle file: a log of the demo federation with real tokens of each size is
written as a bundle, and each measurement runs in a fresh process (so that
its peak RSS is its own), side by side in the same run:

- baseline: read records.bin from the ZIP and SHA-256 every record (hashlib);
- structure: `read_bundle` + `verify_structure` (chain, tree, checkpoints);
- no tokens: `read_bundle` + `verify_bundle(check_tokens=False)`;
- full, jobs=1 and jobs=2: `read_bundle` + `verify_bundle` with tokens.

Each line gives records/s, records/s per core (divided by the processes
used), the ratio to the baseline, and the peak RSS of the measuring process
(for jobs=2, the main process; each worker holds one chunk of records).

    .venv/bin/python bench/audit_verify.py --files 10000,100000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.chain import GENESIS, verify_chain
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
from spean.gateway.audit.merkle import CompactRange, CompactRangeState, proof_size
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import verify_structure
from spean.gateway.audit.verify_parallel import verify_bundle
from tests.support.pki import self_signed

ORIGIN = "KH/GOV/MOH/ss1#bench"


def make_record(n: int) -> bytes:
    token = "eyJhbGciOiJFUzI1NiJ9." + "x" * 420 + "." + "s" * 86
    return AuditRecord(
        exchange_id=f"0192c0de-0000-4000-8000-{n:012d}",
        side=Side.CONSUMER,
        origin=ORIGIN,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        user="EE:doctor-4711",
        purpose="case 2024/117",
        received_at_ns=1_732_492_800_000_000_000 + n,
        forwarded_at_ns=1_732_492_800_000_100_000 + n,
        answered_at_ns=1_732_492_800_000_900_000 + n,
        status="OK",
        request_sha256=hashlib.sha256(b"req%d" % n).digest(),
        request_size=40,
        response_sha256=hashlib.sha256(b"res%d" % n).digest(),
        response_size=300,
        response_messages=1,
        request_token=token,
        response_token=token,
        peer_certificate_sha256="ab" * 32,
        latency_us=900,
    ).to_bytes()


def build(records: int, every: int) -> tuple[Bundle, CheckpointSigner, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key)
    signer = CheckpointSigner("KH/GOV/MOH", key, cert)
    data = tuple(make_record(n) for n in range(records))
    chains = []
    head = GENESIS
    tree = CompactRange()
    notes = []
    previous = 0
    for n, record in enumerate(data):
        head = head.extend(record)
        chains.append(head.hash)
        tree.append_record(record)
        if (n + 1) % every == 0 or n + 1 == records:
            notes.append(signer.sign(Checkpoint(ORIGIN, tree.size, tree.root(), previous, n)).note)
            previous = tree.size
    bundle = Bundle(
        origin=ORIGIN,
        start=0,
        records=data,
        chains=tuple(chains),
        start_chain=GENESIS.hash,
        start_state=CompactRangeState(0, ()),
        checkpoints=tuple(notes),
        globalconf=b"",
        anchor_pem=b"",
        log_size=records,
        exported_at_ns=0,
    )
    return bundle, signer, cert


def rate(label: str, records: int, repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    per_second = records / statistics.median(times)
    print(f"  {label:<44} {per_second:>12,.0f} records/s")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=1000, help="records per checkpoint")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--token-records", type=int, default=20_000, help="records (2 tokens each) for jobs=1/2"
    )
    args = parser.parse_args()
    bundle, _, cert = build(args.records, args.every)
    n = args.records
    size = sum(len(r) for r in bundle.records) / n
    print(
        f"audit verify, one core: {n:,} records of {size:.0f} B, "
        f"{len(bundle.checkpoints)} checkpoints (every {args.every}), median of {args.repeat}"
    )

    def floor() -> None:
        sha = hashlib.sha256
        for record in bundle.records:
            sha(record).digest()

    def chain() -> None:
        verify_chain(zip(range(n), bundle.records, bundle.chains, strict=True))

    def structure() -> None:
        verified, problems = verify_structure(bundle, (cert,))
        assert not problems, problems
        assert verified == len(bundle.checkpoints)

    def decode() -> None:
        for record in bundle.records:
            AuditRecord.from_bytes(record)

    base = rate("floor: SHA-256 of each record", n, args.repeat, floor)
    chained = rate("baseline: hash chain only (verify_chain)", n, args.repeat, chain)
    full = rate("structure: chain + Merkle + checkpoints", n, args.repeat, structure)
    rate("content: canonical decode of every record", n, args.repeat, decode)
    print(f"  structure / floor = {full / base:.2f}, structure / chain-only = {full / chained:.2f}")

    from spean.gateway.identifiers import MemberId, SubsystemId
    from spean.gateway.tokens import RequestClaims, TokenSigner, VerifyingKey, verify_request

    key = ec.generate_private_key(ec.SECP256R1())
    member_cert = self_signed(key)
    token_signer = TokenSigner(key, member_cert)
    now = int(time.time())
    claims = RequestClaims(
        issuer=MemberId.parse("KH/GOV/MOH"),
        client=SubsystemId.parse("KH/GOV/MOH/nhis"),
        audience=SubsystemId.parse("KH/GOV/MPWT/vehicles"),
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        exchange_id="0192c0de-0000-4000-8000-000000000001",
        issued_at=now,
        expires_at=now + 60,
        request_sha256=bytes(32),
    )
    token = token_signer.sign_request(claims)
    verifying = VerifyingKey(MemberId.parse("KH/GOV/MOH"), key.public_key(), "ES256")
    tokens = 2000
    rate(
        "tokens: ES256 request token verification",
        tokens,
        args.repeat,
        lambda: [verify_request(token, lambda kid: verifying, now=now) for _ in range(tokens)],
    )
    parallel_tokens(args.token_records, args.repeat)
    for leaves in (10**6, 10**9):
        sizes = proof_size(leaves)
        print(
            f"  proofs for {leaves:>13,} leaves: inclusion {sizes.inclusion_hashes} hashes "
            f"({sizes.inclusion_bytes} B), consistency {sizes.consistency_hashes} hashes "
            f"({sizes.consistency_bytes} B)"
        )


def parallel_tokens(records: int, repeat: int) -> None:
    """Whole `verify_bundle` (structure + content + 2 tokens per record), jobs=1 vs jobs=2."""
    from tests.support.honest_log import build_log

    with tempfile.TemporaryDirectory() as folder:
        bundle = build_log(Path(folder), records).bundle
    print(f"audit verify with tokens: {records:,} records, {2 * records:,} ES256 tokens")
    rates = {}
    for jobs in (1, 2):

        def run(jobs: int = jobs) -> None:
            report = verify_bundle(bundle, jobs=jobs)
            assert report.ok, report.problems
            assert report.tokens_verified == 2 * records

        rates[jobs] = rate(f"verify_bundle, tokens on jobs={jobs}", records, repeat, run)
    print(f"  jobs=2 / jobs=1 = {rates[2] / rates[1]:.2f}")


# -- end to end, from a bundle file, one process per measurement ------------------------------

MODES = ("baseline", "structure", "no-tokens", "full-jobs1", "full-jobs2")


def child(mode: str, path: Path) -> None:
    """Run one measurement on the bundle at `path` in this (fresh) process; print JSON."""
    import json
    import struct
    import zipfile

    started = time.perf_counter()
    records = 0
    if mode == "baseline":
        length = struct.Struct(">I")
        sha = hashlib.sha256
        with zipfile.ZipFile(path) as archive, archive.open("records.bin") as blob:
            while header := blob.read(4):
                (size,) = length.unpack(header)
                sha(blob.read(size)).digest()
                records += 1
    else:
        from spean.gateway.audit.bundle import read_bundle
        from spean.gateway.audit.verify import load_configuration
        from spean.gateway.audit.verify import verify_bundle as verify_in_process
        from spean.gateway.identifiers import origin_server

        bundle = read_bundle(path)
        records = len(bundle.records)
        if mode == "structure":
            conf, _ = load_configuration(bundle, None)
            info = conf.member(origin_server(bundle.origin).member)
            assert info is not None
            _, problems = verify_structure(bundle, info.signing_certificates)
            assert not problems, problems
        elif mode == "no-tokens":
            report = verify_in_process(bundle, check_tokens=False)
            assert report.ok, report.problems[:3]
        else:
            report = verify_bundle(bundle, jobs=1 if mode == "full-jobs1" else 2)
            assert report.ok, report.problems[:3]
            assert report.tokens_verified == 2 * records
    seconds = time.perf_counter() - started
    print(json.dumps({"records": records, "seconds": seconds, "rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; getrusage's maxrss survives execve,
    so it would report the bench's own peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def files(sizes: list[int], repeat: int) -> None:
    """End-to-end verification of bundle files of each size, every mode in its own process."""
    import json
    import subprocess

    from spean.gateway.audit.bundle import write_bundle
    from tests.support.honest_log import build_log

    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = Path(folder) / f"log-{size}.zip"
            write_bundle(build_log(Path(folder) / f"fed-{size}", size).bundle, path)
            gc.collect()
            megabytes = path.stat().st_size / 1e6
            print(
                f"bundle of {size:,} records with real tokens ({megabytes:.1f} MB), "
                f"median of {repeat}"
            )
            baseline = 0.0
            for mode in MODES:
                runs = []
                for _ in range(repeat):
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", mode, str(path)],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    runs.append(json.loads(out.strip().splitlines()[-1]))
                run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
                per_second = run["records"] / run["seconds"]
                cores = 2 if mode == "full-jobs2" else 1
                baseline = baseline or per_second
                print(
                    f"  {mode:<11} {per_second:>11,.0f} records/s {per_second / cores:>11,.0f} "
                    f"per core  x{per_second / baseline:>6.3f} baseline  "
                    f"peak RSS {run['rss_mb']:.0f} MB",
                    flush=True,
                )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--files":
        files(
            [int(n) for n in sys.argv[2].split(",")], int(sys.argv[4]) if len(sys.argv) > 4 else 1
        )
    else:
        main()
