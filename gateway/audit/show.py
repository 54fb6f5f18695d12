"""One exchange's records in a bundle, each with what proves it (`spean audit show`).

`show_exchange` finds the records of an exchange in a bundle and checks the
two things that make a shown record worth reading, without verifying the
whole log (that is `spean audit verify`):

- inclusion: the record's bytes are leaf `index` of the log's Merkle tree
  (RFC 9162) at the size of the first checkpoint of the bundle that covers
  it, and that checkpoint is signed by the member owning the log, with a
  signing certificate of the bundle's global configuration;
- tokens: judged by `spean audit verify`'s own rules (`verify_tokens.token_outcome`,
  docs/auditor.md "What the tokens protect"): the tokens the record holds
  verify against the bundle's global configuration and bind the record's
  fields; an exchange that ended OK must hold both; a refusal holds what the
  exchange had reached, and a token it refused is kept as received.

The global configuration is verified against the auditor's anchor, or the
bundled one (and then the result says it is not independently trusted).
However many records of the exchange a bundle holds, its checkpoint
signatures are verified once and its tree is built once, incrementally, up
to the largest checkpoint size one of them needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cryptography import x509

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from spean.gateway.audit.merkle import CompactRange, leaf_hash
from spean.gateway.audit.reconcile import find_exchange
from spean.gateway.audit.record import AuditRecord, Side, iso_ns
from spean.gateway.audit.verify import load_configuration
from spean.gateway.audit.verify_tokens import bundle_resolver, checks_tokens, token_outcome
from spean.gateway.errors import SpeanError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import origin_server
from spean.gateway.tokens import (
    KeyResolver,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check of a shown record: whether it holds, and in words what was checked."""

    ok: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ShownRecord:
    """A record of the exchange, where it is in the log, and what proves it."""

    index: int
    record: AuditRecord
    inclusion: Verdict
    tokens: Verdict

    @property
    def ok(self) -> bool:
        return self.inclusion.ok and self.tokens.ok

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly: digests in hex, times in Unix ns (as stored) and ISO 8601."""
        out: dict[str, object] = {"index": self.index}
        for item in dataclasses.fields(self.record):
            value = getattr(self.record, item.name)
            if isinstance(value, bytes):
                value = (
                    value.decode("utf-8", "replace")
                    if item.name == "witnessed_checkpoint"
                    else value.hex()
                )
            elif isinstance(value, Side):
                value = value.value
            out[item.name] = value
            if item.name.endswith("_at_ns") and isinstance(value, int) and value:
                out[item.name.removesuffix("_ns")] = iso_ns(value)
        out["verified"] = {"inclusion": self.inclusion.to_dict(), "tokens": self.tokens.to_dict()}
        return out


def show_exchange(
    bundle: Bundle, exchange_id: str, anchor: x509.Certificate | None = None
) -> list[ShownRecord]:
    """The records of `exchange_id` in `bundle`, each checked (see the module docstring)."""
    found = list(find_exchange(bundle, exchange_id))
    if not found:
        return []
    conf: GlobalConfiguration | None = None
    try:
        conf, source = load_configuration(bundle, anchor)
    except SpeanError as exc:
        unverified = Verdict(
            False, f"not verified: the bundle's global configuration does not verify: {exc.message}"
        )
        return [ShownRecord(index, record, unverified, unverified) for index, record in found]
    trusted = f"global configuration version {conf.version}, anchor {source}"
    checkpoints = _signed_checkpoints(bundle, conf)
    roots = _roots(bundle, checkpoints, [index for index, _ in found])
    resolve = bundle_resolver(conf)
    return [
        ShownRecord(
            index,
            record,
            _inclusion(bundle, index, checkpoints, roots, trusted),
            _tokens(record, resolve, trusted),
        )
        for index, record in found
    ]


def _covering(
    bundle: Bundle, index: int, checkpoints: list[SignedCheckpoint]
) -> SignedCheckpoint | None:
    """The first signed checkpoint whose tree holds record `index`."""
    return next((c for c in checkpoints if index < c.size <= bundle.stop), None)


def _roots(
    bundle: Bundle, checkpoints: list[SignedCheckpoint] | str, indexes: list[int]
) -> dict[int, bytes]:
    """The records' Merkle root at each size that covers one of `indexes`, from one
    incremental pass over the records (not one tree per record shown)."""
    if isinstance(checkpoints, str) or bundle.start_state.size != bundle.start:
        return {}
    sizes = sorted(
        {c.size for c in (_covering(bundle, i, checkpoints) for i in indexes) if c is not None}
    )
    roots: dict[int, bytes] = {}
    tree = CompactRange.from_state(bundle.start_state)
    for size in sizes:
        tree.extend(
            leaf_hash(data)
            for data in bundle.records[tree.size - bundle.start : size - bundle.start]
        )
        roots[size] = tree.root()
    return roots


def _signed_checkpoints(bundle: Bundle, conf: GlobalConfiguration) -> list[SignedCheckpoint] | str:
    """The bundle's checkpoints of this log whose signature verifies, by size; or why none can."""
    try:
        member = origin_server(bundle.origin).member
    except SpeanError as exc:
        return f"the bundle's log {bundle.origin!r} names no security server: {exc.message}"
    info = conf.member(member)
    if info is None:
        return f"member {member}, who owns the log, is not in the global configuration"
    good = []
    for note in bundle.checkpoints:
        try:
            signed = parse_checkpoint(note)
            if signed.origin != bundle.origin or signed.key_name != str(member):
                continue
            verify_checkpoint(signed, info.signing_certificates)
        except CheckpointError:
            continue  # `spean audit verify` names every bad checkpoint; none of them proves
        good.append(signed)
    return sorted(good, key=lambda signed: signed.size)


