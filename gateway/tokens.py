"""Request and response tokens: Spean's signed wire contract (DESIGN.md "Tokens").

Every hop carries a compact JWS (RFC 7515/7519) signed with the member's
signing key, EC P-256 (``ES256``) or Ed25519 (``EdDSA``).

JOSE header, exactly these three parameters and nothing else::

    {"alg": "ES256" | "EdDSA", "typ": "spean-req+jwt" | "spean-res+jwt",
     "kid": <lower-case hex SHA-256 of the signer's DER certificate>}

Request claims: ``iss`` member, ``sub`` client subsystem (of ``iss``), ``aud``
provider subsystem (one string), ``mth`` gRPC method path, ``jti`` exchange id
(canonical lower-case UUID4), ``iat``/``exp`` integer seconds, ``req``
base64url SHA-256 of the request message, and optional ``usr`` / ``pur``
strings, omitted when empty. Response claims: ``iss`` provider member,
``sub`` provider subsystem, ``aud`` client subsystem, ``jti``, ``iat``,
``exp``, ``sts`` gRPC status name, ``res`` base64url response digest (see
`spean.gateway.digests`), ``cnt`` number of response messages.

Verification is strict and fails closed; every refusal is `Unauthenticated`
with a message an operator can act on:

- the token is at most `MAX_TOKEN_SIZE` characters of three non-empty,
  canonical base64url segments (canonical: each byte string has exactly one
  accepted spelling, so no character of a token can change without the token
  failing to verify);
- the header is read without being trusted: exactly alg/typ/kid, the expected
  ``typ``, a well-formed ``kid``. The key comes from the caller's resolver
  (the trusted global configuration) and the algorithm from that key's TYPE;
  a header ``alg`` that differs is refused, so ``none``, HMAC and algorithm
  confusion cannot arise;
- the claim set is exact (no missing, no extra claims), every claim has its
  JSON type (a boolean is not an integer), identifiers parse, ``iss`` owns
  the signing key and ``sub`` belongs to ``iss``, and the token is within its
  lifetime at ``now`` (with `leeway` for clock skew) and lives at most
  `max_lifetime` seconds.

Binding a verified request to the call in hand (audience, method, body) is the
caller's job, through `check_request_binding`. Token text is not unique per
exchange (an ECDSA signature can be re-signed or re-shaped into another valid
one), so replay detection must key on ``(iss, jti)``, never on the token text.

Signing is on the hot path: each `TokenSigner` precomputes its encoded
headers, and signatures are made and checked with `cryptography` directly
(the JWS signature format of RFC 7518: raw ``r || s`` for ES256), which
costs a few microseconds over the bare signature where pyjwt's algorithm
objects cost 20 to 30 and ``jwt.encode``/``jwt.decode`` tens more (see
``bench/tokens.py``). The tests check every token against pyjwt both ways.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from spean.gateway import pki
from spean.gateway.digests import DIGEST_SIZE, b64url, b64url_decode, decode_digest
from spean.gateway.errors import STATUS_BY_NAME, ConfigError, InvalidArgument, Unauthenticated
from spean.gateway.identifiers import MemberId, SubsystemId, parse_method

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

_SIGNATURE_SIZE: Final = 64  # ES256 (r || s, 32 bytes each) and Ed25519 alike
_KID_SHOWN: Final = 16  # hex characters of a kid quoted in messages

_ES256_HALF: Final = 32  # bytes of r and of s in a JWS ES256 signature (RFC 7518 3.4)


def _sign_raw(algorithm: str, key: PrivateKeyTypes, data: bytes) -> bytes:
    """The JWS signature bytes over `data`, exactly as pyjwt makes them.

    `key` is a `TokenSigner`'s key, whose type `algorithm_for_key` checked to
    be the one `algorithm` names (EC P-256 for ES256). JWS writes an ECDSA
    signature as raw ``r || s`` where `pki.sign` gives DER.
    """
    if algorithm == ES256:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(pki.sign(key, data))
        return r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return pki.sign(key, data)


def _verify_raw(algorithm: str, key: PublicKeyTypes, data: bytes, signature: bytes) -> bool:
    """Whether `signature` over `data` verifies with `key` under `algorithm`.

    `key` is a `VerifyingKey`'s, whose construction checked that its type is
    the one `algorithm` names; `signature` is already `_SIGNATURE_SIZE` bytes.
    """
    if algorithm == ES256:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:_ES256_HALF], "big"),
            int.from_bytes(signature[_ES256_HALF:], "big"),
        )
        return pki.signature_valid(key, der, data)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return False
    return pki.signature_valid(key, signature, data)


_HEADER_KEYS: Final = frozenset({"alg", "typ", "kid"})
_REQUEST_REQUIRED: Final = frozenset({"iss", "sub", "aud", "mth", "jti", "iat", "exp", "req"})
_REQUEST_OPTIONAL: Final = frozenset({"usr", "pur"})
_RESPONSE_REQUIRED: Final = frozenset(
    {"iss", "sub", "aud", "jti", "iat", "exp", "sts", "res", "cnt"}
)

_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")
_EXCHANGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
# C0 and C1 controls (log injection) and lone surrogates (not Unicode text).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# A federation has few members, subsystems and methods, and every token names
# some of them: parsing each text once saves a good part of verification time.
# Only signed claims reach these caches on the verifying side, and they are
# bounded; errors are never cached.
_parse_member = functools.lru_cache(maxsize=1024)(MemberId.parse)
_parse_subsystem = functools.lru_cache(maxsize=4096)(SubsystemId.parse)
_parse_method = functools.lru_cache(maxsize=4096)(parse_method)


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
            f"exchange id {_show(text)} must be a lower-case UUID4"
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
        _parse_method(self.method)
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

    def __post_init__(self) -> None:
        _check_parties(self.issuer, self.provider, self.audience, "provider")
        _check_common(self.exchange_id, self.issued_at, self.expires_at)
        if not isinstance(self.status, str) or self.status not in STATUS_BY_NAME:
            raise InvalidArgument(f"status {_show(self.status)} is not a gRPC status code name")
        _check_digest(self.response_sha256, "response digest")
        if type(self.response_messages) is not int or self.response_messages < 0:
            raise InvalidArgument(
                f"response message count {_show(self.response_messages)}"
                " must be a non-negative integer"
            )


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
                f" not usable with {_show(self.algorithm)}"
            )

    @classmethod
    def from_certificate(cls, member: MemberId, certificate: x509.Certificate) -> VerifyingKey:
        public_key = certificate.public_key()
        return cls(member, public_key, algorithm_for_key(public_key))


KeyResolver: TypeAlias = Callable[[str], VerifyingKey | None]
"""Maps a kid to the trusted key it names, or None when it is unknown.

