"""Spean's metadata headers (DESIGN.md, "Calling a remote service").

Parsing is pure: it takes the call's metadata as (key, value) pairs and
returns a frozen value or raises `InvalidArgument` naming the header. Each
Spean header may appear at most once; values must be printable text of
bounded length, so nothing odd reaches the audit log or the peer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.identifiers import SubsystemId
from spean.gateway.subjects import MAX_SUBJECT_CHARS, is_subject
from spean.gateway.tokens import MAX_TOKEN_SIZE

CLIENT = "spean-client"
SERVICE = "spean-service"
USER = "spean-user"
PURPOSE = "spean-purpose"
SUBJECT = "spean-subject"
EXCHANGE_ID = "spean-exchange-id"
REQUEST_TOKEN = "spean-request-token"  # noqa: S105 - a header name
RESPONSE_TOKEN = "spean-response-token"  # noqa: S105 - a header name

_CONSUMER_HEADERS = (CLIENT, SERVICE, USER, PURPOSE, SUBJECT)
MAX_TOKEN_BYTES = MAX_TOKEN_SIZE  # a token is ASCII: characters and bytes agree


@dataclass(frozen=True, slots=True)
class ConsumerHeaders:
    client: SubsystemId
    service: SubsystemId
    user: str
    purpose: str
    # The data subject (docs/protocol.md 4.4): forwarded to the provider, never recorded.
    subject: str = ""


def _collect(metadata: Iterable[tuple[str, str | bytes]], names: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in metadata:
        if key not in names:
            continue
        if key in found:
            raise InvalidArgument(f"header {key} appears more than once; send it exactly once")
        if not isinstance(value, str):
            raise InvalidArgument(f"header {key} must be text")
        found[key] = value
    return found


def _text(name: str, value: str, max_bytes: int) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InvalidArgument(f"header {name} is longer than {max_bytes} bytes")
    if not value.isprintable():
        raise InvalidArgument(f"header {name} contains control characters")
    return value


def parse_consumer_headers(
    metadata: Iterable[tuple[str, str | bytes]], max_bytes: int = 1024
) -> ConsumerHeaders:
    """Read spean-client, spean-service and the optional user, purpose and subject headers."""
    found = _collect(metadata, _CONSUMER_HEADERS)
    for required in (CLIENT, SERVICE):
        if required not in found:
            raise InvalidArgument(
                f"header {required} is missing: name the calling subsystem in {CLIENT} and the"
                f" provider subsystem in {SERVICE}"
            )
    client = SubsystemId.parse(_text(CLIENT, found[CLIENT], max_bytes))
    service = SubsystemId.parse(_text(SERVICE, found[SERVICE], max_bytes))
    return ConsumerHeaders(
        client=client,
        service=service,
        user=_text(USER, found.get(USER, ""), max_bytes),
        purpose=_text(PURPOSE, found.get(PURPOSE, ""), max_bytes),
        subject=_subject(found.get(SUBJECT)),
    )


def _subject(value: str | None) -> str:
    if value is None:
        return ""
    if not is_subject(value):
        # The value is not quoted: it may be a person's id number, and messages are logged.
        raise InvalidArgument(
            f"header {SUBJECT} must be 1 to {MAX_SUBJECT_CHARS} characters of letters, digits"
            " and . _ : / + -, starting with a letter or digit (the data subject's id)"
        )
    return value


def parse_subject(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The optional spean-subject header as the provider reads it ("" when absent)."""
    return _subject(_collect(metadata, (SUBJECT,)).get(SUBJECT))


def single_token(metadata: Iterable[tuple[str, str | bytes]], name: str) -> str:
    """The one token header `name`; missing, repeated or oversized is Unauthenticated."""
    try:
        found = _collect(metadata, (name,))
    except InvalidArgument as exc:
        raise Unauthenticated(exc.message) from None
    token = found.get(name)
    if token is None:
        raise Unauthenticated(f"header {name} is missing")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated(f"header {name} is longer than {MAX_TOKEN_BYTES} bytes")
    return token


@dataclass(frozen=True, slots=True)
class MetaHeaders:
    """spean-client and spean-service as metaservices and reflection read them: both optional."""

    client: SubsystemId | None
    service: SubsystemId | None

    def require_client(self) -> SubsystemId:
        if self.client is None:
            raise InvalidArgument(f"header {CLIENT} is missing: name the calling subsystem")
        return self.client


def parse_meta_headers(
    metadata: Iterable[tuple[str, str | bytes]], max_bytes: int = 1024
) -> MetaHeaders:
    """Read the optional spean-client and spean-service headers (each at most once)."""
    found = _collect(metadata, (CLIENT, SERVICE))
    client, service = found.get(CLIENT), found.get(SERVICE)
    return MetaHeaders(
        client=None if client is None else SubsystemId.parse(_text(CLIENT, client, max_bytes)),
        service=None if service is None else SubsystemId.parse(_text(SERVICE, service, max_bytes)),
    )
