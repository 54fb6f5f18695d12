"""The Merkle log core against the RFC's own definitions and published vectors.

Three independent checks:
- a brute-force reference written straight from RFC 9162 2.1 (recursive MTH,
  PATH, PROOF/SUBPROOF over raw records), compared for every tree size up to
  130, every leaf and every (old, new) size pair, with tampered proofs that
  must all fail;
- test vectors copied from transparency-dev/merkle (data/merkle_vectors.json
  names the files and commits);
- hypothesis: random sizes up to 2000, random data, the compact range against
  the batch root and its stored state round trip.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    CompactRangeState,
    ProofError,
    consistency_proof,
    consistency_proof_ranges,
    inclusion_proof,
    inclusion_proof_ranges,
    leaf_hash,
    leaf_hashes,
    node_hash,
    proof_size,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from spean.gateway.errors import InvalidArgument, SpeanError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "merkle_vectors.json").read_text(encoding="utf-8")
)
SWEEP = 130  # exhaustive comparison with the reference for every size up to this
MAX_RANDOM = 2000
RECORDS = [f"exchange {i:05d} KH/GOV/MOH/nhis".encode() for i in range(MAX_RANDOM + 1)]
HASHES = leaf_hashes(RECORDS)

# No example database in the working tree; no per-example deadline on slow CI.
quick = settings(database=None, deadline=None, max_examples=60)


# -- reference: RFC 9162 2.1 definitions, verbatim ----------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF over a fixed list of records, by the RFC's recursion.

    Subtree hashes are memoised by leaf range only to keep the sweep fast;
    the definitions themselves are unchanged.
    """

    def __init__(self, records: list[bytes]) -> None:
        self.records = records
        self.mth = cache(self._mth)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return _sha256(b"")  # MTH({}) = HASH()
        if n == 1:
            return _sha256(b"\x00" + self.records[start])  # MTH({d(0)}) = HASH(0x00 || d(0))
        k = _largest_power_of_two_below(n)
        return _sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []  # PATH(0, {d(0)}) = {}
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)  # PROOF(m, D[n]) = SUBPROOF(m, D[n], true)

    def subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, start, start + k, b), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]


REFERENCE = Reference(RECORDS)


def _flip(value: bytes, position: int) -> bytes:
    position %= len(value) if value else 1
    return value[:position] + bytes([value[position] ^ 0x10]) + value[position + 1 :]


def _root(size: int) -> bytes:
    return REFERENCE.mth(0, size)


@cache
def _inclusion(size: int, index: int) -> list[bytes]:
    """Our proof, generated once for the sweep and the tamper test."""
    return inclusion_proof(HASHES[:size], index)


@cache
def _consistency(old_size: int, new_size: int) -> list[bytes]:
    return consistency_proof(HASHES, old_size, new_size)


def _verifies(verify: Callable[..., None], *arguments: Any) -> bool:
    """True if `verify` accepts; only ProofError counts as a refusal."""
    try:
        verify(*arguments)
    except ProofError:
        return False
    return True


# -- exhaustive sweep against the reference ---------------------------------------


def test_roots_match_reference_for_every_size() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size in range(1, SWEEP + 1):
        assert root_from_leaf_hashes(HASHES[:size]) == _root(size), size


def test_every_inclusion_proof_matches_reference_and_verifies() -> None:
    for size in range(1, SWEEP + 1):
        root = _root(size)
        for index in range(size):
            proof = _inclusion(size, index)
            assert proof == REFERENCE.path(index, 0, size), (size, index)
            verify_inclusion(HASHES[index], index, size, proof, root)


def test_every_consistency_proof_matches_reference_and_verifies() -> None:
    for new_size in range(1, SWEEP + 1):
        for old_size in range(1, new_size + 1):
            proof = _consistency(old_size, new_size)
            assert proof == REFERENCE.proof(old_size, new_size), (old_size, new_size)
            verify_consistency(old_size, new_size, _root(old_size), _root(new_size), proof)