A resolver may itself raise `Unauthenticated` (say, for a revoked key); the
verifier lets that through unchanged.
"""


# --- signing -------------------------------------------------------------------------------


class TokenSigner:
    """Signs this member's tokens with its signing key and certificate."""

    __slots__ = ("_key", "_request_prefix", "_response_prefix", "algorithm", "kid")

    def __init__(self, private_key: PrivateKeyTypes, certificate: x509.Certificate) -> None:
        self.algorithm = algorithm_for_key(private_key)
        self.kid = pki.thumbprint(certificate)
        if pki.public_key_bytes(private_key.public_key()) != pki.public_key_bytes(
            certificate.public_key()
        ):
            raise ConfigError(
                f"signing key does not match the public key of certificate {self.kid[:_KID_SHOWN]}"
            )
        self._key = private_key
        self._request_prefix = self._header(REQUEST_TYPE)
        self._response_prefix = self._header(RESPONSE_TYPE)

    def _header(self, typ: str) -> str:
        header = {"alg": self.algorithm, "typ": typ, "kid": self.kid}
        return b64url(json.dumps(header, separators=(",", ":")).encode("ascii")) + "."

    def sign_request(self, claims: RequestClaims) -> str:
        payload: dict[str, object] = {
            "iss": str(claims.issuer),
            "sub": str(claims.client),
            "aud": str(claims.audience),
            "mth": claims.method,
            "jti": claims.exchange_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "req": b64url(claims.request_sha256),
        }
        if claims.user:
            payload["usr"] = claims.user
        if claims.purpose:
            payload["pur"] = claims.purpose
        return self._finish(self._request_prefix, payload)

    def sign_response(self, claims: ResponseClaims) -> str:
        payload = {
            "iss": str(claims.issuer),
            "sub": str(claims.provider),
            "aud": str(claims.audience),
            "jti": claims.exchange_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "sts": claims.status,
            "res": b64url(claims.response_sha256),
            "cnt": claims.response_messages,
        }
        return self._finish(self._response_prefix, payload)

    def _finish(self, prefix: str, payload: dict[str, object]) -> str:
        # json.dumps escapes non-ASCII by default, so the token is pure ASCII.
        body = _JSON_ENCODER.encode(payload).encode("ascii")
        signing_input = prefix + b64url(body)
        signature = _sign_raw(self.algorithm, self._key, signing_input.encode("ascii"))
        return signing_input + "." + b64url(signature)

    def __repr__(self) -> str:
        return f"TokenSigner(algorithm={self.algorithm!r}, kid={self.kid[:_KID_SHOWN]!r})"


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))


