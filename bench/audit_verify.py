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
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
