"""`reconcile` on a call the consumer failed over from one provider server to another.

MoH's call went to MPWT's ss1 first, as exchange A. ss1 broke off before
answering; it survived and logged A as CANCELLED (the connection went away).
MoH logged A as UNAVAILABLE, naming its retry, and asked ss2 in a new
exchange B, which ss2 answered. Each log is reconciled by exchange id: A pairs
with ss1's record, B with ss2's, and the answer MoH released is never compared
with what ss1 logged.
"""

from __future__ import annotations

import hashlib

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.merkle import CompactRangeState
from spean.gateway.audit.reconcile import Kind, reconcile
from spean.gateway.audit.record import AuditRecord, Side

A, B = "3b0d6f1e-0000-4000-8000-00000000000a", "3b0d6f1e-0000-4000-8000-00000000000b"
REQUEST = hashlib.sha256(b"request").digest()
ANSWER = hashlib.sha256(b"answer").digest()
NOTHING = hashlib.sha256(b"").digest()


def record(
    exchange_id: str,
    side: Side,
    origin: str,
    status: str,
    message: str = "",
    response_sha256: bytes = NOTHING,
) -> AuditRecord:
    return AuditRecord(
        exchange_id=exchange_id,
        side=side,
        origin=origin,
        received_at_ns=1_700_000_000_000_000_000,
        status=status,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/ListVehiclesByOwner",
        forwarded_at_ns=1_700_000_000_001_000_000,
        message=message,
        request_sha256=REQUEST,
        response_sha256=response_sha256,
    )


def bundle(origin: str, *records: AuditRecord) -> Bundle:
    return Bundle(
        origin=origin,
        start=0,
        records=tuple(r.to_bytes() for r in records),
        chains=(),
        start_chain=GENESIS.hash,
        start_state=CompactRangeState(0, ()),
        checkpoints=(),
        globalconf=b"",
        anchor_pem=b"",
        log_size=len(records),
        exported_at_ns=0,
    )


MOH = bundle(
    "KH/GOV/MOH/ss1#w0",
    record(
        A,
        Side.CONSUMER,
        "KH/GOV/MOH/ss1#w0",
        "UNAVAILABLE",
        message="provider security server KH/GOV/MPWT/ss1 at 10.0.1.5:9443 broke off after its"
        f" first message; retried as exchange {B}",
    ),
    record(B, Side.CONSUMER, "KH/GOV/MOH/ss1#w0", "OK", response_sha256=ANSWER),
)
SS1 = bundle(
    "KH/GOV/MPWT/ss1#w0",
    record(A, Side.PROVIDER, "KH/GOV/MPWT/ss1#w0", "CANCELLED", message="the caller went away"),
)
SS2 = bundle(
    "KH/GOV/MPWT/ss2#w0",
    record(B, Side.PROVIDER, "KH/GOV/MPWT/ss2#w0", "OK", response_sha256=ANSWER),
)


def findings(consumer: Bundle, provider: Bundle) -> list[tuple[Kind, str]]:
    return [(f.kind, f.exchange_id) for f in reconcile(consumer, provider).findings]


def test_the_answer_matches_the_server_that_gave_it() -> None:
    assert reconcile(MOH, SS2).matched == 1
    # ss2 never saw the abandoned exchange: that is all reconcile has to say.
    assert findings(MOH, SS2) == [(Kind.MISSING_AT_PROVIDER, A)]


def test_the_abandoned_exchange_matches_the_server_that_broke_off() -> None:
    result = reconcile(MOH, SS1)
    assert result.matched == 1
    # A is compared with A: the consumer's UNAVAILABLE against what ss1 logged, and
    # B, the answer MoH released, is not compared with anything ss1 logged.
    assert findings(MOH, SS1) == [(Kind.STATUS_DIFFERS, A), (Kind.MISSING_AT_PROVIDER, B)]
    (differs,) = [f for f in result.findings if f.kind is Kind.STATUS_DIFFERS]
    assert differs.detail == "consumer recorded UNAVAILABLE, provider CANCELLED"


def test_a_server_that_broke_off_unlogged_leaves_only_the_consumers_record() -> None:
    silent = bundle("KH/GOV/MPWT/ss1#w0")
    assert reconcile(MOH, silent).matched == 0
    assert findings(MOH, silent) == [
        (Kind.MISSING_AT_PROVIDER, A),
        (Kind.MISSING_AT_PROVIDER, B),
    ]