# --- verification --------------------------------------------------------------------------


def verify_request(
    token: str,
    resolve: KeyResolver,
    *,
    now: int,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
) -> RequestClaims:
    """Verify a request token completely, except its binding to the call.

    Audience, method and body digest are checked by the caller, who knows the
    call, with `check_request_binding`.
    """
    what = "request token"
    key, kid, payload = _verify_jws(token, resolve, REQUEST_TYPE, what)
    _check_claim_names(payload, _REQUEST_REQUIRED, _REQUEST_OPTIONAL, what)
    for name in _REQUEST_OPTIONAL:
        if payload.get(name) == "":
            raise Unauthenticated(f"{what} claim {name!r} must be omitted when empty")
    issuer = _parsed_claim(payload, "iss", what, _parse_member)
    _check_issuer(issuer, key, kid, what)
    issued_at, expires_at = _check_times(payload, what, now, leeway, max_lifetime)
    try:
        return RequestClaims(
            issuer=issuer,
            client=_parsed_claim(payload, "sub", what, _parse_subsystem),
            audience=_parsed_claim(payload, "aud", what, _parse_subsystem),
            method=_parsed_claim(payload, "mth", what, _parse_method),
            exchange_id=_exchange_id_claim(payload, what),
            issued_at=issued_at,
            expires_at=expires_at,
            request_sha256=_parsed_claim(payload, "req", what, decode_digest),
            user=_str_claim(payload, "usr", what) if "usr" in payload else "",
            purpose=_str_claim(payload, "pur", what) if "pur" in payload else "",
        )
    except InvalidArgument as error:  # an invariant of RequestClaims
        raise Unauthenticated(f"{what}: {error.message}") from None


def verify_response(
    token: str,
    resolve: KeyResolver,
    *,
    now: int,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
    expected_exchange_id: str,
    expected_provider: SubsystemId,
    expected_client: SubsystemId,
) -> ResponseClaims:
    """Verify a response token and that it answers this exchange, from this provider, to us.

    The digest, count and status are checked against the received stream by
    the caller, with `check_response_binding`.
    """
    what = "response token"
    key, kid, payload = _verify_jws(token, resolve, RESPONSE_TYPE, what)
    _check_claim_names(payload, _RESPONSE_REQUIRED, frozenset(), what)
    issuer = _parsed_claim(payload, "iss", what, _parse_member)
    _check_issuer(issuer, key, kid, what)
    exchange_id = _exchange_id_claim(payload, what)
    if exchange_id != expected_exchange_id:
        raise Unauthenticated(
            f"{what} answers exchange {exchange_id}, not this exchange {expected_exchange_id}"
        )
    provider = _parsed_claim(payload, "sub", what, _parse_subsystem)
    if provider != expected_provider:
        raise Unauthenticated(f"{what} comes from {provider}, not from {expected_provider}")
    audience = _parsed_claim(payload, "aud", what, _parse_subsystem)
    if audience != expected_client:
        raise Unauthenticated(f"{what} is addressed to {audience}, not to {expected_client}")
    issued_at, expires_at = _check_times(payload, what, now, leeway, max_lifetime)
    status = _str_claim(payload, "sts", what)
    count = payload["cnt"]
    if type(count) is not int:
        raise Unauthenticated(f"{what} claim 'cnt' must be an integer")
    try:
        return ResponseClaims(
            issuer=issuer,
            provider=provider,
            audience=audience,
            exchange_id=exchange_id,
            issued_at=issued_at,
            expires_at=expires_at,
            status=status,
            response_sha256=_parsed_claim(payload, "res", what, decode_digest),
            response_messages=count,
        )
    except InvalidArgument as error:  # an invariant of ResponseClaims
        raise Unauthenticated(f"{what}: {error.message}") from None