def _inclusion_tampers(
    index: int, size: int, proof: list[bytes]
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """(what, leaf hash, index, size, proof, root) variants that must not verify."""
    leaf, root = HASHES[index], _root(size)
    variants = [
        ("wrong leaf", HASHES[index + 1], index, size, proof, root),
        ("wrong root", leaf, index, size, proof, _root(size + 1)),
        ("truncated leaf hash", leaf[:-1], index, size, proof, root),
        ("proof too long", leaf, index, size, [*proof, root], root),
        ("proof with a hash in front", leaf, index, size, [leaf, *proof], root),
        # A proof for (index, size) against the real tree head of another size.
        ("size + 1", leaf, index, size + 1, proof, _root(size + 1)),
    ]
    if index + 1 < size:
        variants.append(("index + 1", leaf, index + 1, size, proof, root))
    if index > 0:
        variants.append(("index - 1", leaf, index - 1, size, proof, root))
    if index < size - 1:
        variants.append(("size - 1", leaf, index, size - 1, proof, _root(size - 1)))
    if proof:
        variants.append(("proof too short", leaf, index, size, proof[:-1], root))
        variants.append(("proof missing its first hash", leaf, index, size, proof[1:], root))
        variants.append(("proof reversed", leaf, index, size, proof[::-1], root))
    for position, value in enumerate(proof):
        tampered = list(proof)
        tampered[position] = _flip(value, position)
        variants.append((f"byte flipped in hash {position}", leaf, index, size, tampered, root))
    return variants


def test_tampered_inclusion_proofs_fail_for_every_size_and_index() -> None:
    accepted: list[str] = []
    for size in range(1, SWEEP + 1):
        for index in range(size):
            proof = _inclusion(size, index)
            for what, leaf, at, claimed, bad_proof, root in _inclusion_tampers(index, size, proof):
                if what == "proof reversed" and bad_proof == proof:
                    continue  # a one-hash proof reversed is itself
                if _verifies(verify_inclusion, leaf, at, claimed, bad_proof, root):
                    accepted.append(f"{what}: size {size}, index {index}")
    assert accepted == []


def test_tampered_consistency_proofs_fail_for_every_size_pair() -> None:
    accepted: list[str] = []
    for new_size in range(2, SWEEP + 1):
        new_root = _root(new_size)
        for old_size in range(1, new_size):
            old_root = _root(old_size)
            proof = _consistency(old_size, new_size)
            variants: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
                ("old size - 1", old_size - 1, new_size, _root(old_size - 1), new_root, proof),
                ("old size + 1", old_size + 1, new_size, _root(old_size + 1), new_root, proof),
                ("new size + 1", old_size, new_size + 1, old_root, _root(new_size + 1), proof),
                ("swapped roots", old_size, new_size, new_root, old_root, proof),
                ("forked old root", old_size, new_size, _flip(old_root, 3), new_root, proof),
                ("forked new root", old_size, new_size, old_root, _flip(new_root, 3), proof),
                ("empty proof", old_size, new_size, old_root, new_root, []),
                ("proof too long", old_size, new_size, old_root, new_root, [*proof, new_root]),
                ("hash in front", old_size, new_size, old_root, new_root, [proof[0], *proof]),
                ("proof too short", old_size, new_size, old_root, new_root, proof[:-1]),
            ]
            if new_size - 1 > old_size:
                variants.append(
                    ("new size - 1", old_size, new_size - 1, old_root, _root(new_size - 1), proof)
                )
            for position, value in enumerate(proof):
                flipped = [*proof[:position], _flip(value, position), *proof[position + 1 :]]
                what = f"byte flipped in hash {position}"
                variants.append((what, old_size, new_size, old_root, new_root, flipped))
            for what, old, new, root1, root2, bad_proof in variants:
                if _verifies(verify_consistency, old, new, root1, root2, bad_proof):
                    accepted.append(f"{what}: {old_size} -> {new_size}")
    assert accepted == []


# -- published vectors (transparency-dev/merkle) -----------------------------------


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_hasher_vectors() -> None:
    hasher = VECTORS["hasher"]
    assert EMPTY_ROOT.hex() == hasher["empty_root_hex"]
    for case in hasher["leaves"]:
        assert leaf_hash(case["data_ascii"].encode()).hex() == case["hash_hex"], case["desc"]
    for case in hasher["nodes"]:
        got = node_hash(case["left_ascii"].encode(), case["right_ascii"].encode())
        assert got.hex() == case["hash_hex"], case["desc"]


