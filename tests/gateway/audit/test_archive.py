"""Retention: archive segments cut at checkpoints, on SQLite and PostgreSQL alike.

The story: a writer signs a checkpoint every 4 records; records are one day
apart. Archiving what is older than a limit writes a segment per run, deletes
those records from the store, and leaves a log that still verifies from the
cut; the writer carries on; segment 1 + segment 2 + a live export verify as
one log; a tampered or missing segment is caught.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from spean.gateway.audit.archive import (
    NS_PER_DAY,
    archive_log,
    check_sequence,
    plan_cut,
    segment_name,
)
from spean.gateway.audit.backends import open_store
from spean.gateway.audit.bundle import Bundle, export_bundle, read_bundle
from spean.gateway.audit.chain import ChainError, ChainHead, verify_chain
from spean.gateway.audit.checkpoint import CheckpointSigner
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import ArchiveCut, AuditStore
from spean.gateway.audit.verify import Check, verify_structure
from spean.gateway.audit.writer import CheckpointPolicy
from spean.gateway.errors import AuditError
from tests.support.pki import MEMBER, self_signed

ORIGIN = "KH/GOV/MOH/ss1#w0"
DAY0 = 1_732_492_800_000_000_000


def record(n: int) -> AuditRecord:
    return AuditRecord(
        exchange_id=f"exchange-{n}",
        side=Side.PROVIDER,
        origin=ORIGIN,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        received_at_ns=DAY0 + n * NS_PER_DAY,
        status="OK",
    )


def day(n: int) -> int:
    """The receive time of record n: records before it are older."""
    return DAY0 + n * NS_PER_DAY


def writer(url: str, signer: CheckpointSigner) -> AuditStore:
    policy = CheckpointPolicy(signer, every_records=4, every_ms=3_600_000)
    return open_store(url, ORIGIN, checkpoints=policy)


def fill(url: str, signer: CheckpointSigner, numbers: range) -> None:
    with writer(url, signer) as store:
        for n in numbers:
            store.append(record(n), bodies=f"sealed-{n}".encode() if n % 2 else b"")


def archive(url: str, folder: Path, before_ns: int, cert: x509.Certificate) -> object:
    with open_store(url, f"{ORIGIN}.archive") as store:
        return archive_log(
            store,
            ORIGIN,
            before_ns=before_ns,
            archive_dir=folder,
            globalconf=b"",
            anchor_pem=b"",
            certificates=(cert,),
        )


def live(url: str) -> Bundle:
    with open_store(url, f"{ORIGIN}.export") as store:
        return export_bundle(store, globalconf=b"", anchor_pem=b"", origin=ORIGIN)


@pytest.fixture
def keyed() -> tuple[CheckpointSigner, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(key)
    return CheckpointSigner(MEMBER, key, certificate), certificate


def test_plan_cut_takes_the_last_checkpoint_before_the_first_young_record() -> None:
    received = [(i, day(i)) for i in range(10)]
    assert plan_cut(received, [4, 8, 10], 0, day(6)) == 4
    assert plan_cut(received, [4, 8, 10], 0, day(8)) == 8
    assert plan_cut(received, [4, 8, 10], 0, day(99)) == 10
    assert plan_cut(received, [4, 8, 10], 0, day(3)) is None
    assert plan_cut(received[4:], [4, 8, 10], 4, day(6)) is None  # only the cut itself
    # A record with a late clock holds back everything after it.
    skewed = [(0, day(0)), (1, day(50)), (2, day(2)), (3, day(3)), (4, day(4))]
    assert plan_cut(skewed, [2, 4], 0, day(10)) is None
    assert segment_name(ORIGIN, 4, 8) == "KH_GOV_MOH_ss1#w0/000000000004-000000000008.zip"


def test_archive_twice_then_the_remainder_and_segments_verify_as_one_log(
    store_url: str, tmp_path: Path, keyed: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, cert = keyed
    folder = tmp_path / "archive"
    fill(store_url, signer, range(10))  # checkpoints at 4, 8 and 10 (on close)

    first = archive(store_url, folder, day(6), cert)
    second = archive(store_url, folder, day(9), cert)
    assert archive(store_url, folder, day(9), cert) is None  # nothing more is old enough
    assert [(s.start, s.stop, s.deleted) for s in (first, second)] == [(0, 4, 4), (4, 8, 4)]  # type: ignore[attr-defined]

    with open_store(store_url, f"{ORIGIN}.export") as store:
        assert [s.index for s in store.read(origin=ORIGIN)] == [8, 9]
        assert sorted(store.read_bodies(origin=ORIGIN)) == [9]
        assert [c.size for c in store.checkpoints(origin=ORIGIN)] == [8, 10]
        cut = store.cut(origin=ORIGIN)
        assert cut is not None
        assert (cut.size, cut.segment) == (8, segment_name(ORIGIN, 4, 8))
        remaining = [s.chain_entry() for s in store.read(origin=ORIGIN)]
        verify_chain(remaining, start=ChainHead(cut.size, cut.chain))
        with pytest.raises(ChainError):
            verify_chain(remaining)  # from genesis: the archived prefix is missing
        assert ORIGIN in store.origins()

    # The writer resumes the same chain and tree, and signs on.
    fill(store_url, signer, range(10, 13))
    segments = [read_bundle(folder / segment_name(ORIGIN, a, b)) for a, b in ((0, 4), (4, 8))]
    remainder = live(store_url)
    assert (remainder.start, remainder.stop) == (8, 13)
    assert [b.bodies for b in segments] == [
        ((1, b"sealed-1"), (3, b"sealed-3")),
        ((5, b"sealed-5"), (7, b"sealed-7")),
    ]
    for bundle in (*segments, remainder):
        assert verify_structure(bundle, (cert,))[1] == ()
    assert check_sequence([*segments, remainder]) == ()


def test_a_tampered_segment_is_caught_at_its_record(
    store_url: str, tmp_path: Path, keyed: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, cert = keyed
    folder = tmp_path / "archive"
    fill(store_url, signer, range(9))
    archive(store_url, folder, day(8), cert)  # cut at 8: record 8 is young
    path = folder / segment_name(ORIGIN, 0, 8)
    segment = read_bundle(path)
    forged = dataclasses.replace(record(5), status="PERMISSION_DENIED").to_bytes()
    records = list(segment.records)
    records[5] = forged
    tampered = tmp_path / "tampered.zip"
    # Rewrite the file itself, as someone with access to the archive would.
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(tampered, "w") as out:
        for item in original.namelist():
            data = original.read(item)
            if item == "records.bin":
                data = b"".join(len(r).to_bytes(4, "big") + r for r in records)
            out.writestr(item, data)
    _, problems = verify_structure(read_bundle(tampered), (cert,))
    assert problems
    assert problems[0].index == 5
    assert problems[0].check is Check.CHAIN
    assert check_sequence([read_bundle(tampered), live(store_url)]) != ()  # no longer chains


def test_segments_must_chain_to_each_other_and_to_the_remainder(
    store_url: str, tmp_path: Path, keyed: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, cert = keyed
    folder = tmp_path / "archive"
    fill(store_url, signer, range(10))
    archive(store_url, folder, day(6), cert)
    archive(store_url, folder, day(9), cert)
    one, two = (read_bundle(folder / segment_name(ORIGIN, a, b)) for a, b in ((0, 4), (4, 8)))
    rest = live(store_url)

    missing = check_sequence([one, rest])
    assert [(p.index, p.check) for p in missing] == [(4, Check.SEQUENCE)]
    assert "records [4, 8) are missing" in missing[0].reason
    assert check_sequence([two, one, rest]) != ()

    # A segment of another log under the same name: a different history.
    other_url = str(tmp_path / "other.db")
    with writer(other_url, signer) as store:
        for n in range(10):
            store.append(dataclasses.replace(record(n), user=f"someone-else-{n}"))
    archive(other_url, tmp_path / "other", day(6), cert)
    archive(other_url, tmp_path / "other", day(9), cert)
    foreign = read_bundle(tmp_path / "other" / segment_name(ORIGIN, 4, 8))
    assert verify_structure(foreign, (cert,))[1] == ()  # fine on its own
    reasons = " | ".join(p.reason for p in check_sequence([one, foreign, rest]))
    assert "chain hash" in reasons
    assert "tree state" in reasons
    assert "forked" in reasons  # the checkpoint at 4 has two roots


def test_the_store_refuses_a_cut_that_does_not_match_its_records(
    store_url: str, tmp_path: Path, keyed: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, _ = keyed
    fill(store_url, signer, range(8))
    with open_store(store_url, f"{ORIGIN}.archive") as store:
        bogus = ArchiveCut(ORIGIN, 4, bytes(32), b"", "x.zip", 0)
        with pytest.raises(AuditError, match="chain hash of record 3 differs"):
            store.archive_prefix(bogus)
        chain = next(iter(store.read(2, 3, origin=ORIGIN))).chain_hash
        with pytest.raises(AuditError, match="no checkpoint is stored at size 3"):
            store.archive_prefix(ArchiveCut(ORIGIN, 3, chain, b"", "x.zip", 0))
        assert len(list(store.read(origin=ORIGIN))) == 8  # nothing deleted


def test_archiving_everything_leaves_a_log_the_writer_continues(
    store_url: str, tmp_path: Path, keyed: tuple[CheckpointSigner, x509.Certificate]
) -> None:
    signer, cert = keyed
    fill(store_url, signer, range(6))  # checkpoints at 4 and 6
    done = archive(store_url, tmp_path / "a", day(100), cert)
    assert (done.start, done.stop) == (0, 6)  # type: ignore[attr-defined]
    with writer(store_url, signer) as store:
        assert store.size() == 6
        assert store.append(record(6)).index == 6
    segment = read_bundle(tmp_path / "a" / segment_name(ORIGIN, 0, 6))
    rest = live(store_url)
    assert (rest.start, rest.stop) == (6, 7)
    assert verify_structure(rest, (cert,))[1] == ()
    assert check_sequence([segment, rest]) == ()
    assert AuditRecord.from_bytes(rest.records[0]).exchange_id == "exchange-6"


def test_a_sequence_of_bundles_is_verified_with_the_jobs_asked_for(tmp_path: Path) -> None:
    # `spean audit verify A B --jobs N` hands N to each bundle's verification.
    from spean.gateway.audit.archive import verify_sequence
    from spean.gateway.errors import InvalidArgument
    from tests.support.honest_log import build_log

    bundle = build_log(tmp_path, 4).bundle
    assert verify_sequence([bundle], jobs=1).ok
    with pytest.raises(InvalidArgument, match="jobs must be at least 1, got 0"):
        verify_sequence([bundle], jobs=0)
