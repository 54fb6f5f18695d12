"""bench/audit_scale.py keeps working: a short run writes a consumer's and a provider's
bundle with bench/audit_corpus.py, every measurement asserts that its bundle verifies
(or that the two reconcile clean), and every row is printed (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.audit_scale import RECONCILE_MODES, VERIFY_MODES
from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord

ROOT = Path(__file__).resolve().parents[2]
EXCHANGES = 1500


@pytest.mark.slow
def test_the_scale_benchmark_verifies_and_reconciles_its_corpus(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/audit_scale.py", "--exchanges", f"{EXCHANGES}", "--dir", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert rows == [*VERIFY_MODES, *RECONCILE_MODES], done.stdout
    # The mix is there: streaming answers, refusals with and without tokens, witnesses.
    consumer = [
        AuditRecord.from_bytes(r) for r in read_bundle(tmp_path / "1500/consumer.zip").records
    ]
    assert len(consumer) == EXCHANGES
    assert {r.status for r in consumer} >= {
        "OK",
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
    assert any(r.response_messages == 5 for r in consumer)
    assert any(r.status != "OK" and not r.request_token for r in consumer)
    assert any(r.status != "OK" and r.response_token for r in consumer)
    assert len({r.witnessed_checkpoint for r in consumer if r.witnessed_checkpoint}) == 1
    assert len({r.request_token for r in consumer if r.request_token}) == sum(
        1 for r in consumer if r.request_token
    )  # every token its own: nothing a cache could answer
