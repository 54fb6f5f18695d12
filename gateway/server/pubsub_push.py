"""Webhook delivery: a subscriber's events POSTed, in order, to an internal URL.

For a (subscriber subsystem, topic) listed under ``pubsub.push``, the
consumer's server itself is the application that takes the events: instead
of an application holding a `Subscribe` stream, one thread per entry reads
the subscriber's inbox after its acknowledged position and POSTs each event
to the configured URL (docs/pubsub.md, "Webhook delivery").

Theory of operation, per entry:

1. read the next inbox event after the acknowledged position;
2. POST it (the payload as ``application/x-protobuf``, or its JSON mapping),
   with the event id, topic, sequence and position in headers and
   ``Spean-Signature: sha256=<hex>``, the HMAC-SHA256 of the body with the
   entry's secret;
3. on a 2xx answer, acknowledge it through the same path as the gRPC `Ack`
   (`PubSubApps.ack_event`: the store's cumulative ack, then the ``EVENT_ACK``
   audit record), and go on with the next event;
4. on anything else (no answer, a timeout, a redirect, 4xx or 5xx), wait
   ``initial_backoff_ms * 2^(failures - 1)``, capped at ``max_backoff_ms``
   (`gateway.backoff.ProviderBackoff.interval`), and POST the same event
   again, for as long as it takes: an event is never skipped, so the order
   holds.

Guarantees: the URL sees the events of one (subscriber, topic) in inbox
order, the next one only after the previous was answered 2xx. A crash after
the 2xx and before the acknowledgement is durable POSTs that event again
after restart: the receiver keeps the event ids it has processed
(``Spean-Event-Id``, the idempotency key) and answers a repeat 2xx without
acting twice, so the internal system sees each event once. Only the
process that delivers (worker 0, or the holder of a shared store's delivery
lease) pushes, so two processes never POST the same entry.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from spean.gateway.backoff import ProviderBackoff
from spean.gateway.config import PushConfig, ServerConfig
from spean.gateway.errors import ConfigError, SpeanError
from spean.gateway.events import TopicId
from spean.gateway.eventstore.store import EventStore, InboxEvent
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.pubsub_types import EventTypes
from spean.gateway.tokens import new_exchange_id

log = structlog.get_logger("spean.pubsub")

SIGNATURE = "Spean-Signature"
EVENT_ID = "Spean-Event-Id"
_IDLE_WAIT_S = 0.5
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

AckEvent = Callable[[str, SubsystemId, TopicId, int], int]


def signature(secret: bytes, body: bytes) -> str:
    """The ``Spean-Signature`` header of `body`: ``sha256=`` and the HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver checks (in constant time): `header` is the signature of `body`."""
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One ``pubsub.push`` entry, its files read."""

    client: SubsystemId
    topic: TopicId
    url: str
    secret: bytes
    json: bool
    verify: ssl.SSLContext | bool
    timeout_s: float
    initial_backoff_s: float
    max_backoff_s: float


def push_targets(config: ServerConfig) -> list[PushTarget]:
    """The push entries of `config`, with their secrets and CAs loaded (`ConfigError`)."""
    if config.pubsub is None:
        return []
    return [_target(config, entry, index) for index, entry in enumerate(config.pubsub.push)]


