"""One exchange's records in a bundle, each with what proves it (`spean audit show`).

`show_exchange` finds the records of an exchange in a bundle and checks the
two things that make a shown record worth reading, without verifying the
whole log (that is `spean audit verify`):

- inclusion: the record's bytes are leaf `index` of the log's Merkle tree
  (RFC 9162) at the size of the first checkpoint of the bundle that covers
  it, and that checkpoint is signed by the member owning the log, with a
  signing certificate of the bundle's global configuration;
- tokens: the request and response tokens the record holds verify against
  the bundle's global configuration (revocation counts, the validity period
  does not: see `trust.key_resolver`) and bind the record's exchange, caller,
  user, purpose, method, digests and status. An exchange that ended OK must
  hold both; a refusal holds what the exchange had reached.

The global configuration is verified against the auditor's anchor, or the
bundled one (and then the result says it is not independently trusted).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import load_configuration
from spean.gateway.errors import SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId, origin_server
from spean.gateway.tokens import (
    KeyResolver,
    check_request_binding,
    check_response_binding,
    verify_request,
    verify_response,
)
from spean.gateway.trust import key_resolver

NS_PER_SECOND = 1_000_000_000


def iso_ns(ns: int) -> str:
    """A Unix-nanosecond time as ISO 8601 UTC, every digit kept: 2026-12-03T11:38:25.534741123Z."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
    return f"{moment.isoformat(timespec='seconds')}.{fraction:09d}Z"


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
    resolve = key_resolver(conf, check_validity=False)
    return [
        ShownRecord(
            index,
            record,
            _inclusion(bundle, index, checkpoints, trusted),
            _tokens(record, resolve, trusted),
        )
        for index, record in found
    ]


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
    bundle: Bundle, index: int, checkpoints: list[SignedCheckpoint] | str, trusted: str
) -> Verdict:
    if isinstance(checkpoints, str):
        return Verdict(False, f"inclusion not verified: {checkpoints}")
    if bundle.start_state.size != bundle.start:
        return Verdict(
            False,
            f"inclusion not verified: the bundle starts at record {bundle.start}, but its"
            f" tree state is of size {bundle.start_state.size}",
        )
    covering = [c for c in checkpoints if index < c.size <= bundle.stop]
    if not covering:
        return Verdict(
            False,
            f"inclusion not verified: no signed checkpoint in the bundle covers record {index}"
            " (it comes after the last one)",
        )
    checkpoint = covering[0]
    tree = CompactRange.from_state(bundle.start_state)
    tree.extend(leaf_hash(record) for record in bundle.records[: checkpoint.size - bundle.start])
    if tree.root() != checkpoint.root:
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
    held = [
        name
        for name, token in (("request", record.request_token), ("response", record.response_token))
        if token
    ]
    if record.status == "OK" and len(held) < 2:
        return Verdict(False, "NOT verified: an exchange that ended OK must hold both tokens")
    if not held:
        return Verdict(
            True,
            f"none held: the exchange was refused ({record.status}) before it was established",
        )
    try:
        _check_tokens(record, resolve)
    except SpeanError as exc:
        why = "" if record.status == "OK" else " (a refusal may hold the token it refused)"
        return Verdict(False, f"NOT verified: {exc.message}{why}")
    tokens = "request and response tokens" if len(held) == 2 else f"{held[0]} token"
    return Verdict(True, f"verified: {tokens} against {trusted}")


def _check_tokens(record: AuditRecord, resolve: KeyResolver) -> None:
    """Verify the tokens `record` holds and bind them to it; raise saying what differs."""
    try:
        client = SubsystemId.parse(record.client)
        service = SubsystemId.parse(record.service)
    except SpeanError as exc:
        raise Unauthenticated(f"the record's caller or service: {exc.message}") from None
    now = record.received_at_ns // NS_PER_SECOND
    if record.request_token:
        request = verify_request(record.request_token, resolve, now=now)
        if request.exchange_id != record.exchange_id:
            raise Unauthenticated(f"request token is for exchange {request.exchange_id}")
        if request.client != client:
            raise Unauthenticated(
                f"request token is from {request.client}, the record says {client}"
            )
        if (request.user, request.purpose) != (record.user, record.purpose):
            raise Unauthenticated("request token's user or purpose differs from the record")
        check_request_binding(
            request, audience=service, method=record.method, body_sha256=record.request_sha256
        )
    if record.response_token:
        response = verify_response(
            record.response_token,
            resolve,
            now=record.answered_at_ns // NS_PER_SECOND or now,
            expected_exchange_id=record.exchange_id,
            expected_provider=service,
            expected_client=client,
        )
        check_response_binding(
            response,
            status=record.status,
            response_sha256=record.response_sha256,
            response_messages=record.response_messages,
        )
