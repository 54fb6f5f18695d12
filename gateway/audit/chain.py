"""The hash chain that links each writer's audit records (pure, no I/O).

Theory of operation. A writer's log is the sequence of its records' canonical
bytes r_0, r_1, ... Each record gets

    leaf_i  = SHA-256(0x00 || r_i)              (RFC 9162 leaf hash)
    chain_i = SHA-256(chain_{i-1} || leaf_i)    with chain_{-1} = 32 zero bytes

and the store keeps (i, r_i, chain_i). chain_i commits to the whole prefix
r_0..r_i, so editing, deleting, inserting or reordering any record changes
every later chain hash; `verify_chain` recomputes the chain and names the first
index where the stored log departs from it.

The leaf hash is the RFC 9162 leaf hash on purpose, and the chain takes it
from the Merkle tree built over the same log (`merkle.leaf_hash`), so the
chain and the tree always cover the same bytes.

What the chain alone cannot show: a log truncated at the tail still verifies
(every prefix is a valid chain). Signed checkpoints (size and root) close that
gap; until then, compare `ChainHead.size` with the size the writer last
reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import grpc

from spean.gateway.audit.merkle import HASH_SIZE, leaf_hash
from spean.gateway.errors import SpeanError

ZERO_HASH = bytes(HASH_SIZE)


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """chain_i from chain_{i-1} and leaf_i, the record's `leaf_hash`."""
    return hashlib.sha256(previous + leaf).digest()


def next_chain_hash(previous: bytes, record: bytes) -> bytes:
    """chain_i from chain_{i-1} and the canonical bytes r_i."""
    return chain_hash(previous, leaf_hash(record))


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The end of a chain: `size` records, the last one's chain hash `hash`.

    The empty chain is `GENESIS` (size 0, 32 zero bytes). The last index is
    `size - 1`.
    """

    size: int
    hash: bytes

    def extend(self, record: bytes) -> ChainHead:
        """The head after appending the record with canonical bytes `record`."""
        return ChainHead(self.size + 1, next_chain_hash(self.hash, record))


GENESIS = ChainHead(0, ZERO_HASH)


class ChainFault(StrEnum):
    """Why a chain failed verification."""

    INDEX_GAP = "index gap"
    INDEX_OUT_OF_ORDER = "index out of order"
    HASH_MISMATCH = "hash mismatch"


class ChainError(SpeanError):
    """A stored log does not form a valid chain: records were lost or altered.

    `index` is the first index where the log departs from a valid chain (the
    expected index for a gap), `fault` says how.
    """

    code = grpc.StatusCode.DATA_LOSS

    def __init__(self, index: int, fault: ChainFault, detail: str) -> None:
        super().__init__(f"audit chain broken at index {index}: {fault.value}: {detail}")
        self.index = index
        self.fault = fault


def verify_chain(
    entries: Iterable[tuple[int, bytes, bytes]], *, start: ChainHead = GENESIS
) -> None:
    """Check that `entries` (index, record bytes, chain hash) form a valid chain.

    Entries must come in index order starting at `start.size` (0 for a whole
    log; for a log whose older records were archived, pass the head they end
    at). Raises `ChainError` at the first bad entry; returns None when every
    entry verifies.
    """
    expected_index = start.size
    previous = start.hash
    for index, record, stored in entries:
        if index != expected_index:
            if index > expected_index:
                fault = ChainFault.INDEX_GAP
                detail = f"expected index {expected_index}, found {index}: records are missing"
            else:
                fault = ChainFault.INDEX_OUT_OF_ORDER
                detail = f"expected index {expected_index}, found {index} again or out of order"
            raise ChainError(expected_index, fault, detail)
        computed = next_chain_hash(previous, record)
        if computed != stored:
            raise ChainError(
                index,
                ChainFault.HASH_MISMATCH,
                f"stored chain hash {stored.hex()} but the record and its predecessors give "
                f"{computed.hex()}: the record or its stored chain hash was altered",
            )
        previous = computed
        expected_index += 1
