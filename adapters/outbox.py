"""The outbox adapter: a provider database's changes become events, through a polling outbox.

The application writes, in the same transaction as its own change, one row
into an outbox table: an id (increasing), the topic NAME, a UUID4 event id,
and the event (protobuf bytes in a binary column, or its JSON mapping in a
text column). `OutboxRelay` reads the table's pending rows in id order,
publishes each through the security server's publish path, and deletes the
row (or marks it published) only after the server answered that the event
is durable (docs/pubsub.md, "The outbox adapter").

Why a polling outbox and not logical decoding: it works the same on
PostgreSQL, MariaDB and SQLite with nothing but SQL; it needs no replication
slot (a slot whose reader stops keeps WAL without bound, and needs a
superuser-granted role); and the event is written in the application's own
transaction, so an event exists exactly when the change it describes
committed. The cost is the poll (``poll_ms``) and one delete per event.

Guarantees:

- **Crash-safe, at least once to the server, once in the topic.** A row is
  removed only after its event is durable on the server. A relay killed
  between the two publishes the row again when it restarts; the server
  answers it as a duplicate (same event id, same bytes: the first sequence
  number, nothing appended), and the row is removed then.
- **Order.** Rows are published one at a time in id order; a row is not
  published before every earlier pending row was. (Ids are assigned when
  rows are inserted, not when their transactions commit: two concurrent
  transactions may commit out of id order, and the later-committed row with
  the smaller id is then published after a larger one. Pending rows are
  selected by state, never "after the last id", so none is skipped.)
- **A refused row stops the outbox at that row** (a wrong topic, a payload
  that is not the topic's type, an event id reused with other bytes): it is
  retried with backoff and logged until an operator corrects or removes it,
  so that no later event overtakes it. An unreachable server is retried
  with exponential backoff.

Two relays on one table are harmless (each row's event is appended once,
the second relay's publish is a duplicate) but useless; run one.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import grpc
import httpx
import structlog
import yaml
from sqlalchemy import Engine, column, delete, select, table, update
from sqlalchemy import exc as sa_exc

from spean.adapters.sql._engines import open_engine
from spean.adapters.sql._mapping import _parse_database
from spean.gateway.errors import ConfigError, SpeanError, Unavailable
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb

log = structlog.get_logger("spean.outbox")

_PUBLISH = "/spean.v1.Publisher/Publish"
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_KEYS = frozenset(
    {"database", "table", "columns", "after", "published_column", "server", "webhook"}
    | {"client", "tls", "poll_ms", "batch", "timeout_ms", "max_backoff_ms", "api_key_file"}
)


class Refused(SpeanError):
    """The server refused the event (its status code kept): the row stays, the outbox waits."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Published:
    """The server's answer: the event is durable at `sequence` (`duplicate`: it already was)."""

    event_id: str
    sequence: int
    duplicate: bool


class Publisher(Protocol):
    """How the relay reaches its security server's publish path."""

    def publish(self, topic: str, event_id: str, payload: bytes, is_json: bool) -> Published:
        """Publish one event; `Refused` or `Unavailable` when it is not durable."""
        ...

    def close(self) -> None: ...


