"""What `spean audit verify` reports: every problem in JSON, a text output that says what
it leaves out, a progress bar only on a terminal.

The log is the honest demo log of tests/support/honest_log.py; the forgery gives
270 records response tokens of another exchange, re-chained and re-checkpointed,
so each is one token problem.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from spean.gateway.audit.bundle import write_bundle
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.cli import main
from tests.support.honest_log import Log, build_log, chained_bundle

RECORDS = 300
FORGED = 270


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("verify-report"), RECORDS)


@pytest.fixture(scope="module")
def forged(log: Log, tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [
        dataclasses.replace(r, response_token=log.records[0].response_token)
        if 0 < k <= FORGED
        else r
        for k, r in enumerate(log.records)
    ]
    path = tmp_path_factory.mktemp("forged") / "forged.zip"
    write_bundle(chained_bundle(records, log.signer, log.bundle.origin, log.bundle), path)
    return path


def test_json_lists_every_problem(forged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(forged), "--json", "--jobs", "1"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert len(document["problems"]) == FORGED
    assert [p["index"] for p in document["problems"]] == list(range(1, FORGED + 1))
    assert document["first_problem"] == document["problems"][0]


def test_the_text_output_says_how_many_problems_it_does_not_print(
    forged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", str(forged), "--jobs", "1"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("FAILED at record 1 (token):")
    also = [line for line in lines if line.startswith("  also: ")]
    assert len(also) == 20
    assert (
        lines[-1]
        == f"  ... and {FORGED - 21} more problems ({FORGED} in all; --json lists every one)"
    )


def test_verifying_several_bundles_says_how_many_problems_each_has(
    log: Log, forged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = tmp_path / "honest.zip"
    write_bundle(log.bundle, honest)
    capsys.readouterr()
    assert main(["audit", "verify", str(forged), str(honest)]) == 2
    out = capsys.readouterr().out
    assert f"  ... and {FORGED - 1} more problems in {forged} " in out


def test_a_report_holds_every_problem(log: Log) -> None:
    # Not re-chained: every edited record breaks the chain and its tokens.
    data = list(log.bundle.records)
    for k in range(1, 201):
        data[k] = dataclasses.replace(log.records[k], user="edited").to_bytes()
    report = verify_bundle(dataclasses.replace(log.bundle, records=tuple(data)))
    assert len([p for p in report.problems if p.check.value == "chain"]) == 200
    assert len([p for p in report.problems if p.check.value == "token"]) == 200


class _Bar:
    made: ClassVar[list[_Bar]] = []

    def __init__(self, *columns: object, **options: Any) -> None:
        self.advanced = 0
        _Bar.made.append(self)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int, n: int) -> None:
        self.advanced += n


def test_a_progress_bar_only_when_stdout_is_a_terminal(
    log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rich.progress

    path = tmp_path / "honest.zip"
    write_bundle(log.bundle, path)
    monkeypatch.setattr(rich.progress, "Progress", _Bar)
    _Bar.made.clear()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert main(["audit", "verify", str(path), "--jobs", "1"]) == 0
    assert _Bar.made == []  # piped: no bar, whatever stderr is
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["audit", "verify", str(path), "--jobs", "1", "--json"]) == 0
    assert _Bar.made == []  # machine output: no bar
    assert main(["audit", "verify", str(path), "--jobs", "1"]) == 0
    assert len(_Bar.made) == 1
    assert _Bar.made[0].advanced == 2 * RECORDS
    capsys.readouterr()
