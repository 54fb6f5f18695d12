"""Generating open datasets through the exchange path.

The catalogue is a client subsystem of a member (``KH/GOV/MOI/catalogue``)
and calls each dataset's method through that member's own security server,
exactly like any application: its consumer endpoint, the `spean-client` and
`spean-service` headers, and `spean-purpose: open data publication`. So
every generation is an exchange in the consumer's and the provider's audit
logs, the provider's access rule for the catalogue decides what it may
fetch, and the rule's `minimise` entries mask the fields before they leave
the provider. The method's types come from the descriptor set the provider
published in the signed global configuration.

Rows are written as they arrive (`store.DatasetStore.generation`); an error
at any point (the provider down, refused, a dropped field present) aborts
the version: the previous version stays the one served, and the error says
what failed and which exchange it was.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

import grpc
import structlog
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from spean.gateway import errors
from spean.gateway.catalogue_metadata import OpenDataset
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound, SpeanError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE
from spean.gateway.opendata.model import PURPOSE as OPEN_DATA_PURPOSE
from spean.gateway.opendata.model import RowEncoder, Version, open_datasets_of
from spean.gateway.opendata.store import DatasetStore
from spean.gateway.server.reflection import build_pool

log = structlog.get_logger()

DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class ConsumerEndpoint:
    """Where and as whom the catalogue calls: its own member's security server."""

    address: str
    client: str
    ca: bytes | None = None
    certificate: bytes | None = None
    key: bytes | None = None

    def __post_init__(self) -> None:
        SubsystemId.parse(self.client)
        if (self.certificate is None) != (self.key is None):
            raise InvalidArgument("give both the client certificate and its key, or neither")
        if self.certificate is not None and self.ca is None:
            raise InvalidArgument("a client certificate needs the CA of the consumer endpoint")

    def channel(self) -> grpc.Channel:
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self.ca is None:
            return grpc.insecure_channel(self.address, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.certificate
        )
        return grpc.secure_channel(self.address, credentials, options=options)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one dataset's generation gave: its new version, or why there is none."""

    dataset: str
    version: Version | None
    error: SpeanError | None = None