def check_request_binding(
    claims: RequestClaims, *, audience: SubsystemId, method: str, body_sha256: bytes
) -> None:
    """Refuse a verified request token that was made for another call."""
    if claims.audience != audience:
        raise Unauthenticated(
            f"request token is addressed to {claims.audience}, but this call is for {audience}"
        )
    if claims.method != method:
        raise Unauthenticated(
            f"request token is for method {claims.method}, but this call is {method}"
        )
    if not hmac.compare_digest(claims.request_sha256, body_sha256):
        raise Unauthenticated(
            "request body does not match the digest in the request token (claim 'req')"
        )


def check_response_binding(
    claims: ResponseClaims, *, status: str, response_sha256: bytes, response_messages: int
) -> None:
    """Refuse a verified response token that does not describe the response received."""
    if claims.response_messages != response_messages:
        raise Unauthenticated(
            f"response token counts {claims.response_messages} messages,"
            f" but {response_messages} arrived"
        )
    if not hmac.compare_digest(claims.response_sha256, response_sha256):
        raise Unauthenticated(
            "response messages do not match the digest in the response token (claim 'res')"
        )
    if claims.status != status:
        raise Unauthenticated(
            f"response token carries status {claims.status}, but the call ended with {status}"
        )


# --- verification steps --------------------------------------------------------------------


def _verify_jws(
    token: str, resolve: KeyResolver, typ: str, what: str
) -> tuple[VerifyingKey, str, dict[str, Any]]:
    """Check framing, header and signature; return the key, kid and (untyped) claims."""
    if not isinstance(token, str):
        raise Unauthenticated(f"{what} must be text, got {type(token).__name__}")
    if len(token) > MAX_TOKEN_SIZE:
        raise Unauthenticated(
            f"{what} is {len(token)} characters long, more than the {MAX_TOKEN_SIZE} allowed"
        )
    if not _TOKEN.match(token):
        raise Unauthenticated(
            f"{what} is not a compact JWS (three base64url segments joined by '.')"
        )
    header_part, payload_part, signature_part = token.split(".")
    alg, kid = _read_header(header_part, typ, what)

    key = resolve(kid)
    if key is None:
        raise Unauthenticated(f"{what} signed by an unknown key {kid[:_KID_SHOWN]}")
    if alg != key.algorithm:
        # The algorithm is the key's, never the header's (RFC 8725 section 3.1).
        raise Unauthenticated(
            f"{what} header says {alg}, but key {kid[:_KID_SHOWN]} of {key.member}"
            f" takes {key.algorithm} only"
        )

    signature = _b64_part(signature_part, what, "signature")
    if len(signature) != _SIGNATURE_SIZE:
        raise Unauthenticated(
            f"{what} signature is {len(signature)} bytes; {alg} signatures are {_SIGNATURE_SIZE}"
        )
    signing_input = token[: len(header_part) + 1 + len(payload_part)].encode("ascii")
    if not _verify_raw(alg, key.public_key, signing_input, signature):
        raise Unauthenticated(
            f"{what} signature does not verify with key {kid[:_KID_SHOWN]} of {key.member}"
        )
    return key, kid, _json_object(payload_part, what, "payload")


@functools.lru_cache(maxsize=256)
def _read_header(part: str, typ: str, what: str) -> tuple[str, str]:
    """Check an encoded header without trusting it; return its alg and kid.

    Cached: a signer's header text never changes, and only headers that pass
    every check are remembered (a raised error is not cached).
    """
    header = _json_object(part, what, "header")
    if header.keys() != _HEADER_KEYS:
        extra = sorted(header.keys() - _HEADER_KEYS)
        if extra:
            raise Unauthenticated(
                f"{what} header has unexpected parameters {_names(extra)};"
                " only alg, typ and kid are accepted"
            )
        raise Unauthenticated(f"{what} header lacks {_names(sorted(_HEADER_KEYS - header.keys()))}")
    alg, token_typ, kid = header["alg"], header["typ"], header["kid"]
    if not isinstance(alg, str) or alg not in pki.ALGORITHMS:
        raise Unauthenticated(
            f"{what} algorithm {_show(alg)} is not accepted; only ES256 and EdDSA are"
        )
    if token_typ != typ:
        raise Unauthenticated(f"{what} has type {_show(token_typ)}, expected {typ!r}")
    if not pki.is_thumbprint(kid):
        raise Unauthenticated(
            f"{what} kid must be 64 lower-case hex characters (SHA-256 of the signer's certificate)"
        )
    return alg, kid