class GrpcPublisher:
    """Publisher/Publish on the server's consumer endpoint (protobuf payloads)."""

    def __init__(
        self,
        address: str,
        client: str,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(address)
        else:
            self._channel = grpc.secure_channel(address, credentials)
        self._call = self._channel.unary_unary(
            _PUBLISH,
            request_serializer=pb.PublishRequest.SerializeToString,
            response_deserializer=pb.PublishResponse.FromString,
        )
        self._client = client
        self._timeout = timeout_s
        self.address = address

    def publish(self, topic: str, event_id: str, payload: bytes, is_json: bool) -> Published:
        if is_json:
            raise ConfigError(
                "a JSON outbox column publishes through the webhook (outbox 'webhook:'), not"
                " gRPC, which takes the event's protobuf bytes"
            )
        request = pb.PublishRequest(topic=topic, event_id=event_id, payload=payload)
        try:
            answer = self._call(request, metadata=((CLIENT, self._client),), timeout=self._timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (error.details() if isinstance(error, grpc.Call) else "") or code.name
            if code in _TRANSIENT:
                raise Unavailable(f"{self.address}: {details}") from None
            raise Refused(code, details) from None
        return Published(answer.event_id, answer.sequence, answer.duplicate)

    def close(self) -> None:
        self._channel.close()


class WebhookPublisher:
    """POST /api/v1/events on the server's webhook listener (protobuf or JSON payloads)."""

    def __init__(
        self,
        url: str,
        client: str,
        api_key: str,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # TCP_NODELAY: the request's headers and body leave in two writes (see pubsub_push).
        transport = httpx.HTTPTransport(
            verify=verify, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self._http = httpx.Client(
            base_url=url.rstrip("/"), transport=transport, headers=headers, timeout=timeout_s
        )
        self._client = client
        self.address = url

    def publish(self, topic: str, event_id: str, payload: bytes, is_json: bool) -> Published:
        media = "application/json" if is_json else "application/x-protobuf"
        headers = {
            "Content-Type": media,
            "Spean-Client": self._client,
            "Spean-Topic": topic,
            "Spean-Event-Id": event_id,
        }
        try:
            answer = self._http.post("/events", content=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{self.address}: {type(exc).__name__}: {exc}") from None
        if answer.status_code in (200, 201):
            body = answer.json()
            return Published(body["event_id"], int(body["sequence"]), bool(body["duplicate"]))
        detail = _detail(answer)
        if answer.status_code in (502, 503, 504):
            raise Unavailable(f"{self.address}: {answer.status_code} {detail}")
        raise Refused(_STATUS.get(answer.status_code, grpc.StatusCode.UNKNOWN), detail)

    def close(self) -> None:
        self._http.close()


_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.reason_phrase))
    except ValueError:
        return answer.reason_phrase


@dataclass(frozen=True, slots=True)
class OutboxTable:
    """Where the outbox rows are and what is done with a published one."""

    name: str
    id: str = "id"
    topic: str = "topic"
    event_id: str = "event_id"
    payload: str | None = "payload"
    json: str | None = None
    after: Literal["delete", "mark"] = "delete"
    published_column: str = "published_at"

    def __post_init__(self) -> None:
        if (self.payload is None) == (self.json is None):
            raise ConfigError("an outbox names one event column: columns.payload or columns.json")


class OutboxRelay:
    """Publishes an outbox table's pending rows in id order (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        outbox: OutboxTable,
        publisher: Publisher,
        *,
        batch: int = 100,
        poll_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._publisher = publisher
        self._batch = batch
        self._poll_s = poll_s
        self._max_backoff_s = max(poll_s, max_backoff_s)
        self._stopped = threading.Event()
        names = [outbox.id, outbox.topic, outbox.event_id, outbox.payload or outbox.json]
        if outbox.after == "mark":
            names.append(outbox.published_column)
        self._table = table(outbox.name, *(column(n) for n in names if n is not None))
        self._event_column = outbox.payload or outbox.json or ""
        self.owns_engine = False

    def _pending(self) -> list[Sequence[Any]]:
        t, o = self._table, self._outbox
        query = select(t.c[o.id], t.c[o.topic], t.c[o.event_id], t.c[self._event_column])
        if o.after == "mark":
            query = query.where(t.c[o.published_column].is_(None))
        query = query.order_by(t.c[o.id]).limit(self._batch)
        try:
            with self._engine.connect() as conn:
                return [tuple(row) for row in conn.execute(query)]
        except sa_exc.SQLAlchemyError as exc:
            log.warning("outbox.read_failed", table=o.name, error=str(exc.__cause__ or exc))
            raise Unavailable(f"cannot read the outbox table {o.name}") from None

    def _done(self, row_id: Any) -> None:
        t, o = self._table, self._outbox
        if o.after == "delete":
            statement: Any = delete(t).where(t.c[o.id] == row_id)
        else:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            statement = update(t).where(t.c[o.id] == row_id).values({o.published_column: now})
        try:
            with self._engine.begin() as conn:
                conn.execute(statement)
        except sa_exc.SQLAlchemyError as exc:
            log.warning("outbox.mark_failed", table=o.name, error=str(exc.__cause__ or exc))
            raise Unavailable(f"cannot update the outbox table {o.name}") from None

    def run_once(self) -> list[Published]:
        """Publish the pending rows of one batch, in id order; what the server answered.

        Raises `Refused` (the row stays, later rows wait) or `Unavailable`
        (server or database away); rows done before the failure stay done.
        """
        done: list[Published] = []
        for row_id, topic, event_id, value in self._pending():
            payload = value.encode() if isinstance(value, str) else bytes(value)
            published = self._publisher.publish(
                str(topic), str(event_id), payload, self._outbox.json is not None
            )
            self._done(row_id)
            log.info(
                "outbox.published",
                table=self._outbox.name,
                row=row_id,
                event_id=published.event_id,
                sequence=published.sequence,
                duplicate=published.duplicate,
            )
            done.append(published)
        return done

    def run(self) -> None:
        """Poll and publish until `stop`; failures are retried with exponential backoff."""
        failures = 0
        while not self._stopped.is_set():
            try:
                done = self.run_once()
            except SpeanError as exc:
                failures += 1
                delay = min(self._max_backoff_s, self._poll_s * 2 ** min(failures - 1, 20))
                log.warning(
                    "outbox.publish_failed",
                    table=self._outbox.name,
                    status=exc.code.name,
                    error=exc.message,
                    failures=failures,
                    retry_in_s=delay,
                )
                self._stopped.wait(delay)
                continue
            failures = 0
            if len(done) < self._batch:
                self._stopped.wait(self._poll_s)

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        """Release the publisher and, for a relay made by `load_relay`, its engine."""
        self._publisher.close()
        if self.owns_engine:
            self._engine.dispose()


# -- the relay as a process: python -m spean.adapters.outbox --config outbox.yaml ---------------


def load_relay(path: Path) -> OutboxRelay:
    """An `OutboxRelay` from its YAML file (docs/pubsub.md, "The outbox adapter")."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the outbox configuration: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    for key in ("database", "table", "client"):
        if not document.get(key):
            raise ConfigError(f"{path}: {key} is required")
    database = document["database"]
    database = {"url": database} if isinstance(database, str) else dict(database)
    if database.get("read_only") is True:
        raise ConfigError(f"{path}: database.read_only: the outbox deletes or marks its rows")
    options = _parse_database({**database, "read_only": False}, path)
    columns: Mapping[str, Any] = document.get("columns") or {}
    outbox = OutboxTable(
        name=str(document["table"]),
        id=str(columns.get("id", "id")),
        topic=str(columns.get("topic", "topic")),
        event_id=str(columns.get("event_id", "event_id")),
        payload=None if "json" in columns else str(columns.get("payload", "payload")),
        json=str(columns["json"]) if "json" in columns else None,
        after=document.get("after", "delete"),
        published_column=str(document.get("published_column", "published_at")),
    )
    if outbox.after not in ("delete", "mark"):
        raise ConfigError(f"{path}: after must be delete or mark")
    timeout = float(document.get("timeout_ms", 10_000)) / 1000
    publisher = _publisher(path, document, str(document["client"]), timeout)
    relay = OutboxRelay(
        open_engine(options, path),
        outbox,
        publisher,
        batch=int(document.get("batch", 100)),
        poll_s=float(document.get("poll_ms", 500)) / 1000,
        max_backoff_s=float(document.get("max_backoff_ms", 30_000)) / 1000,
    )
    relay.owns_engine = True
    return relay


def _publisher(path: Path, document: Mapping[str, Any], client: str, timeout: float) -> Publisher:
    tls: Mapping[str, str] = document.get("tls") or {}

    def read(key: str) -> bytes:
        file = path.parent / tls[key]
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: tls.{key}: cannot read {file}: {exc.strerror}") from None

    if document.get("webhook"):
        key = ""
        if document.get("api_key_file"):
            key_file = path.parent / str(document["api_key_file"])
            try:
                key = key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{path}: api_key_file: {exc.strerror}") from None
        verify: ssl.SSLContext | bool = True
        if tls:
            try:
                verify = ssl.create_default_context(
                    cafile=str(path.parent / tls["ca"]) if "ca" in tls else None
                )
                if "certificate" in tls:
                    verify.load_cert_chain(
                        str(path.parent / tls["certificate"]), str(path.parent / tls["key"])
                    )
            except (OSError, ssl.SSLError, KeyError) as exc:
                raise ConfigError(f"{path}: tls: cannot load the TLS files: {exc}") from None
        return WebhookPublisher(str(document["webhook"]), client, key, verify, timeout)
    if not document.get("server"):
        raise ConfigError(f"{path}: server (the consumer endpoint) or webhook is required")
    credentials = None
    if tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("ca") if "ca" in tls else None,
            private_key=read("key") if "key" in tls else None,
            certificate_chain=read("certificate") if "certificate" in tls else None,
        )
    return GrpcPublisher(str(document["server"]), client, credentials, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(
        prog="python -m spean.adapters.outbox", description="Publish an outbox table's rows."
    )
    parser.add_argument("--config", required=True, type=Path, help="the outbox YAML file")
    args = parser.parse_args(argv)
    try:
        relay = load_relay(args.config)
    except SpeanError as exc:
        print(f"error: {exc.message}")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    signal.signal(signal.SIGINT, lambda *_: relay.stop())
    started = time.monotonic()
    try:
        relay.run()
    finally:
        relay.close()
    log.info("outbox.stopped", ran_s=round(time.monotonic() - started, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
