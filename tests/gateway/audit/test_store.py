"""The AuditStore contract, run against SQLite and PostgreSQL alike.

Group commit, durable receipts, one log per origin, the Merkle tree head and
signed checkpoints stored with the log. SQLite-only behaviour (crashes of a
child process, disk-full, WAL) lives in backends/test_sqlite.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from cryptography import x509

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.checkpoint import CheckpointSigner, parse_checkpoint, verify_checkpoint
from spean.gateway.audit.merkle import CompactRange, CompactRangeState, root_from_leaf_hashes
from spean.gateway.audit.merkle import leaf_hash as merkle_leaf
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditReceipt
from spean.gateway.audit.writer import CheckpointPolicy
from spean.gateway.errors import AuditError, InvalidArgument

ORIGIN = "KH/GOV/MOH/ss1#w0"


def record(n: int, origin: str = ORIGIN, **changes: object) -> AuditRecord:
    base = AuditRecord(
        exchange_id=f"exchange-{n}",
        side=Side.PROVIDER,
        origin=origin,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        received_at_ns=1_732_492_800_000_000_000 + n,
        status="OK",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_appends_are_numbered_chained_and_read_back(store_url: str) -> None:
    with open_store(store_url, ORIGIN) as store:
        receipts = [store.append(record(n)) for n in range(5)]
        assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
        assert store.size() == 5
        stored = list(store.read())
        assert [s.record_bytes for s in stored] == [record(n).to_bytes() for n in range(5)]
        assert [s.chain_hash for s in stored] == [r.chain_hash for r in receipts]
        verify_chain(s.chain_entry() for s in stored)
        assert [s.index for s in store.read(1, 3)] == [1, 2]
        assert list(store.read(5)) == []
        with pytest.raises(InvalidArgument):
            store.read(3, 1)


def test_concurrent_appends_share_commits_and_stay_consecutive(store_url: str) -> None:
    per_thread, threads_n = 25, 8
    results: dict[int, list[AuditReceipt]] = {}
    with open_store(store_url, ORIGIN) as store:

        def appender(worker: int) -> None:
            results[worker] = [store.append(record(worker * 1000 + n)) for n in range(per_thread)]

        threads = [threading.Thread(target=appender, args=(w,)) for w in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with open_store(store_url, ORIGIN) as reopened:
        total = per_thread * threads_n
        assert reopened.size() == total
        stored = list(reopened.read())
        verify_chain(s.chain_entry() for s in stored)
    for receipts in results.values():
        indexes = [r.index for r in receipts]
        assert indexes == sorted(indexes)
        for receipt in receipts:
            assert stored[receipt.index].chain_hash == receipt.chain_hash


def test_two_origins_keep_separate_logs_and_a_second_writer_is_refused(store_url: str) -> None:
    other = "KH/GOV/MOH/ss1#w1"
    with open_store(store_url, ORIGIN) as a, open_store(store_url, other) as b:
        for n in range(3):
            a.append(record(n))
            b.append(record(n, origin=other))
        assert [s.record_bytes for s in a.read(origin=other)] == [
            record(n, origin=other).to_bytes() for n in range(3)
        ]
        with open_store(store_url, ORIGIN) as intruder:
            intruder.append(record(10))
        with pytest.raises(AuditError, match="changed by another writer"):
            a.append(record(11))
        with pytest.raises(AuditError, match="changed by another writer"):
            a.append(record(12))  # refused for good, not only once
        assert b.append(record(3, origin=other)).index == 3


def test_close_refuses_later_appends_and_wrong_origin_is_refused(store_url: str) -> None:
    store = open_store(store_url, ORIGIN)
    with pytest.raises(AuditError, match="names origin"):
        store.append(record(1, origin="KH/GOV/MOH/ss1#w9"))
    store.append(record(1))
    store.close()
    store.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        store.append(record(2))


def test_checkpoints_every_n_records_cover_the_merkle_root(
    store_url: str, signer_and_cert: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, cert = signer_and_cert
    policy = CheckpointPolicy(signer, every_records=4, every_ms=3_600_000)
    with open_store(store_url, ORIGIN, checkpoints=policy) as store:
        for n in range(10):
            store.append(record(n))
        stored = store.checkpoints()
        assert [c.size for c in stored] == [4, 8]
        latest = store.latest_checkpoint()
        assert latest is not None
        assert latest.size == 8
    # close() signs a final checkpoint over the tail.
    with open_store(store_url, ORIGIN, checkpoints=policy) as store:
        stored = store.checkpoints()
        assert [c.size for c in stored] == [4, 8, 10]
        leaves = [merkle_leaf(s.record_bytes) for s in store.read()]
        previous = 0
        for entry in stored:
            signed = parse_checkpoint(entry.note)
            assert verify_checkpoint(signed, [cert]) == cert
            assert signed.origin == ORIGIN
            assert signed.root == root_from_leaf_hashes(leaves[: entry.size])
            assert signed.checkpoint.previous_size == previous
            assert CompactRangeState.from_bytes(entry.tree_state).root() == signed.root
            previous = entry.size
        assert [c.size for c in store.checkpoints(5, 9)] == [8]
        # The writer resumed its tree from the stored state: the next one still matches.
        for n in range(10, 14):
            store.append(record(n))
        tree = CompactRange()
        tree.extend(merkle_leaf(s.record_bytes) for s in store.read())
        last = store.checkpoints()[-1]
        assert last.size == 14
        assert parse_checkpoint(last.note).root == tree.root()


def test_an_idle_writer_signs_the_pending_checkpoint_on_time(
    store_url: str, ec_signer: CheckpointSigner
) -> None:
    policy = CheckpointPolicy(ec_signer, every_records=1000, every_ms=50)
    with open_store(store_url, ORIGIN, checkpoints=policy) as store:
        store.append(record(0))
        store.append(record(1))
        deadline = time.monotonic() + 10
        while store.latest_checkpoint() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        latest = store.latest_checkpoint()
        assert latest is not None
        assert latest.size == 2
        assert [c.size for c in store.checkpoints()] == [2]


def test_sealed_bodies_are_committed_with_their_records(store_url: str) -> None:
    with open_store(store_url, ORIGIN) as store:
        store.append(record(0))
        store.append(record(1), bodies=b"sealed-1")
        store.append(record(2))
        store.append(record(3), bodies=b"sealed-3")
        assert store.read_bodies() == {1: b"sealed-1", 3: b"sealed-3"}
        assert store.read_bodies(2, 3) == {}
        assert store.read_bodies(3) == {3: b"sealed-3"}
        # Bodies stay outside the chain: the records are exactly what was appended.
        assert [s.record_bytes for s in store.read()] == [record(n).to_bytes() for n in range(4)]
    with open_store(store_url, ORIGIN) as store:
        assert store.read_bodies(0, 2) == {1: b"sealed-1"}
