"""`spean audit show`: human times, what was verified, and exit codes (0 all hold, 2 not)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from spean.gateway.audit.bundle import read_bundle, write_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.cli import main
from tests.support.audit_logs import DemoBundles, demo_bundles

ISO_NS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return demo_bundles(tmp_path_factory.mktemp("show-cli"))


def test_show_prints_iso_times_and_says_what_it_verified(
    bundles: DemoBundles, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange = bundles.ok_ids[0]
    code = main(["audit", "show", exchange, str(bundles.consumer), str(bundles.provider)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(rf"^  received_at: {ISO_NS}$", out, re.MULTILINE), out
    assert re.search(rf"^  answered_at: {ISO_NS}$", out, re.MULTILINE), out
    assert "_at_ns" not in out  # no raw nanoseconds for a human
    assert out.count("  inclusion: verified: leaf 0 of the log's Merkle tree") == 2
    assert out.count("  tokens: verified: request and response tokens against") == 2


def test_show_json_keeps_nanoseconds_and_the_verdicts(
    bundles: DemoBundles, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange = bundles.ok_ids[0]
    assert main(["audit", "show", exchange, str(bundles.provider), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert isinstance(entry["received_at_ns"], int)
    assert re.fullmatch(ISO_NS, entry["received_at"])
    assert entry["side"] == "PROVIDER"
    assert entry["verified"]["inclusion"]["ok"] is True
    assert entry["verified"]["tokens"]["ok"] is True


def test_show_of_an_edited_record_says_so_and_exits_2(
    bundles: DemoBundles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bundle = read_bundle(bundles.provider)
    target = bundles.ok_ids[2]
    records = [
        dataclasses.replace(record, status="NOT_FOUND").to_bytes()
        if (record := AuditRecord.from_bytes(data)).exchange_id == target
        else data
        for data in bundle.records
    ]
    edited = tmp_path / "edited.zip"
    write_bundle(dataclasses.replace(bundle, records=tuple(records)), edited)
    code = main(["audit", "show", target, str(edited)])
    out = capsys.readouterr().out
    assert code == 2, out
    assert "  inclusion: NOT included" in out
    assert (
        "  tokens: NOT verified: response token signs status 'OK', the record says 'NOT_FOUND'"
        in out
    )


def test_show_of_an_unknown_exchange_exits_1(
    bundles: DemoBundles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "show", "nowhere", str(bundles.provider)]) == 1
    assert "exchange nowhere is in none of the bundles" in capsys.readouterr().err
