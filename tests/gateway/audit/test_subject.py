"""A data subject's view of MPWT's log: only their exchanges, each proven, checked offline.

The bundles come from a real federation (tests/support/subjects.py): the
hospital asked MPWT about two citizens, and once about nobody. Forgeries are
made on the proof itself, the way someone holding the file could.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from spean.gateway.audit.bundle import Bundle, read_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.subject import (
    LOOKUP_METHOD,
    SubjectProof,
    lookup_record,
    parse_proof,
    subject_view,
    verify_subject_proof,
)
from spean.gateway.audit.verify import bundle_resolver, load_configuration, token_outcome
from spean.gateway.demo.ministries import MPWT, NHIS
from spean.gateway.errors import InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config
from spean.gateway.subjects import subject_key
from spean.gateway.tokens import TokenSigner, new_exchange_id
from tests.support.subjects import (
    CITIZEN,
    KEY_TEXT,
    OTHER_CITIZEN,
    Story,
    pseudonym_of,
    run_subject_story,
)

KEY = subject_key(KEY_TEXT.encode())


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    return run_subject_story(tmp_path_factory.mktemp("subject-view"))


@pytest.fixture(scope="module")
def bundle(story: Story) -> Bundle:
    return read_bundle(story.bundles[MPWT])


def _ids(story: Story, *names: str) -> set[str]:
    return {story.outcomes[name].exchange_id for name in names}


def test_a_view_lists_every_exchange_of_the_subject_and_nothing_else(
    story: Story, bundle: Bundle
) -> None:
    view = subject_view(bundle, KEY, CITIZEN)
    summaries = [entry.summary() for entry in view.entries]
    assert {s["exchange_id"] for s in summaries} == _ids(story, "citizen", "citizen again")
    for summary in summaries:
        assert (summary["client"], summary["user"], summary["purpose"]) == (
            NHIS,
            "dr.sokha",
            "admission",
        )
        assert summary["status"] == "OK"
        assert str(summary["received_at"]).endswith("Z")
    assert view.pending == 0, "the final checkpoint covers the whole log"


def test_two_subjects_views_share_nothing(story: Story, bundle: Bundle) -> None:
    mine = subject_view(bundle, KEY, CITIZEN).to_json()
    theirs = subject_view(bundle, KEY, OTHER_CITIZEN).to_json()
    other_id = story.outcomes["other"].exchange_id
    assert other_id not in mine
    assert pseudonym_of(OTHER_CITIZEN).hex() not in mine
    assert story.outcomes["none"].exchange_id not in mine
    assert story.outcomes["citizen"].exchange_id not in theirs
    assert json.loads(theirs)["exchanges"][0]["exchange_id"] == other_id
    # Nobody's id is in either file, not even the subject's own.
    for text in (mine, theirs):
        assert CITIZEN not in text
        assert OTHER_CITIZEN not in text


def test_a_proof_verifies_offline_with_the_auditors_anchor(story: Story, bundle: Bundle) -> None:
    config = story.federation.config(MPWT)
    anchor = keyfiles.load_certificate(config.resolve(config.global_configuration.anchor))
    proof = parse_proof(subject_view(bundle, KEY, CITIZEN).to_json())
    report = verify_subject_proof(proof, anchor)
    assert report.ok, report.problems
    assert report.anchor == "given"
    assert len(report.exchanges) == 2
    assert report.checkpoint_size == len(bundle.records)
    assert verify_subject_proof(proof, None).anchor == "bundled (not independently trusted)"


def test_a_subject_nobody_asked_about_has_an_empty_proof_that_verifies(bundle: Bundle) -> None:
    proof = subject_view(bundle, KEY, "KH-NID-999")
    assert proof.entries == ()
    assert verify_subject_proof(parse_proof(proof.to_json()), None).ok


def _edited(text: str, change: dict[str, object]) -> str:
    document = json.loads(text)
    document["exchanges"][0].update(change)
    return json.dumps(document)


def test_a_summary_that_is_not_its_record_is_refused(bundle: Bundle) -> None:
    text = subject_view(bundle, KEY, CITIZEN).to_json()
    with pytest.raises(InvalidArgument, match="its summary is not what its record says"):
        parse_proof(_edited(text, {"purpose": "routine check"}))


def test_forged_proofs_are_caught(bundle: Bundle) -> None:
    proof = subject_view(bundle, KEY, CITIZEN)
    first = proof.entries[0]
    forgeries: dict[str, SubjectProof] = {
        "moved": dataclasses.replace(
            proof, entries=(dataclasses.replace(first, index=first.index + 1),)
        ),
        "proof hash": dataclasses.replace(
            proof,
            entries=(dataclasses.replace(first, proof=(b"\x00" * 32, *first.proof[1:])),),
        ),
        "another subject": dataclasses.replace(proof, subject_pseudonym=b"\x01" * 32),
        "checkpoint": dataclasses.replace(
            proof, checkpoint=proof.checkpoint.replace(b"\n", b"\n\n", 1)
        ),
    }
    for what, forged in forgeries.items():
        report = verify_subject_proof(forged, None)
        assert not report.ok, what
    report = verify_subject_proof(forgeries["another subject"], None)
    assert all("names another subject" in problem for problem in report.problems[:1])
    assert report.problems


def test_a_partial_bundle_or_one_without_checkpoints_cannot_prove(bundle: Bundle) -> None:
    with pytest.raises(InvalidArgument, match="export the whole log"):
        subject_view(dataclasses.replace(bundle, start=1), KEY, CITIZEN)
    with pytest.raises(InvalidArgument, match="no checkpoint over its records"):
        subject_view(dataclasses.replace(bundle, checkpoints=()), KEY, CITIZEN)


def test_a_lookup_is_a_signed_exchange_under_the_subjects_pseudonym(
    story: Story, bundle: Bundle, tmp_path: Path
) -> None:
    config = load_config(story.federation.configs[MPWT])
    signer = TokenSigner(
        keyfiles.load_private_key(config.resolve(config.keys.signing_key)),
        keyfiles.load_certificate(config.resolve(config.keys.signing_certificate)),
    )
    proof = subject_view(bundle, KEY, CITIZEN).to_json().encode()
    record = lookup_record(
        signer,
        server=config.server,
        origin=f"{config.server_id}#transparency",
        exchange_id=new_exchange_id(),
        pseudonym=pseudonym_of(CITIZEN),
        proof=proof,
        requested_by="ombudsman office",
        purpose="citizen request 2026/17",
        now_ns=bundle.exported_at_ns,
    )
    assert (record.client, record.method) == ("KH/GOV/MPWT/transparency", LOOKUP_METHOD)
    assert record.subject_pseudonym == pseudonym_of(CITIZEN)
    assert CITIZEN.encode() not in record.to_bytes()
    conf, _ = load_configuration(bundle, None)
    assert token_outcome(AuditRecord.from_bytes(record.to_bytes()), bundle_resolver(conf)) == 2