def test_golden_tree_roots_nodes_and_compact_ranges() -> None:
    golden = VECTORS["golden_tree"]
    hashes = leaf_hashes(bytes.fromhex(data) for data in golden["leaf_inputs_hex"])
    for size, want in enumerate(golden["root_hashes_hex"]):
        assert root_from_leaf_hashes(hashes[:size]).hex() == want, size
    for level, row in enumerate(golden["node_hashes_hex"]):
        for index, want in enumerate(row):
            subtree = hashes[index << level : (index + 1) << level]
            assert root_from_leaf_hashes(subtree).hex() == want, (level, index)
    compact = CompactRange()
    for size, refs in enumerate(golden["compact_trees"]):
        if size:
            compact.append(hashes[size - 1])
        want = tuple(bytes.fromhex(golden["node_hashes_hex"][lvl][idx]) for lvl, idx in refs)
        assert compact.state().hashes == want, size
        assert compact.root().hex() == golden["root_hashes_hex"][size], size


def test_verify_test_proofs_are_generated_and_verify() -> None:
    vectors = VECTORS["verify_test"]
    hashes = leaf_hashes(bytes.fromhex(data) for data in vectors["leaves_hex"])
    roots = [bytes.fromhex(root) for root in vectors["roots_hex"]]
    for case in vectors["inclusion_proofs"]:
        index, size = case["leaf"] - 1, case["size"]
        want = [bytes.fromhex(h) for h in case["proof_hex"]]
        assert inclusion_proof(hashes[:size], index) == want, case
        verify_inclusion(hashes[index], index, size, want, roots[size - 1])
    for case in vectors["consistency_proofs"]:
        old, new = case["size1"], case["size2"]
        want = [bytes.fromhex(h) for h in case["proof_hex"]]
        assert consistency_proof(hashes, old, new) == want, case
        verify_consistency(old, new, roots[old - 1], roots[new - 1], want)


def test_golden_roots_of_two_byte_leaves() -> None:
    golden = VECTORS["golden_roots"]
    largest = max(case["size"] for case in golden["cases"])
    hashes = leaf_hashes(bytes([i & 0xFF, (i >> 8) & 0xFF]) for i in range(largest))
    compact = CompactRange()
    for case in sorted(golden["cases"], key=lambda case: case["size"]):
        size = case["size"]
        compact.extend(hashes[compact.size : size])
        assert base64.b64encode(root_from_leaf_hashes(hashes[:size])).decode() == case["root_b64"]
        assert base64.b64encode(compact.root()).decode() == case["root_b64"], size
        for level, index, want in case.get("nodes", []):
            start, end = index << level, min((index + 1) << level, size)
            assert root_from_leaf_hashes(hashes[start:end]) == _b64(want), (size, level, index)


def _ranges(ids: list[list[int]], rehash: list[int] | None, size: int) -> list[tuple[int, int]]:
    spans = [(index << level, min((index + 1) << level, size)) for level, index in ids]
    if rehash is None:
        return spans
    begin, end = rehash
    group = spans[begin:end]
    merged = (min(start for start, _ in group), max(stop for _, stop in group))
    return [*spans[:begin], merged, *spans[end:]]


def test_inclusion_proof_shapes() -> None:
    for case in VECTORS["proof_shapes"]["inclusion"]:
        if case.get("error"):
            with pytest.raises(InvalidArgument):
                inclusion_proof_ranges(case["index"], case["size"])
            continue
        want = _ranges(case["ids"], case.get("rehash"), case["size"])
        assert inclusion_proof_ranges(case["index"], case["size"]) == want, case


def test_consistency_proof_shapes() -> None:
    for case in VECTORS["proof_shapes"]["consistency"]:
        if case.get("error"):
            with pytest.raises(InvalidArgument):
                consistency_proof_ranges(case["size1"], case["size2"])
            continue
        want = _ranges(case["ids"], case.get("rehash"), case["size2"])
        assert consistency_proof_ranges(case["size1"], case["size2"]) == want, case


