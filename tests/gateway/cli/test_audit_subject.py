"""`spean audit subject` and `spean audit verify-proof`: MPWT answers a citizen, offline checks.

MPWT's operator, on a request from an ombudsman, writes the proof of every
exchange that touched a citizen from an exported bundle of MPWT's log; the
look-up itself lands in MPWT's audit store as a signed exchange; anyone with
the proof and the federation's anchor verifies it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.cli import main
from spean.gateway.demo.ministries import MOI, MPWT
from spean.gateway.files.config import load_config
from tests.support.subjects import CITIZEN, Story, pseudonym_of, run_subject_story


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    return run_subject_story(tmp_path_factory.mktemp("audit-subject"))


def _subject(story: Story, out: Path, member: str = MPWT, subject: str = CITIZEN) -> int:
    return main(
        [
            "audit",
            "subject",
            str(story.bundles[member]),
            "--config",
            str(story.federation.configs[member]),
            "--subject",
            subject,
            "--requested-by",
            "ombudsman office",
            "--purpose",
            "citizen request 2026/17",
            "--out",
            str(out),
        ]
    )


def test_the_operator_writes_a_proof_and_the_lookup_is_recorded(
    story: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proof.json"
    assert _subject(story, out) == 0
    assert "2 exchanges of the subject proven" in capsys.readouterr().out
    assert CITIZEN not in out.read_text()

    config = load_config(story.federation.configs[MPWT])
    origin = f"{config.server_id}#transparency"
    with open_store(str(config.resolve(Path(config.audit.store))), origin) as store:
        lookups = [AuditRecord.from_bytes(r.record_bytes) for r in store.read()]
    lookup = lookups[-1]
    assert (lookup.user, lookup.purpose) == ("ombudsman office", "citizen request 2026/17")
    assert lookup.subject_pseudonym == pseudonym_of(CITIZEN)
    assert lookup.response_size == len(out.read_bytes())


def test_anyone_verifies_the_proof_offline(
    story: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proof.json"
    assert _subject(story, out) == 0
    config = story.federation.config(MPWT)
    anchor = str(config.resolve(config.global_configuration.anchor))
    capsys.readouterr()
    assert main(["audit", "verify-proof", str(out), "--anchor", anchor, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["anchor"] == "given"
    assert [e["user"] for e in report["exchanges"]] == ["dr.sokha", "dr.sokha"]
    assert main(["audit", "verify-proof", str(out)]) == 0
    assert "OK: every exchange is proven" in capsys.readouterr().out


def test_a_tampered_proof_fails_with_exit_code_2(
    story: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proof.json"
    assert _subject(story, out) == 0
    document = json.loads(out.read_text())
    document["exchanges"][0]["inclusion_proof"][0] = "A" * 43 + "="
    out.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["audit", "verify-proof", str(out)]) == 2
    assert "FAILED" in capsys.readouterr().out


def test_the_transparency_log_verifies_like_any_other(story: Story, tmp_path: Path) -> None:
    assert _subject(story, tmp_path / "proof.json") == 0
    bundle = tmp_path / "transparency.zip"
    config = load_config(story.federation.configs[MPWT])
    code = main(
        [
            "audit",
            "export",
            "--config",
            str(story.federation.configs[MPWT]),
            "--origin",
            f"{config.server_id}#transparency",
            "--out",
            str(bundle),
        ]
    )
    assert code == 0
    report = verify_bundle(read_bundle(bundle))
    assert report.ok, report.problems
    assert report.tokens_verified == 2 * report.records


def test_a_provider_without_a_key_or_a_malformed_subject_is_refused(
    story: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proof.json"
    assert _subject(story, out, member=MOI) == 1
    assert "provider.pseudonymisation_key is not set" in capsys.readouterr().err
    assert _subject(story, out, subject="KH NID") == 1
    assert "--subject must be an id" in capsys.readouterr().err
    assert not out.exists(), "nothing is written for a refused look-up"
