"""Merkle tree hashing and proofs for the audit log (RFC 9162, section 2.1).

Each writer's audit log is an append-only list of records D[0:n]. Its tree
head is the Merkle Tree Hash (MTH) of RFC 9162 (Certificate Transparency v2),
the same tree as RFC 6962:

    leaf hash   SHA-256(0x00 || record)
    node hash   SHA-256(0x01 || left || right)
    empty tree  SHA-256("")

The distinct 0x00 / 0x01 prefixes keep a leaf from ever being read as an inner
node (second-preimage resistance): the two child hashes of a node can never
be passed off as a record.

Theory of operation:
- `root_from_leaf_hashes` builds the tree level by level in O(n) hashes
  without recursion; a lone last node on a level is carried up unchanged,
  which yields exactly the RFC's "largest power of two smaller than n" split.
- Proof generation is split in two: `inclusion_proof_ranges` and
  `consistency_proof_ranges` say *which* subtrees a proof holds, as half-open
  leaf ranges [start, end), from O(log n) integer arithmetic alone; the proof
  is the MTH of each range. A store that caches subtree hashes can answer
  from the ranges without reading every leaf.
- Verification follows RFC 9162 2.1.3.2 and 2.1.4.2 step by step, after
  checking that every hash is 32 bytes and that the proof has exactly the
  length its sizes imply, so a bad proof fails with a reason, not a mismatch.
- `CompactRange` is the writer's and the verifier's running state: the
  O(log n) roots of the perfect subtrees on the tree's right border. Appending
  is amortised one node hash; the root is O(log n). Its `CompactRangeState`
  (size + hashes) can be stored, so retention may archive old records and a
  verifier still resumes from the state and checks later checkpoints.

Invariants: everything here is pure (no I/O, no clock, no randomness); hashes
are `bytes` of length `HASH_SIZE`; a verifier raises `ProofError` naming the
check that failed and otherwise returns None.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from spean.gateway.errors import InvalidArgument

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Module-level aliases: attribute lookups add measurable overhead in the
# per-leaf loops (see bench/merkle.py).
_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"
# Hashers already fed the domain-separation prefix; bulk loops copy them.
_LEAF_HASHER = hashlib.sha256(_LEAF)
_NODE_HASHER = hashlib.sha256(_NODE)
_STATE_VERSION = 1
_MAX_SIZE = 1 << 64  # sizes are stored as 8 bytes


class ProofError(InvalidArgument):
    """An inclusion or consistency proof, or a hash in it, does not verify."""


# -- hashing (RFC 9162 2.1.1) -------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """MTH({d(0)}) = HASH(0x00 || d(0)): the hash of one record."""
    return _sha256(_LEAF + data).digest()


def leaf_hashes(records: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of many records, as fast as plain SHA-256 of each record.

    Copying a hasher already fed the 0x00 prefix avoids concatenating (and
    so copying) every record; bench/merkle.py measures the difference.
    """
    fresh = _LEAF_HASHER.copy
    hashes: list[bytes] = []
    append = hashes.append
    for record in records:
        hasher = fresh()
        hasher.update(record)
        append(hasher.digest())
    return hashes


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right): the hash of an inner node."""
    return _sha256(_NODE + left + right).digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from the n leaf hashes, in O(n) hashes and no recursion.

    RFC 9162 2.1.1: MTH({}) = HASH(); MTH({d(0)}) = HASH(0x00 || d(0)); for
    n > 1, with k the largest power of two smaller than n (k < n <= 2k),
    MTH(D_n) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])).

    Hashing adjacent pairs level by level and carrying an odd last node up
    unchanged gives the same tree: the left k leaves always form a perfect
    subtree, so pairs never straddle the k boundary, and the carried node is
    the root of the right, smaller part.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    # map(len) runs in C: checking every leaf costs a few percent, and keeps
    # records passed in place of leaf hashes from yielding a plausible root.
    if set(map(len, leaf_hashes)) != {HASH_SIZE}:
        position, value = next(
            (i, value) for i, value in enumerate(leaf_hashes) if len(value) != HASH_SIZE
        )
        raise InvalidArgument(
            f"leaf hash {position} is {len(value)} bytes, expected {HASH_SIZE}"
            " (pass leaf hashes, not records)"
        )
    fresh = _NODE_HASHER.copy
    level: Sequence[bytes] = leaf_hashes
    while len(level) > 1:
        carried = level[-1] if len(level) & 1 else None
        upper: list[bytes] = []
        append = upper.append
        # strict=False: on an odd level the last node has no partner; it is
        # carried up below instead.
        for left, right in zip(level[0::2], level[1::2], strict=False):
            hasher = fresh()
            hasher.update(left)
            hasher.update(right)
            append(hasher.digest())
        if carried is not None:
            append(carried)
        level = upper
    return bytes(level[0])


def _split(size: int) -> int:
    """k: the largest power of two smaller than `size` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


