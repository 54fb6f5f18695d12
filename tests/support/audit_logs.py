"""What the audit logs hold after a story, read the way an auditor reads them.

`origins` and `verified_records` read a SQLite audit store directly (the
writer's chain checked end to end); `export_and_verify` exports a member's
whole log with `spean audit export` and verifies the bundle completely (hash
chain, Merkle tree against signed checkpoints, token signatures).
`assert_nothing_acknowledged_lost` is the invariant of the fault stories: no
exchange whose answer reached the application is missing from a log.
`demo_bundles` runs a few exchanges through the demo federation and exports
both sides' logs, for the tests of the audit commands.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import grpc

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.cli import main
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MPWT, build_demo
from tests.support.exchanges import get_vehicle


def origins(database: Path) -> dict[str, int]:
    """Audit log origins in a SQLite audit store and their record counts."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT origin, count(*) FROM audit_records GROUP BY origin")
        return {origin: count for origin, count in rows}


def verified_records(database: Path, origin: str) -> list[AuditRecord]:
    """The records of `origin`, after checking its hash chain end to end."""
    with open_store(str(database), origin) as store:
        stored = list(store.read())
    verify_chain(r.chain_entry() for r in stored)
    return [AuditRecord.from_bytes(r.record_bytes) for r in stored]


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """One writer's whole log, exported and verified."""

    origin: str
    records: list[AuditRecord]

    def ok_ids(self) -> set[str]:
        return {r.exchange_id for r in self.records if r.status == "OK"}

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts


def export_and_verify(federation: Federation, member: str, out: Path) -> VerifiedLog:
    """`spean audit export` the member's log, then verify the bundle completely.

    Run after the server stopped cleanly: its final checkpoint covers the
    whole log, so the bundle must hold every record and every check must hold.
    """
    bundle_path = out / f"{member.replace('/', '_')}.zip"
    code = main(
        ["audit", "export", "--config", str(federation.configs[member]), "--out", str(bundle_path)]
    )
    assert code == 0, f"export of {member}'s audit log failed"
    bundle = read_bundle(bundle_path)
    assert bundle.start == 0
    assert bundle.stop == bundle.log_size, (
        f"{member}: the export covers {bundle.stop} of {bundle.log_size} records; "
        "the final checkpoint is missing"
    )
    report = verify_bundle(bundle)
    assert report.ok, f"{member}: {report.first}"
    assert report.records == bundle.log_size
    return VerifiedLog(bundle.origin, [AuditRecord.from_bytes(data) for data in bundle.records])


def assert_nothing_acknowledged_lost(
    federation: Federation, members: list[str], ok_ids: list[str], out: Path
) -> list[VerifiedLog]:
    """Every exchange the application saw succeed is an OK record in every member's log."""
    out.mkdir(exist_ok=True)
    assert len(set(ok_ids)) == len(ok_ids), "an exchange id was answered twice"
    assert all(ok_ids), "an OK answer without its spean-exchange-id"
    logs = []
    for member in members:
        verified = export_and_verify(federation, member, out)
        missing = set(ok_ids) - verified.ok_ids()
        assert not missing, (
            f"{len(missing)} exchanges answered OK to the application are missing from "
            f"{member}'s audit log, e.g. {sorted(missing)[:3]}"
        )
        logs.append(verified)
    return logs


@dataclass(frozen=True, slots=True)
class DemoBundles:
    """Both sides' exported logs of a few exchanges through the demo federation."""

    federation: Federation
    consumer: Path
    provider: Path
    ok_ids: list[str]
    not_found_id: str


def demo_bundles(root: Path, calls: int = 3) -> DemoBundles:
    """`calls` GetVehicle exchanges that end OK and one that ends NOT_FOUND, then the
    servers stopped (each signed a final checkpoint) and both logs exported."""
    federation = build_demo(root / "federation")
    ok_ids = []
    address = federation.consumer_addresses[MOH]
    with federation.running(), grpc.insecure_channel(address) as channel:
        for _ in range(calls):
            answer = get_vehicle(channel)
            assert answer.code is grpc.StatusCode.OK, answer.details
            ok_ids.append(answer.exchange_id)
        missing = get_vehicle(channel, plate="0A-0000")
        assert missing.code is grpc.StatusCode.NOT_FOUND, missing.details
    paths = {MOH: root / "consumer.zip", MPWT: root / "provider.zip"}
    for member, path in paths.items():
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(path)]) == 0
    return DemoBundles(federation, paths[MOH], paths[MPWT], ok_ids, missing.exchange_id)
