"""`reconcile`: roles read from the bundles, pairs refused, every shared field compared.

The first stories are a call the consumer failed over from one provider
server to another. MoH's call went to MPWT's ss1 first, as exchange A. ss1
broke off before answering; it survived and logged A as CANCELLED (the
connection went away). MoH logged A as UNAVAILABLE, naming its retry, and
asked ss2 in a new exchange B, which ss2 answered. Each log is reconciled by
exchange id: A pairs with ss1's record, B with ss2's, and the answer MoH
released is never compared with what ss1 logged.

Then: bundles given in either order, pairs that cannot be matched, bundles
that do not verify, fields an owner rewrote and re-signed, witnessed
checkpoints, the JSON report and the command's exit codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from spean.gateway.audit.bundle import Bundle, read_bundle, write_bundle
from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
from spean.gateway.audit.merkle import CompactRange, CompactRangeState, leaf_hashes
from spean.gateway.audit.reconcile import (
    Kind,
    PairingError,
    Progress,
    Reconciliation,
    reconcile,
    reconcile_files,
    records_to_read,
)
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.cli import main
from tests.support.honest_log import chained_bundle
from tests.support.pki import self_signed

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
    # ss1 logged another member's call, none of MoH's.
    other = dataclasses.replace(
        record("5d1e0c2a-0000-4000-8000-000000000001", Side.PROVIDER, SS1.origin, "OK"),
        client="KH/GOV/MOF/tax",
    )
    silent = bundle("KH/GOV/MPWT/ss1#w0", other)
    assert reconcile(MOH, silent).matched == 0
    assert findings(MOH, silent) == [
        (Kind.MISSING_AT_PROVIDER, A),
        (Kind.MISSING_AT_PROVIDER, B),
    ]


# -- roles and refused pairs ------------------------------------------------------------------


def test_the_bundles_can_be_given_in_either_order() -> None:
    forward = reconcile(MOH, SS1)
    backward = reconcile(SS1, MOH)
    assert not forward.swapped
    assert backward.swapped
    assert findings(SS1, MOH) == findings(MOH, SS1)
    assert (backward.consumer.origin, backward.provider.origin) == (MOH.origin, SS1.origin)
    assert (backward.consumer.side, backward.provider.side) == (Side.CONSUMER, Side.PROVIDER)


def test_two_consumer_logs_are_refused() -> None:
    other = bundle("KH/GOV/MOF/ss1#w0", record(B, Side.CONSUMER, "KH/GOV/MOF/ss1#w0", "OK"))
    with pytest.raises(PairingError, match="both hold only consumer records"):
        reconcile(MOH, other)


def test_two_provider_logs_are_refused() -> None:
    with pytest.raises(PairingError, match="both hold only provider records"):
        reconcile(SS1, SS2)


def test_one_log_twice_is_refused() -> None:
    # A server that also calls its own member's services holds both sides.
    both = dataclasses.replace(record(B, Side.PROVIDER, MOH.origin, "OK"), client="KH/GOV/MOH/nhis")
    mixed = dataclasses.replace(MOH, records=(*MOH.records, both.to_bytes()))
    with pytest.raises(PairingError, match="are both of the log KH/GOV/MOH/ss1#w0"):
        reconcile(mixed, mixed)


def test_members_that_never_exchanged_are_refused() -> None:
    # MoH only called MPWT; MoF's log answered a third member.
    unrelated = bundle(
        "KH/GOV/MOF/ss1#w0",
        dataclasses.replace(
            record(B, Side.PROVIDER, "KH/GOV/MOF/ss1#w0", "OK"),
            client="KH/GOV/MOJ/courts",
            service="KH/GOV/MOF/tax",
        ),
    )
    with pytest.raises(PairingError, match="never exchanged with each other") as caught:
        reconcile(MOH, unrelated, names=("moh.zip", "mof.zip"))
    assert "moh.zip (KH/GOV/MOH)" in caught.value.message
    assert "mof.zip (KH/GOV/MOF)" in caught.value.message


def test_an_empty_bundle_is_refused() -> None:
    with pytest.raises(PairingError, match=r"empty\.zip holds no records"):
        reconcile(MOH, bundle(SS1.origin), names=("moh.zip", "empty.zip"))


def test_members_that_called_each_other_are_reconciled_in_the_order_given() -> None:
    # MPWT's ss1 also calls MoH: its log holds a consumer record of that call.
    back = record("5d1e0c2a-0000-4000-8000-0000000000bb", Side.CONSUMER, SS1.origin, "OK")
    back = dataclasses.replace(back, client="KH/GOV/MPWT/vehicles", service="KH/GOV/MOH/nhis")
    mutual = dataclasses.replace(SS1, records=(*SS1.records, back.to_bytes()))
    result = reconcile(MOH, mutual)
    assert result.both_directions
    assert not result.swapped
    assert result.consumer.origin == MOH.origin


# -- logs with checkpoints --------------------------------------------------------------------

MOH_ORIGIN, MPWT_ORIGIN = "KH/GOV/MOH/ss1#w0", "KH/GOV/MPWT/ss1#w0"


def signer(member: str) -> CheckpointSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    return CheckpointSigner(member, key, self_signed(key, member))


MOH_SIGNER, MPWT_SIGNER = signer("KH/GOV/MOH"), signer("KH/GOV/MPWT")


def exchange(n: int, status: str = "OK") -> tuple[AuditRecord, AuditRecord]:
    """Both sides' records of exchange `n`, as honest servers write them."""
    exchange_id = f"0192c0de-0000-4000-8000-{n:012d}"
    response = hashlib.sha256(b"answer %d" % n).digest() if status == "OK" else NOTHING
    consumer = dataclasses.replace(
        record(exchange_id, Side.CONSUMER, MOH_ORIGIN, status, response_sha256=response),
        user="dr.sokha@hospital.example",
        purpose="treatment",
    )
    provider = dataclasses.replace(
        consumer, side=Side.PROVIDER, origin=MPWT_ORIGIN, forwarded_at_ns=consumer.forwarded_at_ns
    )
    return consumer, provider


