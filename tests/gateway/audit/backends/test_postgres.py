"""PostgreSQL-only behaviour: a writer SIGKILLed during group commit loses nothing acknowledged.

Mirrors the SQLite crash test (test_sqlite.py): a child process appends from
4 threads to its own schema, signing a checkpoint every 25 records, and
prints each receipt only after `append` returned; it is SIGKILLed mid-stream.
On restart the chain verifies, every stored checkpoint's root is the Merkle
root of the records it covers, and every acknowledged record is present.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.audit.backends.postgres import PostgresAuditStore
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.checkpoint import parse_checkpoint
from spean.gateway.audit.merkle import CompactRange, leaf_hashes
from spean.gateway.audit.record import AuditRecord, Side
from tests.support.child import run_child
from tests.support.databases import postgres_schema

ORIGIN = "KH/GOV/MOH/ss1#w0"

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as url:
        yield url


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path, schema_url: str) -> None:
    child = run_child(
        tmp_path,
        f"""
        import os, sys, threading
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from spean.gateway.audit.checkpoint import CheckpointSigner
        from spean.gateway.audit.backends.postgres import PostgresAuditStore
        from spean.gateway.audit.record import AuditRecord, Side
        from spean.gateway.audit.writer import CheckpointPolicy
        from tests.support.pki import MEMBER, self_signed

        key = ed25519.Ed25519PrivateKey.generate()
        policy = CheckpointPolicy(CheckpointSigner(MEMBER, key, self_signed(key)), every_records=25)
        store = PostgresAuditStore(sys.argv[1], {ORIGIN!r}, checkpoints=policy)

        def appender(worker):
            n = 0
            while True:
                exchange_id = f"{{worker}}-{{n}}"
                receipt = store.append(AuditRecord(
                    exchange_id=exchange_id, side=Side.PROVIDER, origin={ORIGIN!r},
                    received_at_ns=n, status="OK", request_token="t" * 300))
                os.write(1, f"{{receipt.index}} {{receipt.chain_hash.hex()}} "
                            f"{{exchange_id}}\\n".encode())
                n += 1

        for worker in range(4):
            threading.Thread(target=appender, args=(worker,), daemon=True).start()
        threading.Event().wait()
        """,
        schema_url,
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        while len(acknowledged) < 300:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(line.decode())
    finally:
        child.send_signal(signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    assert len(acknowledged) >= 300, f"child stopped early: {err.decode()}"
    assert child.returncode == -signal.SIGKILL
    acknowledged += rest.decode().splitlines(keepends=True)
    receipt_line = re.compile(r"\d+ [0-9a-f]{64} \d+-\d+\n\Z")
    assert all(receipt_line.match(line) for line in acknowledged), acknowledged

    with PostgresAuditStore(schema_url, ORIGIN) as reopened:
        stored = {s.index: s for s in reopened.read()}
        verify_chain(stored[i].chain_entry() for i in range(len(stored)))
        assert reopened.size() == len(stored) >= len(acknowledged)
        for receipt in acknowledged:
            index, chain_hex, exchange_id = receipt.split()
            entry = stored[int(index)]
            assert entry.chain_hash.hex() == chain_hex
            assert AuditRecord.from_bytes(entry.record_bytes).exchange_id == exchange_id
        leaves = leaf_hashes([stored[i].record_bytes for i in range(len(stored))])
        checkpoints = reopened.checkpoints()
        assert len(checkpoints) >= 5  # one per 25 records or a little more, batches decide
        for stored_checkpoint in checkpoints:
            signed = parse_checkpoint(stored_checkpoint.note)
            tree = CompactRange()
            tree.extend(leaves[: signed.size])
            assert tree.root() == signed.root, f"checkpoint at {signed.size} does not verify"
        # The log goes on where the crash left it, from the stored tree state.
        after = reopened.append(
            AuditRecord(
                exchange_id="after",
                side=Side.PROVIDER,
                origin=ORIGIN,
                received_at_ns=1,
                status="OK",
            )
        )
        assert after.index == len(stored)
