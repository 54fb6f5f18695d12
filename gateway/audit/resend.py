"""Re-sending exchanges (`spean audit replay`): a bundle's timeline, re-sent to a test instance.

Theory of operation. A provider's bundle holds, for services configured with
`audit_bodies: encrypted`, each exchange's request and response bodies sealed
to the auditors' key (gateway/audit/bodies.py). `build_timeline` decrypts them
with that key, checks them against their signed record (digests, sizes,
count), and orders the exchanges by receive time, filtered by client,
service, user and time range. `send` (the only I/O here) re-sends one
exchange's decrypted request, with the same method and the same
`spean-client` / `spean-service` / `spean-user` / `spean-purpose` headers,
through a consumer endpoint of a test federation; `compare` tells whether the
new answer is the one recorded: the same status and the same response digest
(gateway/digests.py: SHA-256 over every message with its 4-byte length, which
is the digest a unary answer has too), so a changed value in the provider's
database shows as a differing exchange.

Invariants:
- Only bodies that decrypt with the auditor key and match their record are
  replayed; anything else is listed with the reason and never sent.
- The comparison uses the digests of the signed record, not the decrypted
  response: bodies are evidence only through the record.
- Nothing here writes to a bundle; `send` talks only to the address given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import grpc
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from spean.gateway.audit.bodies import Bodies, check_bodies, open_for
from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.progress import counted
from spean.gateway.audit.record import AuditRecord, Kind, iso_ns
from spean.gateway.digests import ResponseDigest
from spean.gateway.errors import InvalidArgument
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE, USER


@dataclass(frozen=True, slots=True)
class TimelineFilter:
    """Which exchanges to show: every field None means no condition."""

    client: str | None = None
    service: str | None = None
    user: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def matches(self, record: AuditRecord) -> bool:
        return (
            (self.client is None or record.client == self.client)
            and (self.service is None or record.service == self.service)
            and (self.user is None or record.user == self.user)
            and (self.since_ns is None or record.received_at_ns >= self.since_ns)
            and (self.until_ns is None or record.received_at_ns < self.until_ns)
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange of the timeline: its record, and its bodies when usable.

    `bodies_problem` says why `bodies` is None ("no bodies kept" when the
    service kept digests only).
    """

    index: int
    record: AuditRecord
    bodies: Bodies | None
    bodies_problem: str = ""

    def to_dict(self) -> dict[str, object]:
        record = self.record
        return {
            "index": self.index,
            "received_at": iso_ns(record.received_at_ns),
            "exchange_id": record.exchange_id,
            "side": record.side.value,
            "client": record.client,
            "service": record.service,
            "method": record.method,
            "user": record.user,
            "purpose": record.purpose,
            "status": record.status,
            "request_size": record.request_size,
            "response_messages": record.response_messages,
            "response_size": record.response_size,
            "bodies": "decrypted" if self.bodies is not None else self.bodies_problem,
        }


NO_BODIES = "no bodies kept"
EVENT_NOT_RESENT = "an event: its bytes are decrypted and checked against the record, not re-sent"


