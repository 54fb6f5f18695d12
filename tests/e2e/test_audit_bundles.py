"""An auditor's stories: export both sides' logs, verify them, catch every tampering.

A real demo federation makes real exchanges (real tokens, real keys, real
checkpoints); the logs are exported with `spean audit export`, verified with
`spean audit verify`, reconciled, and then tampered with in every way the
issue lists, each caught with the record index and the reason.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.backends.sqlite import SqliteAuditStore
from spean.gateway.audit.bundle import Bundle, export_bundle, read_bundle, write_bundle
from spean.gateway.audit.chain import next_chain_hash
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner, parse_checkpoint
from spean.gateway.audit.merkle import CompactRange, leaf_hashes
from spean.gateway.audit.reconcile import Kind, reconcile
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import Check, Report, verify_bundle
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, VEHICLES, build_demo, call
from tests.support.honest_log import chained_bundle
from tests.support.pki import self_signed

CALLS = 6


@dataclasses.dataclass
class Exported:
    federation: Federation
    consumer: Path
    provider: Path
    exchange_ids: list[str]
    folder: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("audit-federation")
    federation = build_demo(root / "federation")
    ids = []
    with federation.running():
        address = federation.consumer_addresses[MOH]
        with grpc.insecure_channel(address) as channel:
            for _ in range(CALLS):
                request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
                _, exchange_id, code, details = call(
                    channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle
                )
                assert code is grpc.StatusCode.OK, details
                ids.append(exchange_id)
    # Stopped: each writer signed a final checkpoint over its whole log.
    out = root / "bundles"
    out.mkdir()
    for member, name in ((MOH, "consumer"), (MPWT, "provider")):
        code = main(
            [
                "audit",
                "export",
                "--config",
                str(federation.configs[member]),
                "--out",
                str(out / f"{name}.zip"),
            ]
        )
        assert code == 0
    return Exported(federation, out / "consumer.zip", out / "provider.zip", ids, root)


def test_both_exported_logs_verify_completely(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (exported.consumer, exported.provider):
        capsys.readouterr()
        assert main(["audit", "verify", str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is True
        assert report["records"] >= CALLS
        assert report["checkpoints"] >= 1
        assert report["tokens_verified"] >= 2 * CALLS
        assert report["first_problem"] is None


def test_verify_with_the_auditors_own_anchor(exported: Exported) -> None:
    config = exported.federation.config(MPWT)
    anchor = str(config.resolve(config.global_configuration.anchor))
    assert main(["audit", "verify", str(exported.provider), "--anchor", anchor]) == 0


def test_reconcile_agrees_and_show_prints_both_sides(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["audit", "reconcile", str(exported.consumer), str(exported.provider), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["matched"] == CALLS
    exchange_id = exported.exchange_ids[2]
    assert (
        main(
            ["audit", "show", exchange_id, str(exported.consumer), str(exported.provider), "--json"]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert sorted(entry["side"] for entry in shown) == ["CONSUMER", "PROVIDER"]
    assert {entry["exchange_id"] for entry in shown} == {exchange_id}


def test_reconcile_reads_the_roles_from_real_bundles(
    exported: Exported, capsys: pytest.CaptureFixture[str]
) -> None:
    consumer, provider = str(exported.consumer), str(exported.provider)
    capsys.readouterr()
    # Provider first: the bundles say who is who, and the answer is the same.
    assert main(["audit", "reconcile", provider, consumer, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["swapped"] is True
    assert (result["consumer"]["bundle"], result["provider"]["bundle"]) == (consumer, provider)
    assert result["matched"] == CALLS
    # The same log twice is no pair: refused, never "both logs agree".
    assert main(["audit", "reconcile", consumer, consumer]) == 1
    captured = capsys.readouterr()
    assert "both hold only consumer records" in captured.err
    assert "agree" not in captured.out


def test_reconcile_finds_an_exchange_only_the_consumer_logged(exported: Exported) -> None:
    consumer = read_bundle(exported.consumer)
    provider = read_bundle(exported.provider)
    victim = exported.exchange_ids[1]
    kept = tuple(r for r in provider.records if AuditRecord.from_bytes(r).exchange_id != victim)
    result = reconcile(
        consumer, dataclasses.replace(provider, records=kept), names=("moh.zip", "mpwt.zip")
    )
    assert not result.ok
    # The deletion leaves the provider's checkpoints over records it no longer has:
    # that bundle does not verify, and reconcile says so before what it found missing.
    *defects, missing = result.findings
    assert defects
    assert {(f.kind, f.bundle) for f in defects} <= {
        (Kind.CHECKPOINT_BEYOND_RECORDS, "mpwt.zip"),
        (Kind.CHECKPOINT_MISMATCH, "mpwt.zip"),
    }
    assert (missing.kind, missing.exchange_id, missing.bundle) == (
        Kind.MISSING_AT_PROVIDER,
        victim,
        "moh.zip",
    )


# -- the tamper corpus ------------------------------------------------------------------------
#
# A provider log re-checkpointed every 2 records with MPWT's real signing key,
# so that there are checkpoints to drop, fork and re-sign.


@pytest.fixture(scope="module")
def dense(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    original = read_bundle(exported.provider)
    config = exported.federation.config(MPWT)
    policy = dataclasses.replace(server_checkpoint_policy(config), every_records=2)
    path = tmp_path_factory.mktemp("dense") / "audit.db"
    with SqliteAuditStore(path, original.origin, checkpoints=policy) as store:
        for data in original.records:
            store.append(AuditRecord.from_bytes(data))
    with SqliteAuditStore(path, original.origin) as store:
        bundle = export_bundle(
            store, globalconf=original.globalconf, anchor_pem=original.anchor_pem
        )
    assert len(bundle.checkpoints) >= 3
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    return bundle


def first(report: Report) -> tuple[int | None, Check, str]:
    assert not report.ok
    problem = report.first
    assert problem is not None
    return problem.index, problem.check, problem.reason


def replace_record(bundle: Bundle, index: int, record: AuditRecord) -> Bundle:
    records = list(bundle.records)
    records[index] = record.to_bytes()
    return dataclasses.replace(bundle, records=tuple(records))


def test_bundle_survives_a_round_trip_through_its_file(dense: Bundle, tmp_path: Path) -> None:
    write_bundle(dense, tmp_path / "b.zip")
    assert read_bundle(tmp_path / "b.zip") == dense


def test_edited_field_is_caught_at_its_index(dense: Bundle) -> None:
    record = AuditRecord.from_bytes(dense.records[3])
    tampered = replace_record(dense, 3, dataclasses.replace(record, user="someone.else"))
    index, check, _reason = first(verify_bundle(tampered))
    assert (index, check) == (3, Check.CHAIN)
    problems = verify_bundle(tampered).problems
    assert any(p.check is Check.TREE for p in problems)  # the signed root disagrees too
    assert any(p.check is Check.TOKEN and p.index == 3 for p in problems)  # and the token


def test_edited_field_with_recomputed_chain_is_caught_by_the_checkpoint(dense: Bundle) -> None:
    record = AuditRecord.from_bytes(dense.records[3])
    tampered = replace_record(dense, 3, dataclasses.replace(record, latency_us=1))
    # A careful forger recomputes the whole chain; only the signed root remains.
    chains = []
    previous = dense.start_chain
    for data in tampered.records:
        previous = next_chain_hash(previous, data)
        chains.append(previous)
    tampered = dataclasses.replace(tampered, chains=tuple(chains))
    index, check, reason = first(verify_bundle(tampered))
    assert check is Check.TREE
    assert index == 2  # the first record after the last checkpoint that still holds (size 2)
    assert "[2, 4)" in reason


def test_deleted_record_is_caught(dense: Bundle) -> None:
    k = 2
    tampered = dataclasses.replace(
        dense,
        records=dense.records[:k] + dense.records[k + 1 :],
        chains=dense.chains[:k] + dense.chains[k + 1 :],
    )
    index, check, _ = first(verify_bundle(tampered))
    assert (index, check) == (2, Check.CHAIN)


def test_inserted_forged_record_is_caught(dense: Bundle) -> None:
    forged = dataclasses.replace(AuditRecord.from_bytes(dense.records[1]), exchange_id="forged")
    k = 4
    tampered = dataclasses.replace(
        dense,
        records=(*dense.records[:k], forged.to_bytes(), *dense.records[k:]),
        chains=(*dense.chains[:k], bytes(32), *dense.chains[k:]),
    )
    index, check, _ = first(verify_bundle(tampered))
    assert (index, check) == (4, Check.CHAIN)


def test_reordered_records_are_caught(dense: Bundle) -> None:
    records = list(dense.records)
    chains = list(dense.chains)
    records[1], records[2] = records[2], records[1]
    chains[1], chains[2] = chains[2], chains[1]
    tampered = dataclasses.replace(dense, records=tuple(records), chains=tuple(chains))
    index, check, _ = first(verify_bundle(tampered))
    assert (index, check) == (1, Check.CHAIN)


def test_truncated_tail_is_caught(dense: Bundle) -> None:
    n = len(dense.records) - 1
    tampered = dataclasses.replace(dense, records=dense.records[:n], chains=dense.chains[:n])
    index, check, _reason = first(verify_bundle(tampered))
    assert index == n
    assert check in (Check.TRUNCATED, Check.UNCOVERED)
    assert any(p.check is Check.TRUNCATED for p in verify_bundle(tampered).problems)


def test_forked_checkpoint_is_caught(exported: Exported, dense: Bundle) -> None:
    notes = list(dense.checkpoints)
    original = parse_checkpoint(notes[1])
    # The ministry itself signs another root for the same size (it has the key).
    config = exported.federation.config(MPWT)
    signer = server_checkpoint_policy(config).signer
    forked = signer.sign(dataclasses.replace(original.checkpoint, root=bytes(32)))
    notes[1] = forked.note
    index, check, reason = first(
        verify_bundle(dataclasses.replace(dense, checkpoints=tuple(notes)))
    )
    assert check is Check.TREE
    assert index == original.checkpoint.previous_size
    assert f"size {original.size}" in reason


def test_checkpoint_re_signed_with_a_foreign_key_is_caught(dense: Bundle) -> None:
    notes = list(dense.checkpoints)
    original = parse_checkpoint(notes[1])
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = CheckpointSigner(original.key_name, key, self_signed(key))
    notes[1] = foreign.sign(original.checkpoint).note
    index, check, reason = first(
        verify_bundle(dataclasses.replace(dense, checkpoints=tuple(notes)))
    )
    assert check is Check.CHECKPOINT
    assert index == original.checkpoint.previous_size
    assert "not a signing certificate" in reason


def test_dropped_checkpoint_is_caught(dense: Bundle) -> None:
    notes = list(dense.checkpoints)
    dropped = parse_checkpoint(notes.pop(1))
    index, check, reason = first(
        verify_bundle(dataclasses.replace(dense, checkpoints=tuple(notes)))
    )
    assert check is Check.CHECKPOINT
    assert index == dropped.checkpoint.previous_size
    assert "dropped" in reason


def test_a_provider_that_rewrote_its_log_contradicts_the_consumers_witness(
    exported: Exported, dense: Bundle
) -> None:
    # The consumer witnessed the provider's checkpoint at size 4 (see cross-witnessing).
    witnessed = parse_checkpoint(dense.checkpoints[1])
    consumer = read_bundle(exported.consumer)
    records = [AuditRecord.from_bytes(r) for r in consumer.records]
    record = records[-1]
    records[-1] = dataclasses.replace(record, witnessed_checkpoint=witnessed.note)
    moh_signer = server_checkpoint_policy(exported.federation.config(MOH)).signer
    consumer = chained_bundle(records, moh_signer, consumer.origin, consumer)
    assert reconcile(consumer, dense).ok
    # The provider rewrites record 1 and re-signs all its checkpoints over the new log.
    config = exported.federation.config(MPWT)
    signer = server_checkpoint_policy(config).signer
    rewritten = list(dense.records)
    rewritten[1] = dataclasses.replace(AuditRecord.from_bytes(rewritten[1]), user="x").to_bytes()
    tree = CompactRange()
    tree.extend(leaf_hashes(rewritten))
    latest = signer.sign(Checkpoint(dense.origin, tree.size, tree.root(), 0, time.time_ns()))
    forked = dataclasses.replace(dense, records=tuple(rewritten), checkpoints=(latest.note,))
    result = reconcile(consumer, forked)
    contradicted = [f for f in result.findings if f.kind is Kind.WITNESS_CONTRADICTED]
    assert [f.exchange_id for f in contradicted] == [record.exchange_id]
    # The rewritten field itself differs from what the consumer recorded.
    (edited,) = [f for f in result.findings if f.kind is Kind.FIELDS_DIFFER]
    assert edited.provider == {"user": "x"}
    assert edited.exchange_id == AuditRecord.from_bytes(dense.records[1]).exchange_id