def _golden_hashes() -> list[bytes]:
    return leaf_hashes(bytes.fromhex(data) for data in VECTORS["golden_tree"]["leaf_inputs_hex"])


@pytest.mark.parametrize(
    "entry",
    VECTORS["testdata_inclusion"],
    ids=lambda entry: entry["path"].removeprefix("testdata/"),
)
def test_testdata_inclusion(entry: dict[str, Any]) -> None:
    vector = entry["vector"]
    proof = [_b64(h) for h in vector["proof"] or []]
    arguments = (_b64(vector["leafHash"]), vector["leafIdx"], vector["treeSize"], proof)
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments, _b64(vector["root"]))
        return
    verify_inclusion(*arguments, _b64(vector["root"]))
    hashes = _golden_hashes()[: vector["treeSize"]]
    assert inclusion_proof(hashes, vector["leafIdx"]) == proof
    assert root_from_leaf_hashes(hashes) == _b64(vector["root"])


@pytest.mark.parametrize(
    "entry",
    VECTORS["testdata_consistency"],
    ids=lambda entry: entry["path"].removeprefix("testdata/"),
)
def test_testdata_consistency(entry: dict[str, Any]) -> None:
    vector = entry["vector"]
    proof = [_b64(h) for h in vector["proof"] or []]
    arguments = (vector["size1"], vector["size2"], _b64(vector["root1"]), _b64(vector["root2"]))
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments, proof)
        return
    verify_consistency(*arguments, proof)
    assert consistency_proof(_golden_hashes(), vector["size1"], vector["size2"]) == proof


# -- errors and their reasons ---------------------------------------------------


def test_proof_error_is_an_invalid_argument_spean_error() -> None:
    with pytest.raises(ProofError) as caught:
        verify_inclusion(HASHES[0], 0, 1, [], EMPTY_ROOT)
    assert isinstance(caught.value, SpeanError)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ((HASHES[0], 8, 8, [], _root(8)), "leaf index 8 is outside a tree of 8 leaves"),
        ((HASHES[0], 0, 0, [], EMPTY_ROOT), "tree size 0 has no leaves"),
        ((HASHES[0], -1, 8, [], _root(8)), "leaf index must be a non-negative integer"),
        ((HASHES[0][:31], 0, 2, [HASHES[1]], _root(2)), "leaf hash must be 32 bytes, got 31"),
        ((HASHES[0], 0, 2, [b""], _root(2)), "hash 0 must be 32 bytes, got 0"),
        ((HASHES[0], 0, 8, [HASHES[1]], _root(8)), "must hold 3 hashes, got 1"),
        ((HASHES[0], 0, 2, [HASHES[2]], _root(2)), "leads to root"),
    ],
)
def test_inclusion_failure_reasons(arguments: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_inclusion(*arguments)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ((5, 4, _root(5), _root(4), []), "old size 5 is larger than new size 4"),
        ((4, 4, _root(4), _root(5), []), "two different roots for tree size 4"),
        ((4, 4, _root(4), _root(4), [HASHES[0]]), "between equal sizes 4 must be empty"),
        ((0, 4, _root(1), _root(4), []), "is not the empty-tree hash"),
        ((0, 4, EMPTY_ROOT, _root(4), [HASHES[0]]), "from size 0 must be empty"),
        ((0, 0, _root(1), _root(1), []), "is not the empty-tree hash"),
        ((0, 0, EMPTY_ROOT, _root(1), []), "is not the empty-tree hash"),
        ((3, 4, _root(3), _root(4), []), "must hold 3 hashes, got 0"),
        ((3, 4, _root(3), b"WrongRoot", []), "new root must be 32 bytes, got 9"),
        ((4, 8, _root(4), _root(8), [HASHES[0]]), "leads to new root"),
    ],
)
def test_consistency_failure_reasons(arguments: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_consistency(*arguments)


def test_consistency_from_empty_tree_and_between_equal_sizes() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 7, EMPTY_ROOT, _root(7), [])
    verify_consistency(7, 7, _root(7), _root(7), [])
    assert consistency_proof(HASHES[:7], 0, 7) == []


