"""One error tree for Spean.

Every expected failure is a `SpeanError` that knows the gRPC status code the
caller must see and a message an operator can act on. Foreign exceptions
(database drivers, TLS, JWT, YAML) are translated into this tree once, at the
edge that meets them; nothing else catches a broad `Exception`.
"""

from __future__ import annotations

import grpc


class SpeanError(Exception):
    """Base of every expected Spean failure.

    `code` is the gRPC status the caller sees; `str(error)` is the message,
    which must never contain a stack trace, SQL text or secret material.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(SpeanError):
    """Bad, expired, revoked or unknown certificate or token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(SpeanError):
    """The caller is known but has no access right for this call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(SpeanError):
    """Unknown member, subsystem, security server, method or record."""

    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(SpeanError):
    """Malformed request, header, identifier or configuration value."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(SpeanError):
    """Too large or rate limited."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(SpeanError):
    """A provider, its database or the audit store cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SpeanError):
    """The caller's deadline ran out."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(SpeanError):
    """The system is not in a state to serve (e.g. no valid global configuration)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(SpeanError):
    """An identifier is taken by something else (an event id reused for other bytes)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Internal(SpeanError):
    """A bug. The caller sees a generic message; details go to the operator's log."""

    code = grpc.StatusCode.INTERNAL


class ConfigError(SpeanError):
    """A configuration file is invalid. The message names the file and the field."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AuditError(Unavailable):
    """The audit store failed: the exchange is refused (fail closed)."""


class EventStoreError(Unavailable):
    """The event store failed: the publish or delivery is refused (fail closed)."""


STATUS_BY_NAME: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}


def status_from_name(name: str) -> grpc.StatusCode:
    """Map `"NOT_FOUND"` to `grpc.StatusCode.NOT_FOUND`; unknown names are INTERNAL."""
    return STATUS_BY_NAME.get(name, grpc.StatusCode.INTERNAL)