class Generator:
    """Generates the datasets of a configuration into a store, one version per run."""

    def __init__(
        self,
        store: DatasetStore,
        endpoint: ConsumerEndpoint,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.endpoint = endpoint
        self.timeout = timeout
        self._clock = clock

    def generate(self, conf: GlobalConfiguration, only: Collection[str] = ()) -> list[Outcome]:
        """Generate every dataset of `conf` (or those in `only`); each succeeds or fails alone."""
        datasets = open_datasets_of(conf.subsystems)
        ids = [d.id for d in datasets]
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise NotFound(
                f"no open dataset {', '.join(unknown)} in configuration version {conf.version}"
                f" (it has: {', '.join(ids) or 'none'})"
            )
        outcomes = []
        seen: set[str] = set()
        for dataset in datasets:
            if only and dataset.id not in only:
                continue
            if dataset.id in seen:
                error = FailedPrecondition(
                    f"dataset {dataset.id} is declared by more than one subsystem; rename one"
                )
                outcomes.append(Outcome(dataset.id, None, error))
                continue
            seen.add(dataset.id)
            try:
                outcomes.append(Outcome(dataset.id, self.generate_one(conf, dataset)))
            except SpeanError as exc:
                kept = self.store.index(dataset.id).latest
                log.warning(
                    "opendata.generation_failed",
                    dataset=dataset.id,
                    status=exc.code.name,
                    error=exc.message,
                    served_version=kept.number if kept else None,
                )
                outcomes.append(Outcome(dataset.id, None, exc))
        return outcomes

    def generate_one(self, conf: GlobalConfiguration, dataset: OpenDataset) -> Version:
        method = self._method(conf, dataset)
        requests = _requests(dataset, method)
        encoder = RowEncoder(method.output_type, dataset)
        response_type = _message_class(method.output_type)
        headers: tuple[tuple[str, str | bytes], ...] = (
            (CLIENT, self.endpoint.client),
            (SERVICE, dataset.subsystem),
            (PURPOSE, OPEN_DATA_PURPOSE),
        )
        exchange_ids: list[str] = []
        with self.store.generation(dataset.id, encoder.columns) as writer:
            with self.endpoint.channel() as channel:
                for request in requests:
                    for message in self._call(
                        channel, dataset, method, request, response_type, headers, exchange_ids
                    ):
                        writer.write(encoder.values(message))
            version = self.store.commit(
                writer,
                dataset.id,
                exchange_ids=exchange_ids,
                configuration_version=conf.version,
                generated_at=self._clock(),
            )
        log.info(
            "opendata.generated",
            dataset=dataset.id,
            version=version.number,
            rows=version.rows,
            exchanges=len(exchange_ids),
        )
        return version

    def _method(self, conf: GlobalConfiguration, dataset: OpenDataset) -> MethodDescriptor:
        info = next((s for s in conf.subsystems if str(s.id) == dataset.subsystem), None)
        if info is None or not info.file_descriptor_set:
            raise FailedPrecondition(
                f"dataset {dataset.id}: {dataset.subsystem} published no descriptor set, so the"
                " catalogue cannot read its answers"
            )
        pool, _ = build_pool(info.file_descriptor_set, f"the descriptors of {dataset.subsystem}")
        service_name, _, name = dataset.method[1:].partition("/")
        try:
            found: MethodDescriptor = pool.FindServiceByName(service_name).methods_by_name[name]
        except KeyError:
            raise NotFound(
                f"dataset {dataset.id}: the descriptors of {dataset.subsystem} define no"
                f" {dataset.method}"
            ) from None
        if found.client_streaming:
            raise InvalidArgument(f"dataset {dataset.id}: {dataset.method} is client-streaming")
        return found

    def _call(
        self,
        channel: grpc.Channel,
        dataset: OpenDataset,
        method: MethodDescriptor,
        request: Message,
        response_type: type[Message],
        headers: tuple[tuple[str, str | bytes], ...],
        exchange_ids: list[str],
    ) -> Iterable[Message]:
        path = dataset.method
        deserialize = response_type.FromString
        try:
            if method.server_streaming:
                stream = channel.unary_stream(
                    path, request_serializer=_serialize, response_deserializer=deserialize
                )
                return _Stream(stream(request, metadata=headers, timeout=self.timeout), self,
                               dataset, exchange_ids)  # fmt: skip
            unary = channel.unary_unary(
                path, request_serializer=_serialize, response_deserializer=deserialize
            )
            message, outcome = unary.with_call(request, metadata=headers, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._failure(exc, dataset, exchange_ids) from None
        exchange_ids.append(_exchange_id(outcome.trailing_metadata()))
        return [message]

    def _failure(
        self, exc: grpc.RpcError, dataset: OpenDataset, exchange_ids: list[str]
    ) -> SpeanError:
        call: grpc.Call = exc  # type: ignore[assignment]  # a failed call is both
        code, details = call.code(), call.details() or ""
        exchange = _exchange_id(call.trailing_metadata())
        kept = self.store.index(dataset.id).latest
        served = f"version {kept.number} stays served" if kept else "no version is served yet"
        message = (
            f"dataset {dataset.id}: {dataset.method} of {dataset.subsystem} through"
            f" {self.endpoint.address} failed: {code.name}: {details}"
            f" (exchange {exchange or 'none'}); nothing was published, {served}"
        )
        for cls in (
            errors.Unavailable,
            errors.NotFound,
            errors.PermissionDenied,
            errors.Unauthenticated,
            errors.InvalidArgument,
            errors.DeadlineExceeded,
            errors.ResourceExhausted,
        ):
            if cls.code is code:
                return cls(message)
        return errors.FailedPrecondition(message)


class _Stream:
    """A server stream's messages; its exchange id recorded when it ends, errors translated."""

    def __init__(
        self, call: object, generator: Generator, dataset: OpenDataset, ids: list[str]
    ) -> None:
        self._call = call
        self._generator = generator
        self._dataset = dataset
        self._ids = ids

    def __iter__(self) -> Iterator[Message]:
        call: grpc.Call = self._call  # type: ignore[assignment]
        try:
            yield from call  # type: ignore[misc]
        except grpc.RpcError as exc:
            raise self._generator._failure(exc, self._dataset, self._ids) from None
        self._ids.append(_exchange_id(call.trailing_metadata()))


def _requests(dataset: OpenDataset, method: MethodDescriptor) -> list[Message]:
    request_type = _message_class(method.input_type)
    parsed = []
    for n, text in enumerate(dataset.requests):
        try:
            parsed.append(json_format.Parse(text, request_type()))
        except json_format.ParseError as exc:
            raise InvalidArgument(
                f"dataset {dataset.id}: requests[{n}] is not a {method.input_type.full_name}: {exc}"
            ) from exc
    return parsed


def _exchange_id(trailing: object) -> str:
    for key, value in trailing or ():  # type: ignore[attr-defined]
        if key == EXCHANGE_ID:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def _message_class(descriptor: object) -> type[Message]:
    cls: type[Message] = message_factory.GetMessageClass(descriptor)  # type: ignore[arg-type]
    return cls


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Regenerator:
    """Runs the generations at start and then every `interval` seconds, in a thread."""

    def __init__(
        self,
        generator: Generator,
        configuration: Callable[[], GlobalConfiguration],
        interval: float,
    ) -> None:
        if interval <= 0:
            raise InvalidArgument(f"--regenerate-seconds {interval}: give a positive interval")
        self._generator = generator
        self._configuration = configuration
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opendata-regenerate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._generator.generate(self._configuration())
            except SpeanError as exc:  # no configuration yet, or it expired: try next time
                log.warning(
                    "opendata.regeneration_skipped", status=exc.code.name, error=exc.message
                )
            self._stopped.wait(self._interval)


__all__ = ["DEFAULT_TIMEOUT", "ConsumerEndpoint", "Generator", "Outcome", "Regenerator"]
