"""The hash chain: known answers, and every kind of tampering caught at its index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest

from spean.gateway.audit.chain import (
    GENESIS,
    ZERO_HASH,
    ChainError,
    ChainFault,
    ChainHead,
    chain_hash,
    next_chain_hash,
    verify_chain,
)
from spean.gateway.audit.merkle import leaf_hash

Entry = tuple[int, bytes, bytes]


def build(records: list[bytes]) -> list[Entry]:
    """A valid log computed independently of the module under test."""
    entries = []
    previous = bytes(32)
    for index, record in enumerate(records):
        previous = hashlib.sha256(previous + hashlib.sha256(b"\x00" + record).digest()).digest()
        entries.append((index, record, previous))
    return entries


RECORDS = [f"record {i}".encode() for i in range(10)]


def test_the_chain_links_the_merkle_trees_leaf_hashes() -> None:
    # The leaf is RFC 9162's SHA-256(0x00 || record), the Merkle tree's own.
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    leaf = leaf_hash(RECORDS[0])
    assert chain_hash(ZERO_HASH, leaf) == hashlib.sha256(ZERO_HASH + leaf).digest()
    assert next_chain_hash(ZERO_HASH, RECORDS[0]) == chain_hash(ZERO_HASH, leaf)


def test_chain_matches_an_independent_computation() -> None:
    entries = build(RECORDS)
    head = GENESIS
    for index, record, chain in entries:
        head = head.extend(record)
        assert head == ChainHead(index + 1, chain)
    assert next_chain_hash(ZERO_HASH, RECORDS[0]) == entries[0][2]
    verify_chain(entries)


def test_empty_log_verifies() -> None:
    verify_chain([])


def test_a_suffix_verifies_from_the_head_before_it() -> None:
    entries = build(RECORDS)
    verify_chain(entries[4:], start=ChainHead(4, entries[3][2]))
    with pytest.raises(ChainError) as caught:
        verify_chain(entries[4:])  # from genesis, index 4 is a gap
    assert (caught.value.index, caught.value.fault) == (0, ChainFault.INDEX_GAP)


def test_edited_record_is_caught_at_its_index() -> None:
    entries = build(RECORDS)
    index, _, chain = entries[6]
    entries[6] = (index, b"record 6 but edited", chain)

    with pytest.raises(ChainError) as caught:
        verify_chain(entries)
    assert caught.value.index == 6
    assert caught.value.fault is ChainFault.HASH_MISMATCH
    assert caught.value.code is grpc.StatusCode.DATA_LOSS
    assert "index 6" in caught.value.message


def test_edited_chain_hash_is_caught_at_its_index() -> None:
    entries = build(RECORDS)
    index, record, _ = entries[2]
    entries[2] = (index, record, bytes(32))

    with pytest.raises(ChainError) as caught:
        verify_chain(entries)
    assert (caught.value.index, caught.value.fault) == (2, ChainFault.HASH_MISMATCH)


def test_deleted_record_is_a_gap_at_the_missing_index() -> None:
    entries = build(RECORDS)
    del entries[5]

    with pytest.raises(ChainError) as caught:
        verify_chain(entries)
    assert (caught.value.index, caught.value.fault) == (5, ChainFault.INDEX_GAP)
    assert "expected index 5, found 6" in caught.value.message


def test_deleted_record_with_later_ones_renumbered_breaks_the_hash() -> None:
    entries = build(RECORDS)
    del entries[5]
    renumbered = [(i, record, chain) for i, (_, record, chain) in enumerate(entries)]

    with pytest.raises(ChainError) as caught:
        verify_chain(renumbered)
    assert (caught.value.index, caught.value.fault) == (5, ChainFault.HASH_MISMATCH)


def test_reordered_pair_is_caught() -> None:
    entries = build(RECORDS)
    # Rows moved with their indexes: the first one out of place is reported.
    moved = [*entries[:3], entries[4], entries[3], *entries[5:]]
    with pytest.raises(ChainError) as caught:
        verify_chain(moved)
    assert (caught.value.index, caught.value.fault) == (3, ChainFault.INDEX_GAP)

    # Records swapped under their original indexes and chain hashes.
    swapped = list(entries)
    swapped[3] = (3, entries[4][1], entries[3][2])
    swapped[4] = (4, entries[3][1], entries[4][2])
    with pytest.raises(ChainError) as caught:
        verify_chain(swapped)
    assert (caught.value.index, caught.value.fault) == (3, ChainFault.HASH_MISMATCH)

    # Even with the chain hashes swapped along, the order is part of the hash.
    swapped[3] = (3, entries[4][1], entries[4][2])
    swapped[4] = (4, entries[3][1], entries[3][2])
    with pytest.raises(ChainError) as caught:
        verify_chain(swapped)
    assert (caught.value.index, caught.value.fault) == (3, ChainFault.HASH_MISMATCH)


def test_duplicated_record_is_out_of_order() -> None:
    entries = build(RECORDS)
    doubled = [*entries[:4], entries[3], *entries[4:]]

    with pytest.raises(ChainError) as caught:
        verify_chain(doubled)
    assert (caught.value.index, caught.value.fault) == (4, ChainFault.INDEX_OUT_OF_ORDER)


def test_inserted_record_is_caught() -> None:
    entries = build(RECORDS)
    forged = build([*RECORDS[:7], b"forged", *RECORDS[7:]])
    # The forger recomputed nothing after the insertion point: the next one breaks.
    tampered = entries[:7] + [forged[7]] + [(i + 1, r, c) for i, r, c in entries[7:]]

    with pytest.raises(ChainError) as caught:
        verify_chain(tampered)
    assert (caught.value.index, caught.value.fault) == (8, ChainFault.HASH_MISMATCH)


def test_verification_consumes_a_generator_lazily() -> None:
    seen: list[int] = []

    def entries() -> Iterator[Entry]:
        for entry in build(RECORDS):
            seen.append(entry[0])
            yield entry if entry[0] != 1 else (1, b"bad", entry[2])

    with pytest.raises(ChainError):
        verify_chain(entries())
    assert seen == [0, 1]  # stopped at the first bad record
