"""Audit bundles: a self-contained export of one writer's log, for offline auditors.

A bundle is a ZIP file holding:

    manifest.json      format, origin, first index, record count, the log size
                       at export, the chain hash before the first record, the
                       Merkle compact range before the first record, export time
    records.bin        the records' canonical bytes, each preceded by its length
                       (4 bytes, big-endian), in index order
    chains.bin         the stored chain hash of each record (32 bytes each)
    checkpoints.txt    the signed checkpoint notes covering the range, by size,
                       each note followed by the line "~~~~" (never part of a note)
    globalconf.bin     the SignedGlobalConfiguration the exporter held
    anchor.pem         the configuration-signing certificate the exporter trusted
    bodies.bin         optional: the sealed bodies of records that have them
                       (gateway/audit/bodies.py), each as index (8 bytes),
                       length (4 bytes), sealed bytes, all big-endian

Invariants: nothing in a bundle is trusted by the verifier because it is in
the bundle. Records are checked against signed checkpoints; checkpoints and
tokens against certificates in the global configuration; the configuration
against an anchor the auditor supplies (the bundled one is only a default,
and the report says so). The manifest's numbers only frame the data; every
one of them is re-derived or cross-checked by `spean.gateway.audit.verify`
(`start`, `start_chain`, `start_state` by the chain and the tree; `records`
against the records read; `log_size` and `exported_at_ns` against the signed
checkpoints; see docs/auditor.md, "What the manifest proves").

An export covers the contiguous index range of the records received in the
requested time range, cut at the last signed checkpoint: records after it are
not provable yet and are left for the next export. Records already moved to
archive segments (gateway/audit/archive.py) are not in the store: an export
then starts at the archive cut, from the chain hash and tree state kept there.
The same format serves as an archive segment.

Reading: `open_bundle` reads the small members at once and streams the
records, chain hashes and bodies at each pass (`BundleSource`), a chunk of
the member at a time, so that verify and reconcile run in bounded memory
whatever the log's size; `read_bundle` reads a bundle whole, for the tools
that need its records at hand (show, replay, archive).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.checkpoint import CheckpointError, parse_checkpoint
from spean.gateway.audit.merkle import HASH_SIZE, CompactRange, CompactRangeState
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.store import ArchiveCut, AuditStore, StoredCheckpoint
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.files import keyfiles

FORMAT = "spean-audit-bundle/1"
NOTE_SEPARATOR = b"~~~~\n"
_LENGTH = struct.Struct(">I")
_BODY = struct.Struct(">QI")


class BundleError(InvalidArgument):
    """A bundle file cannot be read: not a bundle, damaged, or of another format."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """One writer's log (or a contiguous part of it) with what proves it."""

    origin: str
    start: int
    records: tuple[bytes, ...]
    chains: tuple[bytes, ...]
    start_chain: bytes
    start_state: CompactRangeState
    checkpoints: tuple[bytes, ...]
    globalconf: bytes
    anchor_pem: bytes
    log_size: int
    exported_at_ns: int
    bodies: tuple[tuple[int, bytes], ...] = ()
    """(record index, sealed bodies), by index; only records that have them."""
    declared_records: int | None = field(default=None, compare=False)
    """The manifest's `records` when read from a file (verify compares it with the
    records read); None for a bundle made in memory. Not part of equality: a
    bundle read back equals the bundle written."""

    @property
    def stop(self) -> int:
        """One past the last index in the bundle."""
        return self.start + len(self.records)