# -- inclusion proofs (RFC 9162 2.1.3) ------------------------------------------


def inclusion_proof_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges [start, end) whose MTHs form the inclusion proof of leaf `index`.

    RFC 9162 2.1.3.1: PATH(m, D[n]) for n > 1, k the largest power of two
    smaller than n:
        PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      for m < k
        PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])  for m >= k
    and PATH(0, {d(0)}) = {}. The recursion is walked from the root down,
    collecting the sibling at each step; the proof lists them leaf first.
    """
    _check_size("tree size", tree_size)
    _check_size("leaf index", index)
    if index >= tree_size:
        raise InvalidArgument(
            f"leaf index {index} is outside a tree of {tree_size} leaves"
            f" (valid: 0..{tree_size - 1})"
            if tree_size
            else f"leaf index {index}: an empty tree has no leaves"
        )
    siblings: list[tuple[int, int]] = []
    start, end = 0, tree_size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            start = middle
    siblings.reverse()
    return siblings


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree of all `leaf_hashes`.

    For a proof against an earlier tree head, pass the prefix
    `leaf_hashes[:size]`. Costs O(n) hashes (every leaf lies in exactly one
    sibling subtree or on the path).
    """
    return [
        root_from_leaf_hashes(leaf_hashes[start:end])
        for start, end in inclusion_proof_ranges(index, len(leaf_hashes))
    ]


