"""A data subject's view of a provider's log, and its offline proof (docs/transparency.md).

`subject_view` runs on the provider's side, with its pseudonymisation key:
given an exported bundle of the provider's log and a person's id, it lists
every exchange whose record holds that person's pseudonym (exchange id,
calling subsystem, user, purpose, time, status) and proves each one: the
record's bytes, and an RFC 9162 inclusion proof of that record in the
log's Merkle tree at the size of the bundle's latest signed checkpoint.
`verify_subject_proof` checks such a proof offline, with nothing but what
the file carries and, ideally, the auditor's own anchor: the global
configuration's signature, the checkpoint's signature by the log's member,
each inclusion proof, each record's tokens (the response token signs the
pseudonym), and that every summary line is what its record says.

Guarantees:

- Pure: values in, values out; reading the bundle and the key is the CLI's.
- Nothing in a proof belongs to another person: it holds only records that
  carry this subject's pseudonym, and, of the rest of the log, Merkle node
  hashes (which reveal nothing of the records under them) and the size of
  the log. The subject's id itself is not in the file either.
- A look-up is itself an exchange (`lookup_record`): the provider records
  it in its own log, as a call of its `transparency` subsystem to
  ``/spean.v1.Transparency/SubjectView``, under the subject's pseudonym, with
  request and response tokens signed by the provider's member key, so
  `spean audit verify` checks it like any other record and the subject's
  next view lists the look-ups too.
- A proof that verifies says: these records, each signed into the
  provider's log under a checkpoint its member signed, name this pseudonym.
  Records after the latest checkpoint cannot be proven yet: they are counted
  (`pending`), never listed unproven.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from spean.gateway import pki
from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.checkpoint import CheckpointError, parse_checkpoint, verify_checkpoint
from spean.gateway.audit.merkle import (
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    root_from_leaf_hashes,
    verify_inclusion,
)
from spean.gateway.audit.record import AuditRecord, Side, iso_ns
from spean.gateway.audit.verify import parse_configuration
from spean.gateway.audit.verify_tokens import bundle_resolver, token_outcome
from spean.gateway.digests import request_digest, response_digest
from spean.gateway.errors import InvalidArgument, SpeanError
from spean.gateway.globalconf import verify_signature
from spean.gateway.identifiers import ServerId, origin_server
from spean.gateway.subjects import subject_pseudonym
from spean.gateway.tokens import RequestClaims, ResponseClaims, TokenSigner

TRANSPARENCY: Final = "transparency"
"""The subsystem of the provider's member a look-up is recorded as (client and service)."""
LOOKUP_METHOD: Final = "/spean.v1.Transparency/SubjectView"
LOOKUP_TOKEN_LIFETIME: Final = 60

FORMAT: Final = "spean-subject-proof/1"
SUMMARY_FIELDS: Final = ("exchange_id", "client", "service", "method", "user", "purpose", "status")


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    """One exchange that touched the subject, and what proves it."""

    index: int
    record: bytes
    proof: tuple[bytes, ...]

    def summary(self) -> dict[str, object]:
        """What a person reads: who asked, for whom, why, when, and how it ended."""
        record = AuditRecord.from_bytes(self.record)
        out: dict[str, object] = {name: getattr(record, name) for name in SUMMARY_FIELDS}
        out["received_at"] = iso_ns(record.received_at_ns)
        return out


