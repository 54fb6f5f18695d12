"""Merkle proof properties beyond tests/gateway/audit/test_merkle.py.

That file proves that genuine proofs verify and that tampered proofs fail
for every small tree. Here: for random trees up to 3000 leaves, a proof
checked against anything but its own leaf, index, size or root fails, and
verification of arbitrary (hostile) arguments only ever raises `ProofError`.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.audit.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hashes,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

CHECKS = settings(max_examples=60, deadline=None)
HASH = st.binary(min_size=32, max_size=32)
ANY_INT = st.integers(-3, 2**70)


def _leaves(size: int) -> list[bytes]:
    return leaf_hashes(i.to_bytes(4, "big") for i in range(size))


@CHECKS
@given(data=st.data())
def test_an_inclusion_proof_holds_for_its_own_leaf_only(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 3000))
    leaves = _leaves(size)
    index = data.draw(st.integers(0, size - 1))
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    proof = inclusion_proof(leaves, index)
    root = root_from_leaf_hashes(leaves)
    verify_inclusion(leaves[index], index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[other], index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], other, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, root_from_leaf_hashes(leaves[:-1]))
    # (A different tree size alone may walk the same path: for leaf 0 the
    # trees of 3 and 4 leaves both take two siblings. The root, which a signed
    # checkpoint binds to its size, is what a verifier must compare.)


@CHECKS
@given(data=st.data())
def test_a_consistency_proof_holds_for_its_own_sizes_and_roots_only(data: st.DataObject) -> None:
    size = data.draw(st.integers(3, 3000))
    leaves = _leaves(size)
    old = data.draw(st.integers(1, size - 1))
    proof = consistency_proof(leaves, old, size)
    old_root, new_root = root_from_leaf_hashes(leaves[:old]), root_from_leaf_hashes(leaves)
    verify_consistency(old, size, old_root, new_root, proof)
    forked = [*leaves[: old - 1], b"\x00" * 32, *leaves[old:]]
    with pytest.raises(ProofError):
        verify_consistency(old, size, root_from_leaf_hashes(forked[:old]), new_root, proof)
    with pytest.raises(ProofError):
        verify_consistency(old, size, old_root, root_from_leaf_hashes(forked), proof)
    other = data.draw(st.integers(1, size - 1).filter(lambda n: n != old))
    with pytest.raises(ProofError):
        verify_consistency(other, size, root_from_leaf_hashes(leaves[:other]), new_root, proof)


@settings(max_examples=300, deadline=None)
@given(
    leaf=HASH,
    index=ANY_INT,
    size=ANY_INT,
    proof=st.lists(st.binary(max_size=40), max_size=70),
    root=st.binary(max_size=40),
)
def test_hostile_inclusion_arguments_raise_proof_error_only(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except ProofError:
        return
    pytest.fail("random arguments formed a valid proof")


@settings(max_examples=300, deadline=None)
@given(
    old=ANY_INT,
    new=ANY_INT,
    old_root=HASH,
    new_root=HASH,
    proof=st.lists(st.binary(max_size=40), max_size=70),
)
def test_hostile_consistency_arguments_raise_proof_error_only(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    try:
        verify_consistency(old, new, old_root, new_root, proof)
    except ProofError:
        return
    # Equal sizes with equal roots and no proof is the one genuine trivial case.
    assert (old, old_root, proof) == (new, new_root, [])
    assert old > 0