def _b64_part(part: str, what: str, name: str) -> bytes:
    try:
        return b64url_decode(part)
    except InvalidArgument as error:
        raise Unauthenticated(f"{what} {name}: {error.message}") from None


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate names are legal JSON with parser-dependent meaning; refuse them.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateKeyError(name)
            seen.add(name)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity are not JSON


# Built once: json.loads with hooks would build a new decoder on every call.
_JSON = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)


def _json_object(part: str, what: str, name: str) -> dict[str, Any]:
    data = _b64_part(part, what, name)
    try:
        value = _JSON.decode(data.decode("utf-8"))
    except _DuplicateKeyError as error:
        raise Unauthenticated(f"{what} {name} repeats the name {_show(error.key)}") from None
    except (ValueError, RecursionError):  # includes UnicodeDecodeError and JSONDecodeError
        raise Unauthenticated(f"{what} {name} is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise Unauthenticated(f"{what} {name} is not a JSON object")
    return value


def _check_claim_names(
    payload: dict[str, Any], required: frozenset[str], optional: frozenset[str], what: str
) -> None:
    missing = required - payload.keys()
    if missing:
        raise Unauthenticated(f"{what} lacks claim {_names(sorted(missing))}")
    extra = payload.keys() - required - optional
    if extra:
        raise Unauthenticated(f"{what} has unexpected claim {_names(sorted(extra))}")


def _check_issuer(issuer: MemberId, key: VerifyingKey, kid: str, what: str) -> None:
    if issuer != key.member:
        raise Unauthenticated(
            f"{what} issuer {issuer} does not own signing key {kid[:_KID_SHOWN]},"
            f" which belongs to {key.member}"
        )


def _check_times(
    payload: dict[str, Any], what: str, now: int, leeway: int, max_lifetime: int
) -> tuple[int, int]:
    issued_at = _int_claim(payload, "iat", what)
    expires_at = _int_claim(payload, "exp", what)
    if expires_at <= issued_at:
        raise Unauthenticated(f"{what} expires (exp) at or before it was issued (iat)")
    if expires_at - issued_at > max_lifetime:
        raise Unauthenticated(
            f"{what} lifetime of {expires_at - issued_at} s exceeds the maximum of {max_lifetime} s"
        )
    if issued_at > now + leeway:
        raise Unauthenticated(
            f"{what} issued {issued_at - now} s in the future;"
            " check the clocks of both security servers"
        )
    if expires_at <= now - leeway:
        raise Unauthenticated(f"{what} expired {now - expires_at} s ago")
    return issued_at, expires_at


def _str_claim(payload: dict[str, Any], name: str, what: str) -> str:
    value = payload[name]
    if not isinstance(value, str):
        raise Unauthenticated(f"{what} claim {name!r} must be a string")
    return value


def _int_claim(payload: dict[str, Any], name: str, what: str) -> int:
    value = payload[name]
    if type(value) is not int:  # bool is an int subclass and must not pass
        raise Unauthenticated(f"{what} claim {name!r} must be an integer")
    if value < 0:
        raise Unauthenticated(f"{what} claim {name!r} must not be negative")
    return value


_Parsed = TypeVar("_Parsed")


def _parsed_claim(
    payload: dict[str, Any], name: str, what: str, parse: Callable[[str], _Parsed]
) -> _Parsed:
    """A string claim read by `parse`; its `InvalidArgument` becomes Unauthenticated."""
    text = _str_claim(payload, name, what)
    try:
        return parse(text)
    except InvalidArgument as error:
        raise Unauthenticated(f"{what} claim {name!r}: {error.message}") from None


def _exchange_id_claim(payload: dict[str, Any], what: str) -> str:
    text = _str_claim(payload, "jti", what)
    if not _EXCHANGE_ID.match(text):
        raise Unauthenticated(f"{what} claim 'jti' must be a lower-case UUID4 exchange id")
    return text


def _names(names: list[str]) -> str:
    return ", ".join(_show(name) for name in names)


def _show(value: object, limit: int = 40) -> str:
    """Quote a value from the wire for a message: escaped and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