@dataclass(frozen=True, slots=True)
class SubjectProof:
    """Every proven exchange of one subject in one provider log."""

    origin: str
    subject_pseudonym: bytes
    checkpoint: bytes  # the signed note the inclusion proofs lead to
    globalconf: bytes  # signed global configuration, as in the bundle
    anchor_pem: bytes  # the bundle's anchor (not independently trusted)
    exported_at_ns: int
    entries: tuple[SubjectEntry, ...]
    pending: int  # the subject's records after the checkpoint: not provable yet

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "origin": self.origin,
            "subject_pseudonym": _b64(self.subject_pseudonym),
            "checkpoint": self.checkpoint.decode("utf-8"),
            "globalconf": _b64(self.globalconf),
            "anchor_pem": self.anchor_pem.decode("ascii"),
            "exported_at_ns": self.exported_at_ns,
            "pending": self.pending,
            "exchanges": [
                {
                    **entry.summary(),
                    "index": entry.index,
                    "record": _b64(entry.record),
                    "inclusion_proof": [_b64(node) for node in entry.proof],
                }
                for entry in self.entries
            ],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def subject_view(bundle: Bundle, key: bytes, subject: str) -> SubjectProof:
    """The proven exchanges of `subject` in `bundle` (see the module docstring).

    `key` is the provider's `subjects.subject_key`. The bundle must hold its
    log from the first record (the proofs need every leaf) and at least one
    checkpoint that its records reproduce.
    """
    if bundle.start != 0:
        raise InvalidArgument(
            f"the bundle starts at record {bundle.start}: export the whole log"
            " (spean audit export without --since) to prove inclusion"
        )
    pseudonym = subject_pseudonym(key, subject)
    leaves = leaf_hashes(bundle.records)
    signed = None
    for note in bundle.checkpoints:
        candidate = parse_checkpoint(note)
        if candidate.size <= len(leaves) and (signed is None or candidate.size > signed.size):
            signed = candidate
    if signed is None:
        raise InvalidArgument("the bundle holds no checkpoint over its records: export it again")
    size = signed.size
    if root_from_leaf_hashes(leaves[:size]) != signed.root:
        raise InvalidArgument(
            f"the bundle's first {size} records do not reproduce its checkpoint at that size;"
            " run spean audit verify on it"
        )
    entries: list[SubjectEntry] = []
    pending = 0
    for index, data in enumerate(bundle.records):
        record = AuditRecord.from_bytes(data)
        if record.side is not Side.PROVIDER or record.subject_pseudonym != pseudonym:
            continue
        if index >= size:
            pending += 1
            continue
        entries.append(SubjectEntry(index, data, tuple(inclusion_proof(leaves[:size], index))))
    return SubjectProof(
        origin=bundle.origin,
        subject_pseudonym=pseudonym,
        checkpoint=signed.note,
        globalconf=bundle.globalconf,
        anchor_pem=bundle.anchor_pem,
        exported_at_ns=bundle.exported_at_ns,
        entries=tuple(entries),
        pending=pending,
    )


