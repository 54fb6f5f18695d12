"""The adapter interface: how a security server reaches a ministry's own systems.

An adapter serves one or more gRPC methods on behalf of the provider security
server. This module is part of Spean's public surface: IT teams implement it
(the Python adapter) and Spean ships implementations of it (SQL, gRPC
pass-through). Changes here are changes to a contract.

Theory of operation
-------------------
The security server loads each adapter from its configuration
(`spean.adapters.loader.load_adapter`), calls `start()` once before serving and
`stop()` once when shutting down. Between the two it calls `unary()` or
`stream()`, as `methods()` declares, from many threads at once; an adapter
must be thread-safe for calls (start and stop are never concurrent with each
other). Before calling, the security server has already authenticated the
caller and checked the request against the token and the access rights
(docs/protocol.md, section 4.2). Nothing is logged yet: the exchange's one
audit record, with the request's and the answer's digests, is written after
the adapter's answer (or failure) is complete, and before the answer's last
message and status leave the server.

Invariants
----------
- Bodies cross the boundary as serialized protobuf bytes. The security server
  never re-serialises them: the digests in the signed tokens are over exactly
  these bytes, and a pass-through adapter needs no decoding at all.
- The only exceptions an adapter raises are `spean.gateway.errors.SpeanError`
  subclasses (re-exported by `adapters`): `NotFound`, `InvalidArgument`,
  `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, `PermissionDenied`,
  `FailedPrecondition`, `Internal`; `ConfigError` from `start()`. The security
  server maps each to its gRPC status. Anything else is a bug: the caller sees
  INTERNAL with a generic message.
- Error messages go to the calling ministry. They never contain SQL text,
  table or column names, host names or driver messages; adapters log those for
  the operator (structlog) and raise a message that says what the caller can
  change.
- `CallContext.deadline` is the caller's deadline carried across both hops;
  an adapter stops work when it passes and raises `DeadlineExceeded`.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from spean.gateway import metadata

__all__ = ["Adapter", "CallContext", "Health", "MethodKind", "PoolStatus"]


class MethodKind(enum.Enum):
    """The gRPC call shapes Spean carries (client streaming is not supported)."""

    UNARY = "unary"
    SERVER_STREAMING = "server_streaming"


@dataclass(frozen=True, slots=True)
class CallContext:
    """What an adapter may know about the call it serves.

    Attributes:
        method: full gRPC method path, e.g. ``/vehicles.v1.VehicleRegistry/GetVehicle``.
        exchange_id: the exchange id, as logged on both sides and returned to
            the caller in ``spean-exchange-id``; adapters put it in their logs.
        client: the calling subsystem, e.g. ``KH/GOV/MOH/nhis``, authenticated
            by the security servers.
        user: the end user on whose behalf the call is made (``spean-user``),
            as asserted by the client; empty when not given.
        purpose: case number or legal basis (``spean-purpose``); empty when
            not given.
        deadline: absolute deadline on the `time.monotonic()` clock, or None
            when the caller set none.
    """

    method: str
    exchange_id: str
    client: str
    user: str = ""
    purpose: str = ""
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (negative once past), or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed; never true without a deadline."""
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def caller_metadata(self) -> tuple[tuple[str, str], ...]:
        """Who is calling, as Spean headers for the internal service: non-empty values only."""
        pairs = (
            (metadata.CLIENT, self.client),
            (metadata.USER, self.user),
            (metadata.PURPOSE, self.purpose),
            (metadata.EXCHANGE_ID, self.exchange_id),
        )
        return tuple((key, value) for key, value in pairs if value)


@dataclass(frozen=True, slots=True)
class Health:
    """An adapter's own view of whether it can serve.

    `detail` is for the operator (health endpoint, logs), not for callers.
    """

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """Use of an adapter's connection pool right now, for the operator's metrics.

    Attributes:
        checked_out: connections lent to calls in progress.
        size: connections the pool keeps open.
        max_overflow: connections it may open beyond `size` under load; a
            call waits once `checked_out` reaches `size + max_overflow`.
    """

    checked_out: int
    size: int
    max_overflow: int = 0

    @property
    def limit(self) -> int:
        """The most connections the pool lends at once."""
        return self.size + self.max_overflow


class Adapter(ABC):
    """Serves gRPC methods from a ministry's internal system.

    Subclasses implement `methods`, `unary` and `stream`; `start`, `stop`,
    `health`, `services` and `pool_status` have defaults suitable for
    adapters that hold no resources.
    """

    @abstractmethod
    def methods(self) -> Mapping[str, MethodKind]:
        """The methods served, full path -> call shape.

        Must be answerable before `start()` (the security server uses it to
        build its routes) and must not change afterwards.
        """

    def services(self) -> Sequence[ServiceDescriptor]:
        """Descriptors of the protobuf services served, where the adapter knows them.

        The security server uses them to decode responses when a rule asks it
        to drop or pseudonymise fields, and for reflection. An adapter that
        serves opaque bytes (a pass-through without descriptors) returns an
        empty sequence.
        """
        return ()

    def start(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Acquire resources and validate the configuration against them.

        Raises `ConfigError` for a mistake the operator must fix (the message
        names the file, the method and the field) and `Unavailable` when a
        system the adapter depends on cannot be reached.
        """

    def stop(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Release resources. Calls arriving afterwards raise `Unavailable`."""

    def health(self) -> Health:
        """Check the adapter can serve now. Must not raise; must return quickly."""
        return Health(ok=True, detail="no dependencies")

    def pool_status(self) -> PoolStatus | None:
        """Use of the adapter's connection pool, or None when it keeps none (the default).

        Read at each metrics scrape, from another thread than the calls: must
        not raise, must not block, must not do I/O.
        """
        return None

    @abstractmethod
    def unary(self, ctx: CallContext, request: bytes) -> bytes:
        """Serve one unary call: serialized request in, serialized response out."""

    @abstractmethod
    def stream(self, ctx: CallContext, request: bytes) -> Iterator[bytes]:
        """Serve one server-streaming call, one serialized message per item.

        Implementations should check the request before returning the
        iterator (so a malformed request fails before any message is sent) and
        produce messages lazily, so memory stays bounded whatever the number
        of results. The security server closes the iterator (`close()` on a
        generator) when the caller goes away; resources must be released then.
        """
