"""What a request or response token says: its claims, exchange ids and trusted keys (pure).

Request claims: ``iss`` member, ``sub`` client subsystem (of ``iss``), ``aud``
provider subsystem (one string), ``mth`` gRPC method path, ``jti`` exchange id
(canonical lower-case UUID4), ``iat``/``exp`` integer seconds, ``req``
base64url SHA-256 of the request message, and optional ``usr`` / ``pur``
strings, omitted when empty. Response claims: ``iss`` provider member,
``sub`` provider subsystem, ``aud`` client subsystem, ``jti``, ``iat``,
``exp``, ``sts`` gRPC status name, ``res`` base64url response digest (see
`spean.gateway.digests`), ``cnt`` number of response messages, and the
optional ``sbj``, the base64url pseudonym of the data subject
(`spean.gateway.subjects`), present only when the exchange named one.

Guarantees:

- A `RequestClaims` or `ResponseClaims` value satisfies every invariant of
  its claims (identifiers, the sender a subsystem of the issuer, a canonical
  exchange id, integer times with expiry after issue, 32-byte digests, text
  without control characters): construction raises `InvalidArgument`
  otherwise, so a signer can only sign, and a verifier only return, claims
  that hold.
- A signing key's algorithm is its type's (`algorithm_for_key`, after
  `pki.algorithm_for`); a `VerifyingKey` refuses any other, so no resolver
  can widen what a key verifies.
- The claim names of each token type are exactly `REQUEST_CLAIMS` (plus
  `OPTIONAL_REQUEST_CLAIMS`) and `RESPONSE_CLAIMS` (plus
  `OPTIONAL_RESPONSE_CLAIMS`), and a header's
  parameters exactly `HEADER_PARAMETERS`: the signer writes these and the
  verifier accepts nothing else.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from spean.gateway import identifiers, pki
from spean.gateway.digests import DIGEST_SIZE
from spean.gateway.errors import STATUS_BY_NAME, ConfigError, InvalidArgument
from spean.gateway.identifiers import MemberId, SubsystemId

ES256: Final = pki.ES256
EDDSA: Final = pki.EDDSA
REQUEST_TYPE: Final = "spean-req+jwt"
RESPONSE_TYPE: Final = "spean-res+jwt"

MAX_TOKEN_SIZE: Final = 8192
"""Longest token accepted, in characters; real tokens are well under 1 KiB."""
DEFAULT_LEEWAY: Final = 30
DEFAULT_MAX_LIFETIME: Final = 300
MAX_TEXT_CLAIM: Final = 1024
"""Longest ``usr`` / ``pur`` value, in characters."""
KID_SHOWN: Final = 16
"""Hex characters of a kid quoted in messages (enough to find the certificate)."""

HEADER_PARAMETERS: Final = frozenset({"alg", "typ", "kid"})
REQUEST_CLAIMS: Final = frozenset({"iss", "sub", "aud", "mth", "jti", "iat", "exp", "req"})
OPTIONAL_REQUEST_CLAIMS: Final = frozenset({"usr", "pur"})
RESPONSE_CLAIMS: Final = frozenset({"iss", "sub", "aud", "jti", "iat", "exp", "sts", "res", "cnt"})
OPTIONAL_RESPONSE_CLAIMS: Final = frozenset({"sbj"})

_EXCHANGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
# C0 and C1 controls (log injection) and lone surrogates (not Unicode text).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# A federation has few members, subsystems and methods, and every token names
# some of them: parsing each text once saves a good part of verification time.
# Only signed claims reach these caches on the verifying side, and they are
# bounded; errors are never cached.
parse_member_cached = functools.lru_cache(maxsize=1024)(MemberId.parse)
parse_subsystem_cached = functools.lru_cache(maxsize=4096)(SubsystemId.parse)
parse_method_cached = functools.lru_cache(maxsize=4096)(identifiers.parse_method)


# --- exchange ids --------------------------------------------------------------------------


def new_exchange_id() -> str:
    """A fresh exchange id: a random UUID4 in canonical lower-case form."""
    return str(uuid.uuid4())


def is_exchange_id(text: object) -> bool:
    return isinstance(text, str) and _EXCHANGE_ID.match(text) is not None


def parse_exchange_id(text: str) -> str:
    """Return `text` if it is a canonical exchange id, else raise `InvalidArgument`."""
    if not is_exchange_id(text):
        raise InvalidArgument(
            f"exchange id {quote(text)} must be a lower-case UUID4"
            " (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx)"
        )
    return text


# --- claims --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestClaims:
    """What a request token asserts. Construction checks every invariant."""

    issuer: MemberId
    client: SubsystemId
    audience: SubsystemId
    method: str
    exchange_id: str
    issued_at: int
    expires_at: int
    request_sha256: bytes
    user: str = ""
    purpose: str = ""

    def __post_init__(self) -> None:
        _check_parties(self.issuer, self.client, self.audience, "client")
        parse_method_cached(self.method)
        _check_common(self.exchange_id, self.issued_at, self.expires_at)
        _check_digest(self.request_sha256, "request digest")
        _check_text(self.user, "user")
        _check_text(self.purpose, "purpose")


@dataclass(frozen=True, slots=True)
class ResponseClaims:
    """What a response token asserts. Construction checks every invariant."""

    issuer: MemberId
    provider: SubsystemId
    audience: SubsystemId
    exchange_id: str
    issued_at: int
    expires_at: int
    status: str
    response_sha256: bytes
    response_messages: int
    # The data subject's pseudonym (docs/protocol.md 4.4): 32 bytes, or empty for none.
    subject_pseudonym: bytes = b""

    def __post_init__(self) -> None:
        _check_parties(self.issuer, self.provider, self.audience, "provider")
        _check_common(self.exchange_id, self.issued_at, self.expires_at)
        if not isinstance(self.status, str) or self.status not in STATUS_BY_NAME:
            raise InvalidArgument(f"status {quote(self.status)} is not a gRPC status code name")
        _check_digest(self.response_sha256, "response digest")
        if type(self.response_messages) is not int or self.response_messages < 0:
            raise InvalidArgument(
                f"response message count {quote(self.response_messages)}"
                " must be a non-negative integer"
            )
        if self.subject_pseudonym:
            _check_digest(self.subject_pseudonym, "subject pseudonym")


def _check_parties(issuer: MemberId, sender: SubsystemId, audience: SubsystemId, role: str) -> None:
    if not isinstance(issuer, MemberId):
        raise InvalidArgument(f"issuer must be a MemberId, got {type(issuer).__name__}")
    if not isinstance(sender, SubsystemId) or not isinstance(audience, SubsystemId):
        raise InvalidArgument(f"{role} and audience must be SubsystemId values")
    if sender.member != issuer:
        raise InvalidArgument(f"{role} {sender} is not a subsystem of issuer {issuer}")


def _check_common(exchange_id: str, issued_at: int, expires_at: int) -> None:
    parse_exchange_id(exchange_id)
    # `type(...) is int`: True and False are ints to isinstance, never times.
    if type(issued_at) is not int or type(expires_at) is not int:
        raise InvalidArgument("issued-at and expiry times must be integers (seconds)")
    if issued_at < 0:
        raise InvalidArgument(f"issued-at time {issued_at} is negative")
    if expires_at <= issued_at:
        raise InvalidArgument(f"expiry {expires_at} is not after issued-at time {issued_at}")


def _check_digest(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != DIGEST_SIZE:
        raise InvalidArgument(f"{what} must be {DIGEST_SIZE} bytes (SHA-256)")


def _check_text(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CLAIM:
        raise InvalidArgument(f"{what} is longer than {MAX_TEXT_CLAIM} characters")
    if _FORBIDDEN_TEXT.search(value):
        raise InvalidArgument(f"{what} contains control characters or lone surrogates")


# --- keys ----------------------------------------------------------------------------------


def algorithm_for_key(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """The JWS algorithm a signing key implies (`pki.algorithm_for`): the only one used with it.

    A key of another type is a configuration mistake: `ConfigError`.
    """
    try:
        return pki.algorithm_for(key)
    except InvalidArgument as error:
        raise ConfigError(f"signing key: {error.message}") from None


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A trusted member signing key, as resolved from the global configuration.

    `algorithm` must be the one the key type implies (`algorithm_for_key`);
    construction refuses anything else, so a resolver cannot widen it.
    """

    member: MemberId
    public_key: PublicKeyTypes
    algorithm: str

    def __post_init__(self) -> None:
        implied = algorithm_for_key(self.public_key)
        if self.algorithm != implied:
            raise ConfigError(
                f"signing key of {self.member} is an {implied} key,"
                f" not usable with {quote(self.algorithm)}"
            )

    @classmethod
    def from_certificate(cls, member: MemberId, certificate: x509.Certificate) -> VerifyingKey:
        public_key = certificate.public_key()
        return cls(member, public_key, algorithm_for_key(public_key))


KeyResolver: TypeAlias = Callable[[str], VerifyingKey | None]
"""Maps a kid to the trusted key it names, or None when it is unknown.

A resolver may itself raise `Unauthenticated` (say, for a revoked key); the
verifier passes its reason on, prefixed with the token and the key
(``request token signed by key K: ...``). `spean.gateway.trust.key_resolver` is
the one resolver over the global configuration.
"""


# --- messages ------------------------------------------------------------------------------


def quote(value: object, limit: int = 40) -> str:
    """Quote a value from the wire for a message: escaped and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote_names(names: list[str]) -> str:
    return ", ".join(quote(name) for name in names)
