"""Verifying request and response tokens: strict, fail-closed, pure (token text in, claims out).

Every refusal is `Unauthenticated` with a message an operator can act on,
never a library's text or a chained exception. A token is accepted only if:

- it is at most `MAX_TOKEN_SIZE` characters of three non-empty, canonical
  base64url segments (canonical: each byte string has exactly one accepted
  spelling, so no character of a token can change without the token failing
  to verify);
- its header, read without being trusted, is exactly alg/typ/kid, with the
  expected ``typ`` and a well-formed ``kid``. The key comes from the caller's
  resolver (the trusted global configuration, `trust.key_resolver`: a kid
  it does not know is "an unknown key"; a listed key it refuses, revoked or
  outside its validity period, is named with the resolver's reason) and the
  algorithm from that key's TYPE; a header ``alg`` that differs is refused,
  so ``none``, HMAC and algorithm confusion cannot arise;
- its signature verifies with that key (`spean.gateway.token_jws`);
- its claim set is exact (no missing, no extra claims), every claim has its
  JSON type (a boolean is not an integer), identifiers parse, ``iss`` owns
  the signing key and ``sub`` belongs to ``iss``, and the token is within its
  lifetime at ``now`` (with `leeway` for clock skew) and lives at most
  `max_lifetime` seconds.

Binding a verified token to the call in hand is the caller's job, through
`check_request_binding` (audience, method, body) and `check_response_binding`
(digest, count, status). Token text is not unique per exchange (an ECDSA
signature can be re-signed or re-shaped into another valid one), so replay
detection must key on ``(iss, jti)``, never on the token text.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from spean.gateway import pki
from spean.gateway.digests import decode_digest
from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.token_claims import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    HEADER_PARAMETERS,
    KID_SHOWN,
    MAX_TOKEN_SIZE,
    OPTIONAL_REQUEST_CLAIMS,
    OPTIONAL_RESPONSE_CLAIMS,
    REQUEST_CLAIMS,
    REQUEST_TYPE,
    RESPONSE_CLAIMS,
    RESPONSE_TYPE,
    KeyResolver,
    RequestClaims,
    ResponseClaims,
    VerifyingKey,
    is_exchange_id,
    parse_member_cached,
    parse_method_cached,
    parse_subsystem_cached,
    quote,
    quote_names,
)
from spean.gateway.token_jws import (
    SIGNATURE_SIZE,
    decode_compact_object,
    decode_compact_signature,
    decode_object,
    is_compact,
    verify_raw,
)


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
    _check_claimquote_names(payload, REQUEST_CLAIMS, OPTIONAL_REQUEST_CLAIMS, what)
    for name in OPTIONAL_REQUEST_CLAIMS:
        if name in payload and payload[name] == "":
            raise Unauthenticated(f"{what} claim {name!r} must be omitted when empty")
    issuer = _parsed_claim(payload, "iss", what, parse_member_cached)
    _check_issuer(issuer, key, kid, what)
    issued_at, expires_at = _check_times(payload, what, now, leeway, max_lifetime)
    try:
        return RequestClaims(
            issuer=issuer,
            client=_parsed_claim(payload, "sub", what, parse_subsystem_cached),
            audience=_parsed_claim(payload, "aud", what, parse_subsystem_cached),
            method=_parsed_claim(payload, "mth", what, parse_method_cached),
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
    _check_claimquote_names(payload, RESPONSE_CLAIMS, OPTIONAL_RESPONSE_CLAIMS, what)
    issuer = _parsed_claim(payload, "iss", what, parse_member_cached)
    _check_issuer(issuer, key, kid, what)
    exchange_id = _exchange_id_claim(payload, what)
    if exchange_id != expected_exchange_id:
        raise Unauthenticated(
            f"{what} answers exchange {exchange_id}, not this exchange {expected_exchange_id}"
        )
    provider = _parsed_claim(payload, "sub", what, parse_subsystem_cached)
    if provider != expected_provider:
        raise Unauthenticated(f"{what} comes from {provider}, not from {expected_provider}")
    audience = _parsed_claim(payload, "aud", what, parse_subsystem_cached)
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
            subject_pseudonym=(
                _parsed_claim(payload, "sbj", what, decode_digest) if "sbj" in payload else b""
            ),
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


def check_subject_binding(claims: ResponseClaims, *, subject_sent: bool) -> None:
    """Refuse a verified response token that does not acknowledge the call's data subject.

    The provider signs the subject's pseudonym (claim ``sbj``) into every
    answer of an exchange that named one once it read the subject (step 5a),
    and into no other (protocol.md 4.4). A signed refusal without ``sbj`` is
    the provider refusing at or before that step (a malformed subject, or no
    key to pseudonymise it): no record of the subject was touched, and the
    refusal stands. An ``OK`` without ``sbj`` is refused.
    """
    if subject_sent and not claims.subject_pseudonym and claims.status == "OK":
        raise Unauthenticated(
            "the provider's answer does not acknowledge the data subject (no claim 'sbj' in"
            " its response token): the exchange cannot be recorded against the subject"
        )
    if not subject_sent and claims.subject_pseudonym:
        raise Unauthenticated(
            "the provider's answer names a data subject this call did not send (claim 'sbj')"
        )


def check_recorded_subject(claims: ResponseClaims, recorded: bytes) -> None:
    """Refuse an audit record whose subject pseudonym is not its response token's ``sbj``."""
    if not hmac.compare_digest(claims.subject_pseudonym, recorded):
        raise Unauthenticated(
            "response token's subject pseudonym (claim 'sbj') is not the record's subject_pseudonym"
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
    if not is_compact(token):
        raise Unauthenticated(
            f"{what} is not a compact JWS (three base64url segments joined by '.')"
        )
    header_part, payload_part, signature_part = token.split(".")
    alg, kid = _read_header(header_part, typ, what)

    try:
        key = resolve(kid)
    except Unauthenticated as exc:  # a listed key it cannot trust: revoked, or out of its period
        raise Unauthenticated(f"{what} signed by key {kid[:KID_SHOWN]}: {exc.message}") from None
    if key is None:
        raise Unauthenticated(f"{what} signed by an unknown key {kid[:KID_SHOWN]}")
    if alg != key.algorithm:
        # The algorithm is the key's, never the header's (RFC 8725 section 3.1).
        raise Unauthenticated(
            f"{what} header says {alg}, but key {kid[:KID_SHOWN]} of {key.member}"
            f" takes {key.algorithm} only"
        )

    signature = decode_compact_signature(signature_part, what)
    if len(signature) != SIGNATURE_SIZE:
        raise Unauthenticated(
            f"{what} signature is {len(signature)} bytes; {alg} signatures are {SIGNATURE_SIZE}"
        )
    signing_input = token[: len(header_part) + 1 + len(payload_part)].encode("ascii")
    if not verify_raw(alg, key.public_key, signing_input, signature):
        raise Unauthenticated(
            f"{what} signature does not verify with key {kid[:KID_SHOWN]} of {key.member}"
        )
    return key, kid, decode_compact_object(payload_part, what, "payload")


@functools.lru_cache(maxsize=256)
def _read_header(part: str, typ: str, what: str) -> tuple[str, str]:
    """Check an encoded header without trusting it; return its alg and kid.

    Cached: a signer's header text never changes, and only headers that pass
    every check are remembered (a raised error is not cached).
    """
    header = decode_object(part, what, "header")
    if header.keys() != HEADER_PARAMETERS:
        extra = sorted(header.keys() - HEADER_PARAMETERS)
        if extra:
            raise Unauthenticated(
                f"{what} header has unexpected parameters {quote_names(extra)};"
                " only alg, typ and kid are accepted"
            )
        missing = sorted(HEADER_PARAMETERS - header.keys())
        raise Unauthenticated(f"{what} header lacks {quote_names(missing)}")
    alg, token_typ, kid = header["alg"], header["typ"], header["kid"]
    if not isinstance(alg, str) or alg not in pki.ALGORITHMS:
        raise Unauthenticated(
            f"{what} algorithm {quote(alg)} is not accepted; only ES256 and EdDSA are"
        )
    if token_typ != typ:
        raise Unauthenticated(f"{what} has type {quote(token_typ)}, expected {typ!r}")
    if not pki.is_thumbprint(kid):
        raise Unauthenticated(
            f"{what} kid must be 64 lower-case hex characters (SHA-256 of the signer's certificate)"
        )
    return alg, kid


def _check_claimquote_names(
    payload: dict[str, Any], required: frozenset[str], optional: frozenset[str], what: str
) -> None:
    if payload.keys() == required:  # the common case, one comparison
        return
    missing = required - payload.keys()
    if missing:
        raise Unauthenticated(f"{what} lacks claim {quote_names(sorted(missing))}")
    extra = payload.keys() - required - optional
    if extra:
        raise Unauthenticated(f"{what} has unexpected claim {quote_names(sorted(extra))}")


def _check_issuer(issuer: MemberId, key: VerifyingKey, kid: str, what: str) -> None:
    if issuer != key.member:
        raise Unauthenticated(
            f"{what} issuer {issuer} does not own signing key {kid[:KID_SHOWN]},"
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
    if not is_exchange_id(text):
        raise Unauthenticated(f"{what} claim 'jti' must be a lower-case UUID4 exchange id")
    return text