def test_generation_refuses_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="leaf index 3 is outside a tree of 3 leaves"):
        inclusion_proof(HASHES[:3], 3)
    with pytest.raises(InvalidArgument, match="an empty tree has no leaves"):
        inclusion_proof([], 0)
    with pytest.raises(InvalidArgument, match="new size 9 exceeds the 8 leaves given"):
        consistency_proof(HASHES[:8], 2, 9)
    with pytest.raises(InvalidArgument, match="old size 5 is larger than new size 4"):
        consistency_proof(HASHES[:8], 5, 4)
    with pytest.raises(InvalidArgument, match="leaf hash 1 is 5 bytes"):
        root_from_leaf_hashes([HASHES[0], b"bytes"])


def test_root_from_inclusion_proof_returns_the_root() -> None:
    proof = inclusion_proof(HASHES[:100], 37)
    assert root_from_inclusion_proof(HASHES[37], 37, 100, proof) == _root(100)


# -- proof sizes ------------------------------------------------------------------


def test_proof_size_equals_brute_force_maximum() -> None:
    for size in range(1, 257):
        bound = proof_size(size)
        longest_inclusion = max(len(inclusion_proof_ranges(i, size)) for i in range(size))
        longest_consistency = max(
            (len(consistency_proof_ranges(m, size)) for m in range(1, size)), default=0
        )
        assert (bound.inclusion_hashes, bound.consistency_hashes) == (
            longest_inclusion,
            longest_consistency,
        ), size


@pytest.mark.parametrize(
    ("size", "inclusion", "consistency"), [(10**6, 20, 21), (10**9, 30, 31), (2**32, 32, 33)]
)
def test_proof_size_for_large_trees(size: int, inclusion: int, consistency: int) -> None:
    bound = proof_size(size)
    assert (bound.inclusion_hashes, bound.consistency_hashes) == (inclusion, consistency)
    assert bound.inclusion_bytes == inclusion * HASH_SIZE
    assert bound.consistency_bytes == consistency * HASH_SIZE
    # Witnesses: the first leaf needs the full inclusion path, and some old
    # size reaches the consistency maximum, which is at most ceil(log2 n) + 1.
    assert len(inclusion_proof_ranges(0, size)) == inclusion
    assert consistency <= (size - 1).bit_length() + 1
    assert max(len(consistency_proof_ranges(m, size)) for m in range(1, 200)) == consistency


# -- compact range -------------------------------------------------------------------


def test_compact_range_matches_batch_root_after_every_append() -> None:
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for size in range(1, 1100):
        compact.append(HASHES[size - 1])
        assert compact.size == size
        assert len(compact.state().hashes) == size.bit_count()
        if size <= SWEEP or size & (size - 1) in (0, size - 1) or size % 97 == 0:
            assert compact.root() == root_from_leaf_hashes(HASHES[:size]), size


def test_compact_range_append_record_returns_leaf_hash() -> None:
    compact = CompactRange()
    assert compact.append_record(RECORDS[0]) == HASHES[0]
    assert compact.root() == HASHES[0]


def test_compact_range_refuses_a_record_in_place_of_a_leaf_hash() -> None:
    compact = CompactRange()
    with pytest.raises(InvalidArgument, match="leaf hash for leaf 0 is 6 bytes, expected 32"):
        compact.append(b"record")
    assert compact.size == 0


def test_extend_keeps_the_leaves_before_a_refused_one() -> None:
    compact = CompactRange()
    with pytest.raises(InvalidArgument, match="leaf hash for leaf 3 is 6 bytes"):
        compact.extend([*HASHES[:3], b"record", HASHES[3]])
    assert compact.size == 3
    assert compact.root() == _root(3)
    compact.extend(HASHES[3:5])
    assert compact.root() == _root(5)