def _inclusion(
    bundle: Bundle,
    index: int,
    checkpoints: list[SignedCheckpoint] | str,
    roots: dict[int, bytes],
    trusted: str,
) -> Verdict:
    if isinstance(checkpoints, str):
        return Verdict(False, f"inclusion not verified: {checkpoints}")
    if bundle.start_state.size != bundle.start:
        return Verdict(
            False,
            f"inclusion not verified: the bundle starts at record {bundle.start}, but its"
            f" tree state is of size {bundle.start_state.size}",
        )
    checkpoint = _covering(bundle, index, checkpoints)
    if checkpoint is None:
        return Verdict(
            False,
            f"inclusion not verified: no signed checkpoint in the bundle covers record {index}"
            " (it comes after the last one)",
        )
    if roots[checkpoint.size] != checkpoint.root:
        return Verdict(
            False,
            f"NOT included: the bundle's records up to size {checkpoint.size} do not hash to"
            f" the root the checkpoint at that size signs",
        )
    return Verdict(
        True,
        f"verified: leaf {index} of the log's Merkle tree of size {checkpoint.size}, whose"
        f" root {checkpoint.key_name} signed in a checkpoint, checked against {trusted}",
    )


def _tokens(record: AuditRecord, resolve: KeyResolver, trusted: str) -> Verdict:
    """The record's tokens judged by verify's rules (`verify.token_outcome`): one rule."""
    if record.is_event and not checks_tokens(record):
        return Verdict(
            True,
            f"none to check: a record of kind {record.kind.value} that is not an OK delivery"
            " holds no peer's signature (docs/protocol.md, section 13.6)",
        )
    if not checks_tokens(record):
        return Verdict(
            True,
            f"none held: the exchange was refused ({record.status}) before it was established",
        )
    outcome = token_outcome(record, resolve)
    if isinstance(outcome, str):
        return Verdict(False, f"NOT verified: {outcome}")
    if record.is_event:  # an event delivery that ended OK: its event and ack tokens
        return Verdict(True, f"verified: event and ack tokens against {trusted}")
    held = sum(1 for token in (record.request_token, record.response_token) if token)
    if outcome == held:
        tokens = "request and response tokens" if held == 2 else "token"
        return Verdict(True, f"verified: {tokens} against {trusted}")
    return Verdict(
        True,
        f"verified: {outcome} of the {held} tokens held against {trusted}; the other is the"
        f" one this {record.status} refusal refused, kept as received",
    )
