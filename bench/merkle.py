"""Benchmark: the audit log's Merkle core against plain hashlib.sha256, in one run.

Run from the repository root::

    .venv/bin/python -m bench.merkle [--leaves 1000000] [--record-size 300] [--repeat 3]

Side by side, on the same data, best of ``--repeat`` runs, one core:

- ``leaf hashing``: `leaf_hashes` over N records of ``--record-size`` bytes,
  against ``hashlib.sha256(record).digest()`` over the same records (the
  floor: the 0x00 prefix is the only difference);
- ``tree root``: `root_from_leaf_hashes` over the N leaf hashes, against the
  N - 1 plain SHA-256 calls a root needs, on node inputs (0x01 || left ||
  right) built before the clock starts;
- ``compact range``: `CompactRange.extend` over the N leaf hashes, then `root()`;
- ``verify structure``: what ``spean audit verify`` does per record for the
  tree (leaf hash + compact range append), one record at a time and in
  batches, in records/s, against the goal of 100,000 records/s per core;
  its baseline is the sum of the two plain rows above;
- inclusion and consistency proof verification, in proofs/s;
- the largest proofs for 10^6 and 10^9 leaves (computed by `proof_size`).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections.abc import Callable

from spean.gateway.audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hashes,
    proof_size,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

GOAL_RECORDS_PER_SECOND = 100_000
BATCH = 10_000  # records per leaf_hashes + extend call in the batched verifier


def _best(operation: Callable[[], object], repeat: int) -> float:
    """Seconds for the fastest of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, count: int, seconds: float, baseline: float | None, unit: str) -> None:
    rate = count / seconds
    if baseline is None:
        print(f"{name:<34}{rate:>14,.0f} {unit:<10}{'':>12}")
    else:
        print(f"{name:<34}{rate:>14,.0f} {unit:<10}{baseline / seconds:>11.2f}x")


def run(leaves: int, record_size: int, repeat: int, proofs: int) -> None:
    rng = random.Random(20240601)
    records = [rng.randbytes(record_size) for _ in range(leaves)]
    sha256 = hashlib.sha256

    print(f"{leaves:,} records of {record_size} bytes, best of {repeat}, one core")
    print(f"{'measurement':<34}{'rate':>14} {'':<10}{'vs plain':>12}")

    plain_records = _best(lambda: [sha256(record).digest() for record in records], repeat)
    _row("plain sha256(record)", leaves, plain_records, None, "records/s")
    hashed = leaf_hashes(records)
    ours = _best(lambda: leaf_hashes(records), repeat)
    _row("leaf_hashes", leaves, ours, plain_records, "records/s")

    node_inputs = [b"\x01" + hashed[i] + hashed[i + 1] for i in range(leaves - 1)]
    plain_nodes = _best(lambda: [sha256(data).digest() for data in node_inputs], repeat)
    _row("plain sha256 x (N-1) node inputs", leaves, plain_nodes, None, "leaves/s")
    root = root_from_leaf_hashes(hashed)
    ours = _best(lambda: root_from_leaf_hashes(hashed), repeat)
    _row("root_from_leaf_hashes", leaves, ours, plain_nodes, "leaves/s")

    def compact_root() -> bytes:
        compact = CompactRange()
        compact.extend(hashed)
        return compact.root()

    assert compact_root() == root
    ours = _best(compact_root, repeat)
    _row("CompactRange extend + root", leaves, ours, plain_nodes, "leaves/s")

    def verify_one_by_one() -> bytes:
        compact = CompactRange()
        append = compact.append_record
        for record in records:
            append(record)
        return compact.root()

    def verify_in_batches() -> bytes:
        compact = CompactRange()
        for start in range(0, leaves, BATCH):
            compact.extend(leaf_hashes(records[start : start + BATCH]))
        return compact.root()

    plain_both = plain_records + plain_nodes
    for name, verify in (
        ("verify structure, append_record", verify_one_by_one),
        (f"verify structure, batches of {BATCH:,}", verify_in_batches),
    ):
        assert verify() == root
        ours = _best(verify, repeat)
        _row(name, leaves, ours, plain_both, "records/s")
        print(
            f"{'':<34}goal {GOAL_RECORDS_PER_SECOND:,} records/s:"
            f" {leaves / ours / GOAL_RECORDS_PER_SECOND:.1f}x the goal"
        )

    # Proof verification against the real tree head. Proof generation is
    # O(n) per proof from raw leaves, so a smaller tree supplies the proofs.
    size = min(leaves, 1 << 16)
    subset = hashed[:size]
    subset_root = root_from_leaf_hashes(subset)
    indexes = [rng.randrange(size) for _ in range(proofs)]
    paths = [(i, inclusion_proof(subset, i)) for i in indexes[: min(proofs, 200)]]
    paths = (paths * (proofs // len(paths) + 1))[:proofs]

    def verify_paths() -> None:
        for index, path in paths:
            verify_inclusion(subset[index], index, size, path, subset_root)

    _row(f"verify_inclusion (size {size:,})", proofs, _best(verify_paths, repeat), None, "proofs/s")
    olds = [rng.randrange(1, size) for _ in range(200)]
    pairs = [(old, consistency_proof(subset, old, size)) for old in olds]
    roots = {old: root_from_leaf_hashes(subset[:old]) for old in olds}
    pairs = (pairs * (proofs // len(pairs) + 1))[:proofs]

    def verify_pairs() -> None:
        for old, path in pairs:
            verify_consistency(old, size, roots[old], subset_root, path)

    _row(f"verify_consistency (to {size:,})", proofs, _best(verify_pairs, repeat), None, "proofs/s")

    print()
    print(f"{'tree size':>15}{'inclusion':>22}{'consistency':>24}")
    for tree_size in (10**6, 10**9):
        bound = proof_size(tree_size)
        print(
            f"{tree_size:>15,}"
            f"{bound.inclusion_hashes:>8} hashes {bound.inclusion_bytes:>5} B"
            f"{bound.consistency_hashes:>10} hashes {bound.consistency_bytes:>5} B"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=1_000_000, help="number of records")
    parser.add_argument("--record-size", type=int, default=300, help="bytes per record")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best counts")
    parser.add_argument("--proofs", type=int, default=20_000, help="proofs per verification run")
    arguments = parser.parse_args()
    if arguments.leaves < 2:
        parser.error("--leaves must be at least 2")
    run(arguments.leaves, arguments.record_size, arguments.repeat, arguments.proofs)


if __name__ == "__main__":
    main()