def test_state_binary_and_json_forms() -> None:
    compact = CompactRange()
    compact.extend(HASHES[:11])
    state = compact.state()
    data = state.to_bytes()
    assert data[0] == 1
    assert int.from_bytes(data[1:9], "big") == 11
    assert len(data) == 9 + 3 * HASH_SIZE
    assert CompactRangeState.from_bytes(data) == state
    assert CompactRangeState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert state.root() == _root(11)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: CompactRangeState(3, (HASHES[0],)), "size 3 must hold 2 hashes, got 1"),
        (lambda: CompactRangeState(1, (b"short",)), "hash 0 must be 32 bytes"),
        (lambda: CompactRangeState(-1, ()), "size must be a non-negative integer"),
        (lambda: CompactRangeState(1 << 64, ()), "does not fit in 64 bits"),
        (lambda: CompactRangeState.from_bytes(b""), "expected version 1"),
        (lambda: CompactRangeState.from_bytes(b"\x02" + bytes(8)), "starting 02"),
        (
            lambda: CompactRangeState.from_bytes(b"\x01" + (3).to_bytes(8, "big") + HASHES[0]),
            "must carry 2 hashes",
        ),
        (lambda: CompactRangeState.from_dict({"size": "1", "hashes": []}), "'size' must be"),
        (lambda: CompactRangeState.from_dict({"size": True, "hashes": []}), "'size' must be"),
        (lambda: CompactRangeState.from_dict({"size": 1, "hashes": "x"}), "'hashes' must be"),
        (lambda: CompactRangeState.from_dict({"size": 1, "hashes": ["%%"]}), "bad base64"),
    ],
)
def test_state_refuses_malformed_input(build: Any, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        build()


def test_large_tree_needs_no_recursion() -> None:
    size = (1 << 17) + 3
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    compact = CompactRange()
    compact.extend(hashes)
    assert root_from_leaf_hashes(hashes) == compact.root()


# -- hypothesis -----------------------------------------------------------------------


@quick
@given(data=st.data())
def test_random_inclusion_proofs_verify(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_RANDOM), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(HASHES[:size], index)
    assert len(proof) <= proof_size(size).inclusion_hashes
    root = root_from_leaf_hashes(HASHES[:size])
    verify_inclusion(HASHES[index], index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(HASHES[index], index, size, proof, _flip(root, index))


@quick
@given(data=st.data())
def test_random_consistency_proofs_verify(data: st.DataObject) -> None:
    new_size = data.draw(st.integers(1, MAX_RANDOM), label="new size")
    old_size = data.draw(st.integers(0, new_size), label="old size")
    proof = consistency_proof(HASHES, old_size, new_size)
    assert len(proof) <= proof_size(new_size).consistency_hashes
    old_root = root_from_leaf_hashes(HASHES[:old_size])
    new_root = root_from_leaf_hashes(HASHES[:new_size])
    verify_consistency(old_size, new_size, old_root, new_root, proof)


@quick
@given(records=st.lists(st.binary(max_size=40), max_size=80))
def test_compact_range_equals_reference_after_every_append(records: list[bytes]) -> None:
    reference = Reference(records)
    compact = CompactRange()
    for size, record in enumerate(records, start=1):
        compact.append_record(record)
        assert compact.root() == reference.mth(0, size)
    assert root_from_leaf_hashes(leaf_hashes(records)) == reference.mth(0, len(records))


@quick
@given(data=st.data())
def test_state_round_trip_resumes_the_same_tree(data: st.DataObject) -> None:
    total = data.draw(st.integers(0, MAX_RANDOM), label="total")
    cut = data.draw(st.integers(0, total), label="cut")
    writer = CompactRange()
    writer.extend(HASHES[:cut])
    stored = writer.state().to_bytes()
    # Retention dropped leaves [0, cut); a verifier resumes from the state alone.
    resumed = CompactRange.from_state(CompactRangeState.from_bytes(stored))
    from_json = CompactRange.from_state(CompactRangeState.from_dict(writer.state().to_dict()))
    assert resumed.root() == from_json.root() == root_from_leaf_hashes(HASHES[:cut])
    resumed.extend(HASHES[cut:total])
    writer.extend(HASHES[cut:total])
    assert resumed.size == total
    assert resumed.root() == writer.root() == root_from_leaf_hashes(HASHES[:total])