def parse_proof(text: str) -> SubjectProof:
    """A proof file's content; `InvalidArgument` names what is malformed."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InvalidArgument(f"not a subject proof (format {FORMAT!r} expected)")
        entries = []
        for item in document["exchanges"]:
            entry = SubjectEntry(
                index=_int(item["index"]),
                record=_unb64(item["record"]),
                proof=tuple(_unb64(node) for node in item["inclusion_proof"]),
            )
            # What a person reads must be what the record says.
            shown = {name: item.get(name) for name in (*SUMMARY_FIELDS, "received_at")}
            if shown != entry.summary():
                raise InvalidArgument(
                    f"exchange at index {entry.index}: its summary is not what its record says"
                )
            entries.append(entry)
        return SubjectProof(
            origin=str(document["origin"]),
            subject_pseudonym=_unb64(document["subject_pseudonym"]),
            checkpoint=str(document["checkpoint"]).encode("utf-8"),
            globalconf=_unb64(document["globalconf"]),
            anchor_pem=str(document["anchor_pem"]).encode("ascii"),
            exported_at_ns=_int(document["exported_at_ns"]),
            entries=tuple(entries),
            pending=_int(document["pending"]),
        )
    except (KeyError, TypeError, ValueError, UnicodeError) as exc:
        raise InvalidArgument(f"subject proof is malformed: {exc}") from None


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """What `verify_subject_proof` found: the exchanges proven, and any problem."""

    origin: str
    checkpoint_size: int
    anchor: str
    exchanges: tuple[dict[str, object], ...]
    pending: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "ok": self.ok}


def verify_subject_proof(proof: SubjectProof, anchor: x509.Certificate | None) -> SubjectReport:
    """Check a subject proof offline (see the module docstring); never raises on a bad proof."""
    source = "given" if anchor is not None else "bundled (not independently trusted)"
    problems: list[str] = []
    size = 0
    try:
        if anchor is None:
            anchor = pki.parse_certificate_pem(proof.anchor_pem, "the proof's anchor")
        when = dt.datetime.fromtimestamp(proof.exported_at_ns / 1e9, dt.UTC)
        conf = parse_configuration(verify_signature(proof.globalconf, anchor, when))
        signed = parse_checkpoint(proof.checkpoint)
        member = origin_server(proof.origin).member
        info = conf.member(member)
        if signed.origin != proof.origin or signed.key_name != str(member) or info is None:
            raise InvalidArgument(f"the checkpoint is not one of {member}'s log {proof.origin}")
        verify_checkpoint(signed, info.signing_certificates)
        size = signed.size
    except (SpeanError, CheckpointError) as exc:
        return SubjectReport(proof.origin, 0, source, (), proof.pending, (exc.message,))
    resolve = bundle_resolver(conf)
    shown = []
    for entry in proof.entries:
        where = f"exchange at index {entry.index}"
        try:
            verify_inclusion(leaf_hash(entry.record), entry.index, size, entry.proof, signed.root)
            record = AuditRecord.from_bytes(entry.record)
        except SpeanError as exc:
            problems.append(f"{where}: {exc.message}")
            continue
        if record.origin != proof.origin or record.side is not Side.PROVIDER:
            problems.append(f"{where}: not a provider record of {proof.origin}")
        if record.subject_pseudonym != proof.subject_pseudonym:
            problems.append(f"{where}: names another subject")
        outcome = token_outcome(record, resolve)
        if isinstance(outcome, str):
            problems.append(f"{where}: {outcome}")
        shown.append(entry.summary())
    return SubjectReport(proof.origin, size, source, tuple(shown), proof.pending, tuple(problems))


def lookup_record(
    signer: TokenSigner,
    *,
    server: ServerId,
    origin: str,
    exchange_id: str,
    pseudonym: bytes,
    proof: bytes,
    requested_by: str,
    purpose: str,
    now_ns: int,
) -> AuditRecord:
    """The audit record of one look-up: `pseudonym` asked, `proof` (the file) answered.

    `requested_by` and `purpose` name who asked (an operator, an ombudsman)
    and why; both are signed into the request token like `spean-user` and
    `spean-purpose`. The request is the pseudonym, never the id.
    """
    subsystem = server.member.child(TRANSPARENCY)
    now = now_ns // 1_000_000_000
    request = RequestClaims(
        issuer=server.member,
        client=subsystem,
        audience=subsystem,
        method=LOOKUP_METHOD,
        exchange_id=exchange_id,
        issued_at=now,
        expires_at=now + LOOKUP_TOKEN_LIFETIME,
        request_sha256=request_digest(pseudonym),
        user=requested_by,
        purpose=purpose,
    )
    answered = response_digest([proof])
    response = ResponseClaims(
        issuer=server.member,
        provider=subsystem,
        audience=subsystem,
        exchange_id=exchange_id,
        issued_at=now,
        expires_at=now + LOOKUP_TOKEN_LIFETIME,
        status="OK",
        response_sha256=answered,
        response_messages=1,
        subject_pseudonym=pseudonym,
    )
    return AuditRecord(
        exchange_id=exchange_id,
        side=Side.PROVIDER,
        origin=origin,
        received_at_ns=now_ns,
        forwarded_at_ns=now_ns,
        answered_at_ns=now_ns,
        status="OK",
        client=str(subsystem),
        service=str(subsystem),
        method=LOOKUP_METHOD,
        user=requested_by,
        purpose=purpose,
        request_sha256=request.request_sha256,
        request_size=len(pseudonym),
        response_sha256=answered,
        response_size=len(proof),
        response_messages=1,
        request_token=signer.sign_request(request),
        response_token=signer.sign_response(response),
        subject_pseudonym=pseudonym,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value