def _target(config: ServerConfig, entry: PushConfig, index: int) -> PushTarget:
    where = f"pubsub.push[{index}]"
    secret = _read(config.resolve(entry.secret_file), f"{where}.secret_file").strip()
    if len(secret) < 16:
        raise ConfigError(f"{where}.secret_file: the secret must be at least 16 bytes")
    verify: ssl.SSLContext | bool = True
    if entry.ca is not None:
        ca = config.resolve(entry.ca)
        try:
            verify = ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}.ca: cannot load {ca}: {exc}") from None
    return PushTarget(
        client=SubsystemId.parse(entry.client),
        topic=TopicId.parse(entry.topic),
        url=entry.url,
        secret=secret,
        json=entry.format == "json",
        verify=verify,
        timeout_s=entry.timeout_ms / 1000,
        initial_backoff_s=entry.initial_backoff_ms / 1000,
        max_backoff_s=entry.max_backoff_ms / 1000,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None


class PushDelivery:
    """The threads that POST pushed subscriptions' events (see the module docstring)."""

    def __init__(
        self,
        *,
        targets: Sequence[PushTarget],
        store: EventStore,
        configuration: Callable[[], GlobalConfiguration],
        types: EventTypes,
        ack_event: AckEvent,
    ) -> None:
        self._targets = list(targets)
        self._store = store
        self._configuration = configuration
        self._types = types
        self._ack_event = ack_event
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(target,), name=f"spean-push-{n}", daemon=True)
            for n, target in enumerate(self._targets)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _run(self, target: PushTarget) -> None:
        backoff = ProviderBackoff(
            initial=target.initial_backoff_s,
            maximum=max(target.initial_backoff_s, target.max_backoff_s),
        )
        failures = 0
        # TCP_NODELAY: headers and body leave in two writes, which Nagle's algorithm and
        # the receiver's delayed ACK would otherwise hold for ~40 ms per event.
        transport = httpx.HTTPTransport(verify=target.verify, socket_options=NO_DELAY)
        with httpx.Client(
            transport=transport, timeout=target.timeout_s, follow_redirects=False
        ) as http:
            while not self._stopped.is_set():
                try:
                    event = self._next(target)
                    if event is None:
                        self._store.wait_for_inbox(_IDLE_WAIT_S)
                        continue
                    error = self._post(http, target, event)
                    if error is None:
                        self._ack_event(
                            new_exchange_id(), target.client, target.topic, event.position
                        )
                        failures = 0
                        log.info(
                            "event.pushed",
                            client=str(target.client),
                            topic=str(target.topic),
                            position=event.position,
                            event_id=event.event_id,
                        )
                        continue
                except SpeanError as exc:
                    error = f"{exc.code.name}: {exc.message}"
                failures += 1
                delay = backoff.interval(failures)
                log.warning(
                    "event.push_failed",
                    client=str(target.client),
                    topic=str(target.topic),
                    url=target.url,
                    failures=failures,
                    retry_in_s=delay,
                    error=error,
                )
                self._stopped.wait(delay)

    def _next(self, target: PushTarget) -> InboxEvent | None:
        if not self._store.leads_delivery():
            return None  # another process of a shared store pushes
        position = self._store.acked_position(target.client, target.topic)
        batch = self._store.read_inbox(target.client, target.topic, position, 1)
        return batch[0] if batch else None

    def _post(self, http: httpx.Client, target: PushTarget, event: InboxEvent) -> str | None:
        """None when the URL answered 2xx; else what went wrong."""
        info = self._configuration().topic(target.topic)
        event_type = info.event_type if info is not None else ""
        if target.json:
            if info is None:
                return f"topic {target.topic} is no longer in the global configuration"
            body, media = self._types.to_json(info, event.payload), _JSON
        else:
            body, media = event.payload, _PROTOBUF
        headers = {
            "Content-Type": media,
            EVENT_ID: event.event_id,
            "Spean-Client": str(target.client),
            "Spean-Topic": str(target.topic),
            "Spean-Event-Type": event_type,
            "Spean-Sequence": str(event.sequence),
            "Spean-Position": str(event.position),
            "Spean-Published-At-Ns": str(event.published_at_ms * 1_000_000),
            "Spean-Event-Sha256": event.event_sha256.hex(),
            SIGNATURE: signature(target.secret, body),
        }
        try:
            answer = http.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{target.url}: {type(exc).__name__}: {exc}"
        if 200 <= answer.status_code < 300:
            return None
        return f"{target.url} answered {answer.status_code} {answer.reason_phrase}"