def _inclusion_proof_length(index: int, tree_size: int) -> int:
    # The path splits into an "inner" part, below the level where the paths of
    # `index` and of the last leaf meet, and a "border" part above it, where
    # the path only collects left siblings: one per set bit of the index there.
    inner = (index ^ (tree_size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` leads to from `leaf_hash` at `index` in a tree of `tree_size`.

    Raises ProofError if the arguments or the proof are malformed.
    """
    _check_proof_int("inclusion proof: leaf index", index)
    _check_proof_int("inclusion proof: tree size", tree_size)
    if tree_size < 1:
        raise ProofError(f"inclusion proof: tree size {tree_size} has no leaves")
    if not 0 <= index < tree_size:
        # RFC 9162 2.1.3.2 step 1: leaf_index >= tree_size fails.
        raise ProofError(
            f"inclusion proof: leaf index {index} is outside a tree of {tree_size} leaves"
        )
    _check_hash("inclusion proof: leaf hash", leaf_hash)
    _check_proof_hashes("inclusion proof", proof)
    expected = _inclusion_proof_length(index, tree_size)
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of {tree_size} must hold"
            f" {expected} hashes, got {len(proof)}"
        )
    sha = _sha256
    # Step 2: set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, tree_size - 1
    # Step 3: set r to hash.
    r = leaf_hash
    # Step 4: for each value p in the inclusion_path array:
    for p in proof:
        # If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        # If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # 1. Set r to HASH(0x01 || p || r).
            r = sha(_NODE + p + r).digest()
            # 2. If LSB(fn) is not set, right-shift both fn and sn equally
            #    until either LSB(fn) is set or fn is 0. (This skips the
            #    levels where the node is the last one and has no sibling.)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise set r to HASH(0x01 || r || p).
            r = sha(_NODE + r + p).digest()
        # Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # Step 5: sn must be 0 (the whole path was walked) ...
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: prove that `leaf_hash` is leaf `index` of the tree (`tree_size`, `root`).

    Returns None when the proof holds; raises ProofError saying why not.
    """
    _check_hash("inclusion proof: root", root)
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    # ... and r must equal the root hash (step 5).
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of {tree_size} leads to root"
            f" {_short(computed)}, expected {_short(root)}"
        )


# -- consistency proofs (RFC 9162 2.1.4) ----------------------------------------


def consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges [start, end) whose MTHs form the consistency proof old_size -> new_size.

    RFC 9162 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where
        SUBPROOF(m, D[m], true)  = {}
        SUBPROOF(m, D[m], false) = {MTH(D[m])}
    and for m < n, k the largest power of two smaller than n:
        SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])          m <= k
        SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  m > k
    b says whether the subtree is one the old tree head already commits to as
    a whole (then the verifier knows its hash and it is left out).

    The RFC defines the proof for 0 < m < n; for m == n and for m == 0 (every
    tree extends the empty one) the proof is empty.
    """
    _check_size("old size", old_size)
    _check_size("new size", new_size)
    if old_size > new_size:
        raise InvalidArgument(
            f"consistency proof: old size {old_size} is larger than new size {new_size}"
        )
    if old_size in (0, new_size):
        return []
    siblings: list[tuple[int, int]] = []
    start, end, m = 0, new_size, old_size
    complete = True  # the RFC's b
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            siblings.append((start + k, end))
            end = start + k
        else:
            siblings.append((start, start + k))
            start += k
            m -= k
            complete = False
    siblings.reverse()
    if not complete:
        siblings.insert(0, (start, end))
    return siblings


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between tree sizes `old_size` <= `new_size` of `leaf_hashes`."""
    if new_size > len(leaf_hashes):
        raise InvalidArgument(
            f"consistency proof: new size {new_size} exceeds the {len(leaf_hashes)} leaves given"
        )
    return [
        root_from_leaf_hashes(leaf_hashes[start:end])
        for start, end in consistency_proof_ranges(old_size, new_size)
    ]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: prove that tree (old_size, old_root) is a prefix of (new_size, new_root).

    Returns None when the proof holds; raises ProofError saying why not.
    Stricter than the RFC at the edges: equal sizes need equal roots and an
    empty proof; size 0 needs the empty-tree root and an empty proof.
    """
    _check_hash("consistency proof: old root", old_root)
    _check_hash("consistency proof: new root", new_root)
    _check_proof_hashes("consistency proof", proof)
    _check_proof_int("consistency proof: old size", old_size)
    _check_proof_int("consistency proof: new size", new_size)
    if old_size > new_size:
        raise ProofError(
            f"consistency proof: old size {old_size} is larger than new size {new_size}"
            " (a log never shrinks)"
        )
    if old_size == 0:
        # Every tree extends the empty one; only the empty root itself is checked.
        if proof:
            raise ProofError(f"consistency proof from size 0 must be empty, got {len(proof)}")
        for root in (old_root, new_root) if new_size == 0 else (old_root,):
            if root != EMPTY_ROOT:
                raise ProofError(
                    f"root {_short(root)} for tree size 0 is not the empty-tree hash"
                    f" {_short(EMPTY_ROOT)}"
                )
        return
    if old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof between equal sizes {old_size} must be empty,"
                f" got {len(proof)} hashes"
            )
        if old_root != new_root:
            raise ProofError(
                f"two different roots for tree size {old_size}: {_short(old_root)} and"
                f" {_short(new_root)} (the log forked)"
            )
        return
    expected = len(consistency_proof_ranges(old_size, new_size))
    # Step 1: an empty consistency_path fails (0 < first < second here, so the
    # expected length is at least 1 and the length check covers it).
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} must hold"
            f" {expected} hashes, got {len(proof)}"
        )
    # Step 2: if first is an exact power of 2, prepend first_hash: the old tree
    # is then one complete subtree of the new one and the proof leaves it out.
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    # Step 3: set fn to first - 1 and sn to second - 1.
    fn, sn = old_size - 1, new_size - 1
    # Step 4: if LSB(fn) is set, right-shift both fn and sn equally until
    # LSB(fn) is not set (climb to the largest complete subtree ending at the
    # old tree's last leaf).
    while fn & 1:
        fn >>= 1
        sn >>= 1
    sha = _sha256
    # Step 5: set both fr and sr to the first value in the consistency_path.
    fr = sr = path[0]
    # Step 6: for each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the new root")
        # If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # 1. Set fr to HASH(0x01 || c || fr).  2. Set sr to HASH(0x01 || c || sr).
            fr = sha(_NODE + c + fr).digest()
            sr = sha(_NODE + c + sr).digest()
            # 3. If LSB(fn) is not set, right-shift both fn and sn equally
            #    until either LSB(fn) is set or fn is 0.
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise set sr to HASH(0x01 || sr || c): c lies beyond the old tree.
            sr = sha(_NODE + sr + c).digest()
        # Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # Step 7: fr must equal first_hash, sr must equal second_hash, sn must be 0.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the new root")
    if fr != old_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to old root"
            f" {_short(fr)}, expected {_short(old_root)}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to new root"
            f" {_short(sr)}, expected {_short(new_root)}"
        )


# -- proof sizes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofSize:
    """The largest proofs a tree of `tree_size` leaves can need, in hashes and bytes."""

    tree_size: int
    inclusion_hashes: int
    consistency_hashes: int

    @property
    def inclusion_bytes(self) -> int:
        return self.inclusion_hashes * HASH_SIZE

    @property
    def consistency_bytes(self) -> int:
        return self.consistency_hashes * HASH_SIZE


def proof_size(tree_size: int) -> ProofSize:
    """Maximum inclusion proof length over all leaves, and consistency proof
    length over all old sizes 1..tree_size-1, computed in O(log n) without
    building anything.
    """
    _check_size("tree size", tree_size)
    # The leftmost leaf has the deepest path: ceil(log2(n)) siblings.
    inclusion = (tree_size - 1).bit_length() if tree_size > 1 else 0
    memo: dict[tuple[int, bool, bool], int] = {}

    def longest(size: int, complete: bool, allow_whole: bool) -> int:
        # The longest SUBPROOF(m, D[size], complete) over m in 1..size-1, and
        # m == size too if allow_whole, following the RFC's recursion; -1 if
        # no m is allowed. Only O(log n) distinct arguments occur, and the
        # recursion depth is the tree height.
        key = (size, complete, allow_whole)
        if key in memo:
            return memo[key]
        best = (0 if complete else 1) if allow_whole else -1
        if size > 1:
            k = _split(size)
            # m <= k: descend left with the same b, emitting MTH(D[k:n]).
            best = max(best, longest(k, complete, True) + 1)
            # k < m < size: descend right with b = false, emitting MTH(D[0:k]).
            # (m == size never splits: SUBPROOF(m, D[m], b) ends right here.)
            right = longest(size - k, False, False)
            if right >= 0:
                best = max(best, right + 1)
        memo[key] = best
        return best

    return ProofSize(tree_size, inclusion, max(longest(tree_size, True, False), 0))


# -- compact range (incremental tree head) ----------------------------------------


@dataclass(frozen=True, slots=True)
class CompactRangeState:
    """A stored `CompactRange`: tree size and the roots of its perfect subtrees.

    `hashes` lists the roots of the perfect subtrees that make up leaves
    [0, size), largest (leftmost) first: one per set bit of `size`. This is
    the same list as `compact.Range.Hashes()` in transparency-dev/merkle.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_size("compact range size", self.size)
        if self.size >= _MAX_SIZE:
            raise InvalidArgument(f"compact range size {self.size} does not fit in 64 bits")
        if len(self.hashes) != self.size.bit_count():
            raise InvalidArgument(
                f"compact range of size {self.size} must hold {self.size.bit_count()} hashes,"
                f" got {len(self.hashes)}"
            )
        for position, value in enumerate(self.hashes):
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise InvalidArgument(f"compact range hash {position} must be {HASH_SIZE} bytes")

    def root(self) -> bytes:
        """MTH of leaves [0, size)."""
        return _fold_border(self.hashes)

    def to_bytes(self) -> bytes:
        """Binary form: version byte 1, size as 8-byte big-endian, then the hashes."""
        return bytes([_STATE_VERSION]) + self.size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRangeState:
        if len(data) < 9 or data[0] != _STATE_VERSION:
            raise InvalidArgument(
                f"compact range state: expected version {_STATE_VERSION} and 8 size bytes,"
                f" got {len(data)} bytes starting {data[:1].hex() or 'empty'}"
            )
        size = int.from_bytes(data[1:9], "big")
        body = data[9:]
        if len(body) != size.bit_count() * HASH_SIZE:
            raise InvalidArgument(
                f"compact range state for size {size} must carry {size.bit_count()} hashes"
                f" ({size.bit_count() * HASH_SIZE} bytes), got {len(body)} bytes"
            )
        hashes = tuple(body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE))
        return cls(size, hashes)

    def to_dict(self) -> dict[str, object]:
        """JSON form: {"size": n, "hashes": [standard base64, ...]}."""
        return {
            "size": self.size,
            "hashes": [base64.b64encode(value).decode("ascii") for value in self.hashes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CompactRangeState:
        size = data.get("size")
        hashes = data.get("hashes")
        if not isinstance(size, int) or isinstance(size, bool):
            raise InvalidArgument(f"compact range state: 'size' must be an integer, got {size!r}")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise InvalidArgument("compact range state: 'hashes' must be a list of base64 strings")
        try:
            decoded = tuple(base64.b64decode(h, validate=True) for h in hashes)
        except binascii.Error as error:
            raise InvalidArgument(
                f"compact range state: bad base64 in 'hashes': {error}"
            ) from error
        return cls(size, decoded)


class CompactRange:
    """Append-only tree head in O(log n) memory.

    Holds the roots of the perfect subtrees on the right border of the tree
    over leaves [0, size). Appending leaf n merges as many subtrees as n has
    trailing one bits (amortised one node hash); `root()` folds the O(log n)
    border roots. A writer appends every record and signs `root()` at each
    checkpoint; a verifier replays an exported log through it and compares
    against each signed checkpoint, resuming from a stored state where
    retention archived the older records.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_state(cls, state: CompactRangeState) -> CompactRange:
        compact = cls()
        compact._size = state.size
        compact._hashes = list(state.hashes)
        return compact

    @property
    def size(self) -> int:
        return self._size

    def state(self) -> CompactRangeState:
        return CompactRangeState(self._size, tuple(self._hashes))

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf by its leaf hash."""
        self.extend((leaf_hash,))

    def append_record(self, record: bytes) -> bytes:
        """Append one record; returns its leaf hash."""
        value = leaf_hash(record)
        self.extend((value,))
        return value

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaves by their leaf hashes (one loop, no call per leaf)."""
        hashes = self._hashes
        size = self._size
        sha = _sha256
        try:
            for leaf in leaf_hashes:
                if len(leaf) != HASH_SIZE:
                    raise InvalidArgument(
                        f"leaf hash for leaf {size} is {len(leaf)} bytes, expected {HASH_SIZE}"
                    )
                value = leaf
                merges = size
                # Each trailing one bit of the old size is a perfect subtree
                # as high as the one being completed: merge it in from the left.
                while merges & 1:
                    value = sha(_NODE + hashes.pop() + value).digest()
                    merges >>= 1
                hashes.append(value)
                size += 1
        finally:
            # Leaves before a refused one stay appended; size matches hashes.
            self._size = size

    def root(self) -> bytes:
        """MTH of all leaves appended so far, in O(log n) hashes."""
        return _fold_border(self._hashes)


def _fold_border(hashes: Sequence[bytes]) -> bytes:
    # The border roots, largest first, folded right to left: the smaller,
    # later subtrees always hang on the right (RFC 9162 2.1.1's k split).
    if not hashes:
        return EMPTY_ROOT
    sha = _sha256
    root = hashes[-1]
    for position in range(len(hashes) - 2, -1, -1):
        root = sha(_NODE + hashes[position] + root).digest()
    return root


# -- helpers ----------------------------------------------------------------------


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")


def _check_proof_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        length = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {length}")


def _check_proof_hashes(name: str, proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        _check_hash(f"{name}: hash {position}", value)


def _short(value: bytes) -> str:
    return value.hex()[:16] + "..."
