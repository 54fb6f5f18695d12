"""Every number of a bundle's manifest.json is re-derived or cross-checked by verify.

An honest bundle of tests/support/honest_log.py is written to a file and one
manifest number edited, the rest left as it was; `spean audit verify` must
then exit 2 with a `manifest` problem naming the field (or, for the numbers
that frame the chain and the tree, the check that the edit breaks).
"""

from __future__ import annotations

import base64
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from spean.gateway.audit.bundle import read_bundle, write_bundle
from spean.gateway.audit.verify import Check, verify_bundle
from spean.gateway.cli import main
from tests.support.honest_log import Log, build_log

RECORDS = 250


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("verify-manifest"), RECORDS)


@pytest.fixture
def honest(log: Log, tmp_path: Path) -> Path:
    path = tmp_path / "honest.zip"
    write_bundle(log.bundle, path)
    return path


def edited(path: Path, **changes: Any) -> Path:
    """A copy of the bundle at `path` with manifest.json's fields changed."""
    out = path.with_name("edited.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "manifest.json":
                manifest = json.loads(data)
                manifest.update(changes)
                data = json.dumps(manifest).encode()
            target.writestr(name, data)
    return out


def problems(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    code = main(["audit", "verify", str(path), "--json", "--jobs", "1"])
    document = json.loads(capsys.readouterr().out)
    assert code == (2 if document["problems"] else 0)
    found: list[dict[str, Any]] = document["problems"]
    return found


def test_an_honest_manifest_verifies(honest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert problems(honest, capsys) == []
    assert read_bundle(honest).declared_records == RECORDS


def test_an_edited_record_count_is_a_problem(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (problem,) = problems(edited(honest, records=RECORDS + 1), capsys)
    assert problem == {
        "index": None,
        "check": "manifest",
        "reason": f"manifest.json says records {RECORDS + 1}, but records.bin holds "
        f"{RECORDS} records",
    }


def test_a_log_size_below_the_records_is_a_problem(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (problem,) = problems(edited(honest, log_size=RECORDS - 1), capsys)
    assert problem["check"] == "manifest"
    assert problem["reason"].startswith(f"manifest.json says log_size {RECORDS - 1}, ")


def test_a_log_size_below_a_signed_checkpoint_is_a_problem(log: Log) -> None:
    # A bundle of the first records only, with the checkpoint after them: the
    # log had at least that checkpoint's size.
    import dataclasses

    bundle = dataclasses.replace(
        log.bundle, records=log.bundle.records[:150], chains=log.bundle.chains[:150], log_size=150
    )
    report = verify_bundle(bundle)
    assert any(
        p.check is Check.MANIFEST and "a signed checkpoint has size 250" in p.reason
        for p in report.problems
    ), report.problems


def test_an_export_time_before_the_last_checkpoint_is_a_problem(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # honest_log signs checkpoint k at time k - 1 (ns). The anchor is then
    # checked at 1970 too, when it was not valid: a globalconf problem as well.
    found = problems(edited(honest, exported_at_ns=5), capsys)
    (problem,) = [p for p in found if p["check"] == "manifest"]
    assert problem["reason"].startswith("manifest.json says exported_at_ns 5 (")
    assert f"before the checkpoint at size {RECORDS} was signed" in problem["reason"]


def test_an_export_time_in_the_future_is_a_problem(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = time.time_ns() + 86_400 * 10**9
    (problem,) = problems(edited(honest, exported_at_ns=later), capsys)
    assert problem["check"] == "manifest"
    assert "which is in the future" in problem["reason"]


def test_edited_start_numbers_break_the_chain_or_the_tree(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = problems(edited(honest, start=3), capsys)
    assert {
        "index": 3,
        "check": "tree",
        "reason": "the bundle starts at index 3 but its tree state is at size 0",
    } in found
    found = problems(edited(honest, start_chain=base64.b64encode(b"\x01" * 32).decode()), capsys)
    assert found
    assert found[0]["check"] == "chain"


def test_a_malformed_manifest_number_is_an_error_naming_the_file(
    honest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["audit", "verify", str(edited(honest, records="many"))]) == 1
    err = capsys.readouterr().err
    assert "manifest.json is malformed" in err
    assert "Traceback" not in err