def build_timeline(
    bundle: Bundle,
    auditor_key: X25519PrivateKey | None,
    where: TimelineFilter,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[Exchange]:
    """The bundle's exchanges matching `where`, by receive time, with bodies decrypted.

    Undecodable records are skipped (`spean audit verify` names them).
    `progress(n)` is told of every record read, in steps of up to 1,000.
    """
    sealed = dict(bundle.bodies)
    exchanges: list[Exchange] = []
    for offset, data in enumerate(counted(bundle.records, progress)):
        index = bundle.start + offset
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument:
            continue
        if not where.matches(record):
            continue
        blob = sealed.get(index)
        if blob is None:
            exchanges.append(Exchange(index, record, None, NO_BODIES))
            continue
        if auditor_key is None:
            exchanges.append(Exchange(index, record, None, "sealed (no auditor key given)"))
            continue
        try:
            bodies = open_for(record, blob, auditor_key)
        except InvalidArgument as exc:
            exchanges.append(Exchange(index, record, None, exc.message))
            continue
        problem = check_bodies(record, bodies)
        exchanges.append(Exchange(index, record, None if problem else bodies, problem))
    exchanges.sort(key=lambda e: (e.record.received_at_ns, e.index))
    return exchanges


# -- replaying ------------------------------------------------------------------------------


class Outcome(StrEnum):
    """What a replay found for one exchange."""

    SAME = "same"
    DIFFERENT = "different"
    SKIPPED = "skipped"  # no usable bodies: nothing to send


@dataclass(frozen=True, slots=True)
class Answer:
    """What the test instance answered: status name, response messages, its exchange id."""

    status: str
    messages: tuple[bytes, ...]
    exchange_id: str = ""
    details: str = ""


@dataclass(frozen=True, slots=True)
class Replayed:
    """One exchange's replay: the outcome and what differs."""

    exchange: Exchange
    outcome: Outcome
    detail: str = ""
    answer: Answer | None = None

    def to_dict(self) -> dict[str, object]:
        answer = self.answer
        return {
            "index": self.exchange.index,
            "exchange_id": self.exchange.record.exchange_id,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "recorded_status": self.exchange.record.status,
            "replayed_status": None if answer is None else answer.status,
            "replay_exchange_id": None if answer is None else answer.exchange_id,
        }


def compare(record: AuditRecord, answer: Answer) -> tuple[Outcome, str]:
    """Whether `answer` is the answer `record` holds: same status, digest and count."""
    digest = ResponseDigest()
    for message in answer.messages:
        digest.update(message)
    if answer.status != record.status:
        extra = f" ({answer.details})" if answer.details else ""
        return (
            Outcome.DIFFERENT,
            f"status {answer.status}{extra}, recorded {record.status}",
        )
    if digest.digest() != record.response_sha256 or digest.count != record.response_messages:
        return (
            Outcome.DIFFERENT,
            f"response of {digest.count} message(s), {digest.size} bytes, digest "
            f"{_short(digest.digest())}; recorded {record.response_messages} message(s), "
            f"{record.response_size} bytes, digest {_short(record.response_sha256)}",
        )
    return Outcome.SAME, ""


def _short(digest: bytes) -> str:
    return digest.hex()[:16] if digest else "(none)"


def is_streaming(conf: GlobalConfiguration | None, record: AuditRecord) -> bool:
    """Whether the record's method is server-streaming, per the configuration's catalogue;
    failing that, guessed from the recorded answer (anything but one message)."""
    if conf is not None:
        try:
            method = conf.method(SubsystemId.parse(record.service), record.method)
        except InvalidArgument:
            method = None
        if method is not None:
            return method.server_streaming
    return record.response_messages != 1


def send(
    channel: grpc.Channel,
    exchange: Exchange,
    *,
    streaming: bool,
    client: str | None = None,
    timeout_s: float = 30.0,
) -> Answer:
    """Re-send `exchange`'s decrypted request through a consumer endpoint (the edge).

    `client` replaces the recorded calling subsystem (it must be registered on
    the test instance's security server). gRPC failures are answers, not errors.
    """
    record, bodies = exchange.record, exchange.bodies
    if bodies is None:
        raise InvalidArgument(f"exchange {record.exchange_id} has no usable bodies to re-send")
    headers: list[tuple[str, str | bytes]] = [
        (CLIENT, client or record.client),
        (SERVICE, record.service),
    ]
    if record.user:
        headers.append((USER, record.user))
    if record.purpose:
        headers.append((PURPOSE, record.purpose))
    metadata = tuple(headers)
    if streaming:
        stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(record.method)
        call = stream(bodies.request, metadata=metadata, timeout=timeout_s)
        messages: list[bytes] = []
        with contextlib.suppress(grpc.RpcError):  # the status and details are read below
            messages.extend(call)
        trailing = call.trailing_metadata() or ()
        code, details = call.code(), call.details() or ""
    else:
        unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(record.method)
        try:
            message, outcome = unary.with_call(bodies.request, metadata=metadata, timeout=timeout_s)
            messages, trailing = [message], outcome.trailing_metadata() or ()
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as err:
            failed: grpc.Call = err  # type: ignore[assignment]  # a failed call is both
            messages, trailing = [], tuple(failed.trailing_metadata() or ())
            code, details = failed.code(), failed.details() or ""
    exchange_id = next((str(v) for k, v in trailing if k == EXCHANGE_ID), "")
    return Answer(code.name, tuple(messages), exchange_id, details)


def replay(
    channel: grpc.Channel,
    exchanges: Sequence[Exchange],
    conf: GlobalConfiguration | None,
    *,
    client: str | None = None,
    timeout_s: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> list[Replayed]:
    """Re-send every exchange with usable bodies and compare each answer with its record.

    `progress(1)` is told of each exchange done."""
    results: list[Replayed] = []
    for exchange in exchanges:
        results.append(_replay_one(channel, exchange, conf, client, timeout_s))
        if progress is not None:
            progress(1)
    return results


def _replay_one(
    channel: grpc.Channel,
    exchange: Exchange,
    conf: GlobalConfiguration | None,
    client: str | None,
    timeout_s: float,
) -> Replayed:
    if exchange.bodies is None:
        return Replayed(exchange, Outcome.SKIPPED, exchange.bodies_problem)
    if exchange.record.kind is not Kind.EXCHANGE:
        return Replayed(exchange, Outcome.SKIPPED, EVENT_NOT_RESENT)
    answer = send(
        channel,
        exchange,
        streaming=is_streaming(conf, exchange.record),
        client=client,
        timeout_s=timeout_s,
    )
    outcome, detail = compare(exchange.record, answer)
    return Replayed(exchange, outcome, detail, answer)