def signed_log(records: list[AuditRecord], member_signer: CheckpointSigner) -> Bundle:
    """`records` chained and checkpointed honestly (one checkpoint at the end)."""
    origin = records[0].origin if records else MPWT_ORIGIN
    return chained_bundle(records, member_signer, origin, bundle(origin))


def provider_checkpoint(records: list[AuditRecord], size: int) -> bytes:
    tree = CompactRange()
    tree.extend(leaf_hashes(r.to_bytes() for r in records[:size]))
    return MPWT_SIGNER.sign(Checkpoint(MPWT_ORIGIN, size, tree.root(), 0, size)).note


def both_logs(
    count: int, witness_every: int = 0, statuses: dict[int, str] | None = None
) -> tuple[list[AuditRecord], list[AuditRecord]]:
    """Both sides of `count` exchanges; with `witness_every`, each consumer record
    holds the provider's checkpoint at the last multiple of it before the exchange."""
    pairs = [exchange(n, (statuses or {}).get(n, "OK")) for n in range(count)]
    ours = [c for c, _ in pairs]
    theirs = [p for _, p in pairs]
    if witness_every:
        notes: dict[int, bytes] = {}  # a provider sends the note it signed, as signed
        for n in range(count):
            size = n // witness_every * witness_every
            if size:
                if size not in notes:
                    notes[size] = provider_checkpoint(theirs, size)
                ours[n] = dataclasses.replace(ours[n], witnessed_checkpoint=notes[size])
    return ours, theirs


def test_honest_logs_agree_and_every_witness_is_checked_once_per_checkpoint() -> None:
    ours, theirs = both_logs(30, witness_every=10)
    result = reconcile(signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    assert result.ok, result.findings
    assert result.matched == 30
    assert result.witnessed == 20  # exchanges 10..29 carry a checkpoint
    assert result.witnessed_checkpoints == 2  # sizes 10 and 20


def test_a_rewritten_user_on_a_refusal_is_caught_against_the_other_side() -> None:
    ours, theirs = both_logs(5, statuses={3: "NOT_FOUND"})
    # The provider's owner edits the user of the NOT_FOUND record and re-signs its
    # whole log: it verifies on its own; only the consumer's record contradicts it.
    theirs[3] = dataclasses.replace(theirs[3], user="someone.else")
    result = reconcile(
        signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER), names=("moh", "mpwt")
    )
    (found,) = result.findings
    assert (found.kind, found.exchange_id, found.bundle, found.index) == (
        Kind.FIELDS_DIFFER,
        ours[3].exchange_id,
        "moh",
        3,
    )
    assert found.consumer == {"user": "dr.sokha@hospital.example"}
    assert found.provider == {"user": "someone.else"}


