"""Cross-witnessing: a consumer records the provider's latest signed checkpoint.

Every answer a provider signs (one that carries a response token) also
carries, in the trailer `spean-checkpoint-bin`, the latest checkpoint its
writer has signed: the C2SP signed note, byte for byte as stored. The
consumer checks it here and keeps it in its own audit record
(`witnessed_checkpoint`). Each ministry then holds signed tree heads of the
logs of every ministry that answered it, and a provider can no longer rewrite
its log without contradicting them (`spean.gateway.audit.reconcile`).

Invariants:
- A witnessed checkpoint is accepted only when it is a well-formed signed
  note of a log whose writer is a security server of the answering member,
  signed under that member's name with one of its signing certificates in
  the global configuration (`check_witnessed`, pure).
- A checkpoint that fails these checks is logged and recorded as absent; it
  never fails the exchange. The response token already authenticates the
  answer; the checkpoint is evidence about the provider's log, and refusing
  answers over it would let one bad checkpoint stop a ministry's traffic
  without making any record more trustworthy. Its absence is visible to an
  auditor (reconcile counts witnessed records).
- A checkpoint covers a prefix of the provider's log: it usually does not
  include the exchange that carried it (that record was made durable in the
  same moment, and checkpoints are signed every N records or T ms).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from spean.gateway.audit.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from spean.gateway.errors import SpeanError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import MemberId, origin_server

log = structlog.get_logger("spean.audit")

TRAILER = "spean-checkpoint-bin"
"""The trailer's name. gRPC only carries non-ASCII text and newlines (a signed
note has both) in binary metadata, whose names must end in "-bin"; on the
wire its value is base64 without padding, and gRPC libraries decode it."""


def check_witnessed(
    note: bytes, conf: GlobalConfiguration, provider: MemberId | None = None
) -> SignedCheckpoint:
    """The parsed checkpoint if `note` is a valid checkpoint of `provider`'s log.

    Checks: C2SP form; the log's writer is a security server id owned by
    `provider` (by the member named in the origin when `provider` is None);
    the key name is that member; the signature verifies with one of its
    signing certificates in `conf`. Raises `CheckpointError` naming the defect.
    """
    signed = parse_checkpoint(note)
    try:
        member = origin_server(signed.origin).member
    except SpeanError as exc:
        raise CheckpointError(
            f"checkpoint origin {signed.origin!r} does not name a security server: {exc}"
        ) from exc
    if provider is not None and member != provider:
        raise CheckpointError(
            f"checkpoint of log {signed.origin} belongs to {member}, not to the answering "
            f"member {provider}"
        )
    if signed.key_name != str(member):
        raise CheckpointError(
            f"checkpoint of log {signed.origin} is signed under the name {signed.key_name!r}, "
            f"not by its member {member}"
        )
    info = conf.member(member)
    if info is None:
        raise CheckpointError(f"checkpoint of log {signed.origin}: {member} is not a member")
    verify_checkpoint(signed, info.signing_certificates)
    return signed


def accept_witnessed(
    trailing: Iterable[tuple[str, str | bytes]],
    conf: GlobalConfiguration,
    provider: MemberId,
    exchange_id: str,
) -> bytes:
    """The checkpoint note to record from an answer's trailers, or b"" when none is valid.

    Runs on the consumer after the response token verified. Nothing here
    raises: a missing checkpoint is normal (a provider that has not signed
    one yet), an invalid one is logged as `audit.witness_invalid`.
    """
    values = [value for key, value in trailing if key == TRAILER]
    if not values:
        return b""
    if len(values) > 1:
        reason = f"the answer carries {len(values)} checkpoints"
    elif not isinstance(values[0], bytes):
        reason = "the checkpoint trailer is not binary"
    else:
        try:
            check_witnessed(values[0], conf, provider)
        except CheckpointError as exc:
            reason = exc.message
        else:
            return values[0]
    log.warning(
        "audit.witness_invalid", exchange_id=exchange_id, provider=str(provider), reason=reason
    )
    return b""
