"""Bundle files: read back as written, damaged ones refused with a message naming the file
and the member, and read without holding the records twice.

The bundles are the honest demo log of tests/support/honest_log.py, written with
`write_bundle`; damaged copies rewrite one ZIP member.
"""

from __future__ import annotations

import re
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from spean.gateway.audit.bundle import BundleError, read_bundle, write_bundle
from tests.support.honest_log import Log, build_log

RECORDS = 2000


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("bundle"), RECORDS)


@pytest.fixture(scope="module")
def path(log: Log, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle-file") / "log.zip"
    write_bundle(log.bundle, out)
    return out


def rewritten(path: Path, name: str, data: bytes | None, tmp_path: Path) -> Path:
    """A copy of the bundle with member `name` replaced by `data` (None: left out)."""
    out = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.namelist():
            if member != name:
                target.writestr(member, source.read(member))
            elif data is not None:
                target.writestr(member, data)
    return out


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def test_a_bundle_reads_back_as_written(log: Log, path: Path) -> None:
    bundle = read_bundle(path)
    assert bundle == log.bundle
    assert bundle.declared_records == RECORDS


def test_reading_holds_the_records_once(log: Log, path: Path) -> None:
    size = sum(len(r) for r in log.bundle.records)
    tracemalloc.start()
    try:
        bundle = read_bundle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(bundle.records) == RECORDS
    # The records themselves, their chain hashes and object overhead; not also
    # a copy of records.bin.
    assert peak < 1.5 * size, f"peak {peak:,} B for {size:,} B of records"


@pytest.mark.parametrize(
    ("name", "cut", "message"),
    [
        ("records.bin", -2, "records.bin ends inside a length prefix"),
        ("records.bin", 10, f"records.bin ends inside record {RECORDS - 1}"),
        ("chains.bin", 1, "chains.bin is not a whole number of 32-byte hashes"),
    ],
)
def test_a_truncated_member_is_named(
    path: Path, tmp_path: Path, name: str, cut: int, message: str
) -> None:
    data = member(path, name)
    # A negative cut leaves the start of one more length prefix.
    damaged = rewritten(path, name, data[:-cut] if cut > 0 else data + b"\0" * -cut, tmp_path)
    with pytest.raises(BundleError, match=re.escape(message)) as raised:
        read_bundle(damaged)
    assert str(damaged) in raised.value.message


def test_a_missing_member_is_named(path: Path, tmp_path: Path) -> None:
    damaged = rewritten(path, "chains.bin", None, tmp_path)
    with pytest.raises(BundleError, match=re.escape("audit bundle lacks chains.bin")):
        read_bundle(damaged)


def test_a_file_that_is_not_a_zip_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(BundleError, match=re.escape("junk.zip is not a readable audit bundle")):
        read_bundle(junk)


def test_a_manifest_that_is_not_an_object_is_named(path: Path, tmp_path: Path) -> None:
    damaged = rewritten(path, "manifest.json", b"[1, 2]", tmp_path)
    with pytest.raises(BundleError, match=re.escape("manifest.json is not a JSON object")):
        read_bundle(damaged)