@pytest.mark.parametrize("name", ["client", "service", "method", "user", "purpose"])
def test_every_party_field_is_compared(name: str) -> None:
    ours, theirs = both_logs(3)
    theirs[1] = dataclasses.replace(theirs[1], **{name: "KH/GOV/MPWT/changed"})
    result = reconcile(signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    kinds = {(f.kind, f.exchange_id) for f in result.findings}
    if name == "client":
        # Another client: it is no longer the consumer's exchange at the provider.
        assert (Kind.FIELDS_DIFFER, ours[1].exchange_id) in kinds
    else:
        assert kinds == {(Kind.FIELDS_DIFFER, ours[1].exchange_id)}
    (found,) = [f for f in result.findings if f.kind is Kind.FIELDS_DIFFER]
    assert found.provider == {name: "KH/GOV/MPWT/changed"}
    assert found.consumer == {name: getattr(ours[1], name)}


def test_a_field_the_provider_never_reached_is_not_a_difference() -> None:
    ours, theirs = both_logs(2, statuses={1: "PERMISSION_DENIED"})
    # Refused before forwarding: the provider had not read the user yet.
    theirs[1] = dataclasses.replace(theirs[1], user="", purpose="", forwarded_at_ns=0)
    result = reconcile(signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    assert result.ok, result.findings


def test_a_provider_that_withheld_its_last_records_is_reported_not_an_abort() -> None:
    ours, theirs = both_logs(12, witness_every=4)
    provider = signed_log(theirs, MPWT_SIGNER)
    # The provider's bundle loses its last record but keeps the checkpoint over it;
    # the consumer witnessed size 8, within what is left.
    cut = dataclasses.replace(provider, records=provider.records[:-1])
    result = reconcile(signed_log(ours, MOH_SIGNER), cut, names=("moh.zip", "mpwt.zip"))
    kinds = [(f.kind, f.bundle, f.exchange_id) for f in result.findings]
    assert kinds == [
        (Kind.CHECKPOINT_BEYOND_RECORDS, "mpwt.zip", ""),
        (Kind.MISSING_AT_PROVIDER, "moh.zip", ours[11].exchange_id),
    ]
    assert "covers records the bundle lacks (it stops at 11)" in result.findings[0].detail


def test_a_witness_beyond_the_providers_bundle_names_the_exchange() -> None:
    ours, theirs = both_logs(12, witness_every=4)
    # An older, shorter export of the provider's log: 6 records, checkpointed at 6.
    short = signed_log(theirs[:6], MPWT_SIGNER)
    result = reconcile(signed_log(ours, MOH_SIGNER), short, names=("moh.zip", "mpwt.zip"))
    beyond = [f for f in result.findings if f.kind is Kind.WITNESS_BEYOND_LOG]
    # Exchanges 8..11 witnessed size 8.
    assert [(f.exchange_id, f.bundle, f.index) for f in beyond] == [
        (ours[n].exchange_id, "moh.zip", n) for n in range(8, 12)
    ]
    assert "beyond the provider's bundle mpwt.zip (it stops at 6)" in beyond[0].detail


def test_a_rewritten_witnessed_prefix_contradicts_every_witness_of_it() -> None:
    ours, theirs = both_logs(12, witness_every=4)
    theirs[2] = dataclasses.replace(theirs[2], message="rewritten")  # a field no one compares
    result = reconcile(signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    assert {f.kind for f in result.findings} == {Kind.WITNESS_CONTRADICTED}
    assert [f.index for f in result.findings] == list(range(4, 12))
    assert result.witnessed_checkpoints == 2


def test_a_consumer_record_edited_without_re_signing_is_reported() -> None:
    ours, theirs = both_logs(4)
    consumer = signed_log(ours, MOH_SIGNER)
    records = list(consumer.records)
    records[1] = b"\xff" + records[1]
    broken = dataclasses.replace(consumer, records=tuple(records))
    result = reconcile(broken, signed_log(theirs, MPWT_SIGNER), names=("moh.zip", "mpwt.zip"))
    kinds = [(f.kind, f.bundle, f.index) for f in result.findings]
    assert (Kind.UNREADABLE_RECORD, "moh.zip", 1) in kinds
    assert (Kind.CHECKPOINT_MISMATCH, "moh.zip", 3) in kinds
    assert (Kind.MISSING_AT_CONSUMER, "mpwt.zip", 1) in kinds


def test_the_provider_answered_ok_and_the_consumer_never_logged_it() -> None:
    ours, theirs = both_logs(3)
    result = reconcile(signed_log(ours[:2], MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    (found,) = result.findings
    assert (found.kind, found.exchange_id) == (Kind.MISSING_AT_CONSUMER, theirs[2].exchange_id)
    assert "its application never got the answer" in found.detail
    assert found.provider is not None
    assert found.provider["status"] == "OK"


# -- files, JSON and exit codes ---------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, list[AuditRecord]]:
    ours, theirs = both_logs(20, witness_every=5, statuses={17: "NOT_FOUND"})
    # After the last checkpoint the consumer witnessed (size 15): only the consumer's
    # record of the exchange can contradict it.
    theirs[17] = dataclasses.replace(theirs[17], user="someone.else")
    write_bundle(signed_log(ours, MOH_SIGNER), tmp_path / "moh.zip")
    write_bundle(signed_log(theirs, MPWT_SIGNER), tmp_path / "mpwt.zip")
    return tmp_path / "moh.zip", tmp_path / "mpwt.zip", ours


def test_files_are_streamed_to_the_same_result(
    files: tuple[Path, Path, list[AuditRecord]],
) -> None:
    moh, mpwt, _ = files
    streamed = reconcile_files(mpwt, moh)
    read = reconcile(read_bundle(mpwt), read_bundle(moh), names=(str(mpwt), str(moh)))
    assert streamed == read
    seen: list[int] = []
    reconcile_files(moh, mpwt, progress=seen.append)
    assert sum(seen) >= records_to_read(moh, mpwt)


def test_json_lists_every_finding_with_both_records_fields(
    files: tuple[Path, Path, list[AuditRecord]], capsys: pytest.CaptureFixture[str]
) -> None:
    moh, mpwt, ours = files
    assert main(["audit", "reconcile", str(mpwt), str(moh), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["swapped"] is True
    assert report["consumer"] == {
        "bundle": str(moh),
        "origin": MOH_ORIGIN,
        "member": "KH/GOV/MOH",
        "side": "CONSUMER",
        "records": 20,
    }
    assert report["provider"]["side"] == "PROVIDER"
    assert (report["matched"], report["witnessed"], report["witnessed_checkpoints"]) == (20, 15, 3)
    assert report["findings"] == [
        {
            "kind": "fields-differ",
            "exchange_id": ours[17].exchange_id,
            "bundle": str(moh),
            "index": 17,
            "detail": "consumer and provider recorded user 'dr.sokha@hospital.example' / "
            "'someone.else'",
            "consumer": {"user": "dr.sokha@hospital.example"},
            "provider": {"user": "someone.else"},
        }
    ]


def test_exit_codes(
    files: tuple[Path, Path, list[AuditRecord]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moh, mpwt, _ = files
    ours, theirs = both_logs(3)
    write_bundle(signed_log(ours, MOH_SIGNER), tmp_path / "moh-ok.zip")
    write_bundle(signed_log(theirs, MPWT_SIGNER), tmp_path / "mpwt-ok.zip")
    assert (
        main(["audit", "reconcile", str(tmp_path / "mpwt-ok.zip"), str(tmp_path / "moh-ok.zip")])
        == 0
    )
    out = capsys.readouterr().out
    assert "[given provider first]" in out
    assert out.rstrip().endswith("OK: both logs agree")
    assert main(["audit", "reconcile", str(moh), str(mpwt)]) == 2
    out = capsys.readouterr().out
    assert f"fields-differ: {ours[0].exchange_id[:-2]}17 ({moh} record 17)" in out
    assert out.rstrip().endswith("DIFFERENT: 1 findings")
    # Unusable input: 2, one line on stderr saying why, nothing on stdout.
    assert main(["audit", "reconcile", str(moh), str(tmp_path / "moh-ok.zip")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "both hold only consumer records" in captured.err
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert main(["audit", "reconcile", str(moh), str(tmp_path / "junk.zip")]) == 1
    assert "junk.zip is not a readable audit bundle" in capsys.readouterr().err


def test_a_progress_bar_only_on_a_terminal(
    files: tuple[Path, Path, list[AuditRecord]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import spean.gateway.audit.reconcile as module

    moh, mpwt, _ = files
    given: list[bool] = []
    real = module.reconcile_files

    def spy(first: Path, second: Path, *, progress: Progress | None = None) -> Reconciliation:
        given.append(progress is not None)
        return real(first, second, progress=progress)

    monkeypatch.setattr(module, "reconcile_files", spy)
    main(["audit", "reconcile", str(moh), str(mpwt)])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    main(["audit", "reconcile", str(moh), str(mpwt), "--json"])
    main(["audit", "reconcile", str(moh), str(mpwt)])
    assert given == [False, False, True]
    assert "DIFFERENT: 1 findings" in capsys.readouterr().out


def test_a_rewritten_data_subject_pseudonym_is_caught_against_the_other_side() -> None:
    pseudonym = hashlib.sha256(b"subject 1").digest()
    ours, theirs = both_logs(3)
    ours[1] = dataclasses.replace(ours[1], subject_pseudonym=pseudonym)
    # The provider's owner hides which person the exchange touched, and re-signs.
    theirs[1] = dataclasses.replace(
        theirs[1], subject_pseudonym=hashlib.sha256(b"subject 2").digest()
    )
    result = reconcile(signed_log(ours, MOH_SIGNER), signed_log(theirs, MPWT_SIGNER))
    (found,) = result.findings
    assert (found.kind, found.exchange_id) == (Kind.FIELDS_DIFFER, ours[1].exchange_id)
    assert found.consumer == {"subject_pseudonym": pseudonym.hex()}
    assert found.provider == {"subject_pseudonym": hashlib.sha256(b"subject 2").digest().hex()}