def export_bundle(
    store: AuditStore,
    *,
    globalconf: bytes,
    anchor_pem: bytes,
    origin: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Bundle:
    """Export `origin`'s log (this store's by default), or the part received in
    [since_ns, until_ns), up to its last signed checkpoint."""
    origin = store.origin if origin is None else origin
    checkpoints = store.checkpoints(origin=origin)
    # Records below an archive cut are in archive segments, no longer stored.
    cut = store.cut(origin=origin)
    floor = 0 if cut is None else cut.size
    covered = checkpoints[-1].size if checkpoints else floor
    start, stop = floor, covered
    if since_ns is not None or until_ns is not None:
        first: int | None = None
        last = -1
        for stored in store.read(0, covered, origin=origin):
            received = AuditRecord.from_bytes(stored.record_bytes).received_at_ns
            inside = (since_ns is None or received >= since_ns) and (
                until_ns is None or received < until_ns
            )
            if inside:
                first = stored.index if first is None else first
                last = stored.index
        start, stop = (floor, floor) if first is None else (first, last + 1)
    return _export(store, origin, checkpoints, cut, start, stop, globalconf, anchor_pem)


def export_range(
    store: AuditStore,
    *,
    origin: str,
    start: int,
    stop: int,
    globalconf: bytes,
    anchor_pem: bytes,
) -> Bundle:
    """Export exactly `origin`'s records `[start, stop)` (within what the store holds),
    with the checkpoints over them; archive segments use this with `stop` at a
    checkpoint size, so the segment ends proven."""
    checkpoints = store.checkpoints(origin=origin)
    cut = store.cut(origin=origin)
    if cut is not None and start < cut.size:
        raise InvalidArgument(
            f"records [{start}, {cut.size}) of {origin} were archived to {cut.segment}"
        )
    return _export(store, origin, checkpoints, cut, start, stop, globalconf, anchor_pem)


def _export(
    store: AuditStore,
    origin: str,
    checkpoints: list[StoredCheckpoint],
    cut: ArchiveCut | None,
    start: int,
    stop: int,
    globalconf: bytes,
    anchor_pem: bytes,
) -> Bundle:
    covered = checkpoints[-1].size if checkpoints else 0
    # Tree and chain state before `start`: from the nearest stored checkpoint
    # at or before it, then the records in between.
    base = [c for c in checkpoints if c.size <= start]
    state = CompactRangeState.from_bytes(base[-1].tree_state) if base else CompactRangeState(0, ())
    tree = CompactRange.from_state(state)
    start_chain = cut.chain if cut is not None and start == cut.size else GENESIS.hash
    for stored in store.read(max(0, start - 1), start, origin=origin):
        start_chain = stored.chain_hash
    for stored in store.read(state.size, start, origin=origin):
        tree.append_record(stored.record_bytes)
    records: list[bytes] = []
    chains: list[bytes] = []
    for stored in store.read(start, stop, origin=origin):
        records.append(stored.record_bytes)
        chains.append(stored.chain_hash)
    # The checkpoints over the range, plus the first one after it (it proves
    # the range's last records when the range ends between checkpoints).
    notes = [c.note for c in checkpoints if start <= c.size <= stop]
    later = [c for c in checkpoints if c.size > stop]
    if later and stop not in {c.size for c in checkpoints} and records:
        records_to_next: list[bytes] = []
        for stored in store.read(stop, later[0].size, origin=origin):
            records_to_next.append(stored.record_bytes)
            chains.append(stored.chain_hash)
        records.extend(records_to_next)
        notes.append(later[0].note)
    return Bundle(
        origin=origin,
        start=start,
        records=tuple(records),
        chains=tuple(chains),
        start_chain=start_chain,
        start_state=tree.state(),
        checkpoints=tuple(notes),
        globalconf=globalconf,
        anchor_pem=anchor_pem,
        log_size=store.size() if origin == store.origin else covered,
        exported_at_ns=time.time_ns(),
        bodies=tuple(sorted(store.read_bodies(start, start + len(records), origin=origin).items())),
    )


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Write `bundle` to `path` as a ZIP file, durably and atomically.

    Once this returns the file survives a crash; a failed write leaves any
    earlier file at `path` as it was and no partial file behind.
    """
    try:
        keyfiles.write_file_atomically(path, encode_bundle(bundle), mode=0o640)
    except FailedPrecondition as exc:
        raise BundleError(f"cannot write audit bundle {path}: {exc.message}") from exc


def encode_bundle(bundle: Bundle) -> bytes:
    """The ZIP bytes of `bundle` (see the module docstring)."""
    manifest = {
        "format": FORMAT,
        "origin": bundle.origin,
        "start": bundle.start,
        "records": len(bundle.records),
        "log_size": bundle.log_size,
        "start_chain": base64.b64encode(bundle.start_chain).decode("ascii"),
        "start_state": bundle.start_state.to_dict(),
        "exported_at_ns": bundle.exported_at_ns,
    }
    body = io.BytesIO()
    for data in bundle.records:
        body.write(_LENGTH.pack(len(data)))
        body.write(data)
    encoded = io.BytesIO()
    with zipfile.ZipFile(encoded, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        archive.writestr("records.bin", body.getvalue())
        archive.writestr("chains.bin", b"".join(bundle.chains))
        archive.writestr(
            "checkpoints.txt", b"".join(n + NOTE_SEPARATOR for n in bundle.checkpoints)
        )
        archive.writestr("globalconf.bin", bundle.globalconf)
        archive.writestr("anchor.pem", bundle.anchor_pem)
        if bundle.bodies:
            archive.writestr(
                "bodies.bin",
                b"".join(
                    _BODY.pack(index, len(sealed)) + sealed for index, sealed in bundle.bodies
                ),
            )
    return encoded.getvalue()


_SMALL_MEMBERS = ("manifest.json", "checkpoints.txt", "globalconf.bin", "anchor.pem")
_REQUIRED = (*_SMALL_MEMBERS, "records.bin", "chains.bin")
_CHUNK = 1 << 18
"""Bytes read from a ZIP member at a time (256 KiB): large reads keep the inflating and the
CRC in C; a record is cut out of the chunk with one slice."""
_ZIP_ERRORS = (OSError, zipfile.BadZipFile, KeyError, EOFError, zlib.error)


@dataclass(frozen=True, slots=True)
class BundleSource:
    """A bundle whose records, chain hashes and sealed bodies are read when iterated.

    `frame` is the bundle with `records`, `chains` and `bodies` left empty (and
    its `declared_records` the manifest's count, when read from a file);
    `records()`, `chains()` and `bodies()` each start a new pass, in index order,
    holding one chunk of the member and one item at a time, so that a bundle of
    any size is checked in bounded memory. Passes are independent: the verifier
    walks `records()` and `chains()` side by side."""

    name: str
    frame: Bundle
    records: Callable[[], Iterator[bytes]]
    chains: Callable[[], Iterator[bytes]]
    bodies: Callable[[], Iterator[tuple[int, bytes]]]


def source_of(bundle: Bundle, name: str = "bundle") -> BundleSource:
    """A bundle already in memory, as a `BundleSource`."""
    frame = replace(bundle, records=(), chains=(), bodies=())
    return BundleSource(
        name,
        frame,
        lambda: iter(bundle.records),
        lambda: iter(bundle.chains),
        lambda: iter(bundle.bodies),
    )


def open_bundle(path: Path) -> BundleSource:
    """The bundle file at `path` as a `BundleSource`: its small members read now (the
    frame), its records, chain hashes and bodies streamed at each pass.
    `BundleError` names what is missing or malformed, now or during a pass."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for name in _REQUIRED:
                if name not in names:
                    raise BundleError(f"{path}: audit bundle lacks {name}")
            files = {name: archive.read(name) for name in _SMALL_MEMBERS}
    except _ZIP_ERRORS as exc:
        raise BundleError(f"{path} is not a readable audit bundle: {exc}") from exc
    frame = _frame(files, path)
    has_bodies = "bodies.bin" in names
    return BundleSource(
        str(path),
        frame,
        lambda: _stream_records(path),
        lambda: _stream_chains(path),
        lambda: _stream_bodies(path) if has_bodies else iter(()),
    )


def read_bundle(path: Path) -> Bundle:
    """Read a bundle file whole; `BundleError` names what is missing or malformed.

    For tools that need random access to the records (show, replay, archive);
    verify and reconcile stream them (`open_bundle`)."""
    source = open_bundle(path)
    return replace(
        source.frame,
        records=tuple(source.records()),
        chains=tuple(source.chains()),
        bodies=tuple(source.bodies()),
    )


def _frame(files: dict[str, bytes], path: Path) -> Bundle:
    manifest = _manifest(files["manifest.json"], path)
    notes = files["checkpoints.txt"].split(NOTE_SEPARATOR)
    if notes[-1] != b"":
        raise BundleError(f"{path}: checkpoints.txt does not end with a separator line")
    try:
        return Bundle(
            origin=str(manifest["origin"]),
            start=_int(manifest["start"]),
            records=(),
            chains=(),
            start_chain=base64.b64decode(str(manifest["start_chain"]), validate=True),
            start_state=CompactRangeState.from_dict(manifest["start_state"]),
            checkpoints=tuple(notes[:-1]),
            globalconf=files["globalconf.bin"],
            anchor_pem=files["anchor.pem"],
            log_size=_int(manifest["log_size"]),
            exported_at_ns=_int(manifest["exported_at_ns"]),
            declared_records=_int(manifest["records"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidArgument) as exc:
        raise BundleError(f"{path}: manifest.json is malformed: {exc}") from exc


def _manifest(data: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"{path}: manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def _stream_records(path: Path) -> Iterator[bytes]:
    """The records of records.bin, cut from chunks of `_CHUNK` bytes (one chunk and one record
    held at a time)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("records.bin") as stream:
            read = stream.read
            unpack_from = _LENGTH.unpack_from
            buffer = b""
            offset = 0
            count = 0
            while True:
                block = read(_CHUNK)
                buffer = buffer[offset:] + block if offset else buffer + block
                offset = 0
                end = len(buffer)
                while offset + 4 <= end:
                    (length,) = unpack_from(buffer, offset)
                    stop = offset + 4 + length
                    if stop > end:
                        break
                    yield buffer[offset + 4 : stop]
                    offset = stop
                    count += 1
                if not block:
                    break
            if offset < len(buffer):
                where = "a length prefix" if len(buffer) - offset < 4 else f"record {count}"
                raise BundleError(f"{path}: records.bin ends inside {where}")
    except _ZIP_ERRORS as exc:
        raise BundleError(f"{path}: cannot read records.bin: {exc}") from exc


def _stream_chains(path: Path) -> Iterator[bytes]:
    try:
        with zipfile.ZipFile(path) as archive, archive.open("chains.bin") as stream:
            rest = b""
            while block := stream.read(_CHUNK):
                block = rest + block
                whole = len(block) - len(block) % HASH_SIZE
                for i in range(0, whole, HASH_SIZE):
                    yield block[i : i + HASH_SIZE]
                rest = block[whole:]
            if rest:
                raise BundleError(f"{path}: chains.bin is not a whole number of 32-byte hashes")
    except _ZIP_ERRORS as exc:
        raise BundleError(f"{path}: cannot read chains.bin: {exc}") from exc


def _stream_bodies(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with zipfile.ZipFile(path) as archive, archive.open("bodies.bin") as stream:
            while header := stream.read(_BODY.size):
                if len(header) < _BODY.size:
                    raise BundleError(f"{path}: bodies.bin ends inside an entry header")
                index, length = _BODY.unpack(header)
                sealed = stream.read(length)
                if len(sealed) < length:
                    raise BundleError(
                        f"{path}: bodies.bin ends inside the bodies of record {index}"
                    )
                yield index, sealed
    except _ZIP_ERRORS as exc:
        raise BundleError(f"{path}: cannot read bodies.bin: {exc}") from exc


def checkpoint_sizes(bundle: Bundle) -> list[int]:
    """Sizes of the bundle's parseable checkpoints (for display)."""
    sizes = []
    for note in bundle.checkpoints:
        try:
            sizes.append(parse_checkpoint(note).size)
        except CheckpointError:
            continue
    return sizes


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def read_bundle_frame(path: Path) -> tuple[Bundle, int]:
    """A bundle without its records, chains and bodies, and the number of records its
    manifest announces (`open_bundle(path).frame`)."""
    frame = open_bundle(path).frame
    return frame, frame.declared_records or 0


def iter_bundle_records(path: Path) -> Iterator[bytes]:
    """The records of the bundle at `path`, in index order, streamed."""
    return open_bundle(path).records()
