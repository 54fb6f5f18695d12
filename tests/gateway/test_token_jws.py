"""JWS segments and signatures: strict JSON, canonical base64url, the RFC 7518 signature form.

Refusals are checked on tokens that are otherwise perfectly signed by the
trusted key (`forge`), so each test shows that its one defect alone is refused;
the signatures are checked against pyjwt both ways.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from spean.gateway import pki
from spean.gateway.digests import b64url
from spean.gateway.errors import Unauthenticated
from spean.gateway.token_claims import RequestClaims, ResponseClaims
from spean.gateway.token_jws import (
    SIGNATURE_SIZE,
    decode_compact_object,
    decode_compact_signature,
    decode_object,
    decode_segment,
    encode_segment,
    is_compact,
    sign_raw,
    verify_raw,
)
from spean.gateway.token_verification import verify_request, verify_response
from tests.support.tokens import (
    EXCHANGE,
    MOF,
    MOH,
    NHIS,
    NOW,
    PARTIES,
    RESOLVE,
    forge_raw,
    header_bytes,
    raw_signature,
    refused,
    request_claims,
    request_payload,
    response_claims,
    segments,
)


def test_a_segment_is_compact_ascii_json_in_base64url() -> None:
    segment = encode_segment({"b": 1, "a": "ស្ពាន"})
    assert segment.isascii()
    assert (
        base64.urlsafe_b64decode(segment + "==")
        == b'{"b":1,"a":"\\u179f\\u17d2\\u1796\\u17b6\\u1793"}'
    )
    assert decode_object(segment, "token", "payload") == {"b": 1, "a": "ស្ពាន"}
    assert decode_segment(b64url(b"\x00\xff"), "token", "payload") == b"\x00\xff"


def test_a_segment_that_is_not_canonical_base64url_is_refused_naming_it() -> None:
    with pytest.raises(Unauthenticated, match="request token signature: base64url value"):
        decode_segment("AB=", "request token", "signature")
    with pytest.raises(Unauthenticated, match="response token header is not a JSON object"):
        decode_object(b64url(b"[]"), "response token", "header")


def _outcome(decode: Callable[..., object], *args: str) -> object:
    """What `decode(*args)` returns, or the message it refuses with."""
    try:
        return decode(*args)
    except Unauthenticated as error:
        return ("refused", error.message)


def _respellings(segment: str) -> list[str]:
    """`segment`, and the same with its last character's every other spelling
    (non-canonical where the low bits are padding), with a character more and less."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return [segment[:-1] + c for c in alphabet] + [segment + "A", segment[:-1], segment[:-2]]


@pytest.mark.parametrize("size", [SIGNATURE_SIZE, SIGNATURE_SIZE - 1, SIGNATURE_SIZE + 1])
def test_the_fast_signature_decoder_agrees_with_decode_segment_on_every_spelling(
    size: int,
) -> None:
    for segment in _respellings(b64url(bytes(range(100, 100 + size)))):
        fast = _outcome(decode_compact_signature, segment, "request token")
        strict = _outcome(decode_segment, segment, "request token", "signature")
        assert fast == strict, segment


@pytest.mark.parametrize(
    "payload",
    [
        b'{"iss":"KH/GOV/MOH","iat":1}',
        b'{"a":1,"a":2}',  # repeated name: the strict path's message
        b' {"a":1} ',  # space around the object: accepted by both
        b'{"a":1}x',
        b"{}",
        b'{"a":NaN}',
        b'{"a":"\xe9"}',  # not UTF-8
        b"[1]",
        b'{"a":"\\u00e9"}',
    ],
)
def test_the_fast_object_decoder_agrees_with_decode_object(payload: bytes) -> None:
    for segment in _respellings(b64url(payload)):
        fast = _outcome(decode_compact_object, segment, "response token", "payload")
        strict = _outcome(decode_object, segment, "response token", "payload")
        assert fast == strict, segment


def test_compact_framing_is_three_non_empty_base64url_segments() -> None:
    assert is_compact("a.b.c")
    for text in ("a.b", "a.b.c.d", "a..c", "a.b.c\n", "a.b.c=", "é.b.c"):
        assert not is_compact(text)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_raw_signatures_are_64_bytes_and_verify_only_with_their_key(algorithm: str) -> None:
    party = PARTIES[algorithm]
    signature = sign_raw(algorithm, party.key, b"signing input")
    assert len(signature) == SIGNATURE_SIZE
    if algorithm == "EdDSA":  # deterministic: the same bytes as an independent signature
        assert signature == raw_signature(party.key, b"signing input")
    public = party.key.public_key()
    assert verify_raw(algorithm, public, b"signing input", signature)
    assert not verify_raw(algorithm, public, b"signing inpuT", signature)
    stranger = pki.generate_key("ec-p256" if algorithm == "ES256" else "ed25519")
    assert not verify_raw(algorithm, stranger.public_key(), b"signing input", signature)
    other = "EdDSA" if algorithm == "ES256" else "ES256"
    assert not verify_raw(other, public, b"signing input", signature)  # a key takes one only


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_tampered_signature_is_refused(algorithm: str) -> None:
    party = PARTIES[algorithm]
    token = party.signer.sign_request(request_claims(party))
    header_part, payload_part, signature_part = segments(token)
    signature = bytearray(base64.urlsafe_b64decode(signature_part + "=="))
    for index in (0, 31, 32, 63):
        flipped = bytearray(signature)
        flipped[index] ^= 0x01
        refused(
            f"{header_part}.{payload_part}.{b64url(bytes(flipped))}", "signature does not verify"
        )


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_no_character_can_change_without_the_token_failing(algorithm: str) -> None:
    """Every position, including the low bits of each segment's last character.

    A lenient base64 decoder ignores the 2 or 4 unused low bits of a segment's
    last character, so up to 15 other spellings decode to the same bytes; for
    the signature segment those would verify. Decoding is canonical, so there
    is no such no-op position: every single-character change must fail.
    """
    party = PARTIES[algorithm]
    token = party.signer.sign_request(request_claims(party))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position, char in enumerate(token):
        if char == ".":
            continue
        replacement = alphabet[(alphabet.index(char) + 1) % 64]
        with pytest.raises(Unauthenticated):
            verify_request(token[:position] + replacement + token[position + 1 :], RESOLVE, now=NOW)
    signature_part = segments(token)[2]
    lenient_same = 0
    for replacement in alphabet.replace(token[-1], ""):
        variant = signature_part[:-1] + replacement
        if base64.urlsafe_b64decode(variant + "==") == base64.urlsafe_b64decode(
            signature_part + "=="
        ):
            lenient_same += 1
            refused(token[:-1] + replacement, "signature: base64url value is not canonical")
        else:
            refused(token[:-1] + replacement, "signature")
    assert lenient_same == 15  # 86 characters carry 516 bits for 512: 4 spare bits


def test_duplicate_names_are_refused() -> None:
    header = b'{"alg":"ES256","typ":"spean-req+jwt","kid":"%s","alg":"none"}' % MOH.kid.encode()
    payload = json.dumps(request_payload()).encode()
    refused(forge_raw(header, payload, MOH.key), "header repeats the name 'alg'")
    doubled = payload[:-1] + b',"aud":"KH/GOV/MPWT/licences"}'
    refused(forge_raw(header_bytes(), doubled, MOH.key), "payload repeats the name 'aud'")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"[]", "payload is not a JSON object"),
        (b'"text"', "payload is not a JSON object"),
        (b"", "payload: base64url|not a compact JWS"),
        (b"{", "not valid UTF-8 JSON"),
        (b'{"iss":"\xe9"}', "not valid UTF-8 JSON"),
        (b"\xef\xbb\xbf{}", "not valid UTF-8 JSON"),  # a byte order mark
        ('{"a":1}'.encode("utf-16"), "not valid UTF-8 JSON"),
        (b'{"iat":NaN}', "not valid UTF-8 JSON"),
        (b'{"iat":Infinity}', "not valid UTF-8 JSON"),
        (b"[" * 2000 + b"]" * 2000, "not valid UTF-8 JSON"),
    ],
)
def test_payload_must_be_a_plain_json_object(payload: bytes, match: str) -> None:
    refused(forge_raw(header_bytes(), payload, MOH.key), match)


def test_header_must_be_a_json_object() -> None:
    refused(
        forge_raw(b"[1]", json.dumps(request_payload()).encode(), MOH.key),
        "header is not a JSON object",
    )
    refused(
        forge_raw(b"{alg}", json.dumps(request_payload()).encode(), MOH.key),
        "header is not valid UTF-8 JSON",
    )


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_signatures_interoperate_with_pyjwt_both_ways(algorithm: str) -> None:
    import jwt

    party = PARTIES[algorithm]
    claims = request_claims(party) if party is MOH else response_claims(party)
    token = (
        party.signer.sign_request(claims)
        if isinstance(claims, RequestClaims)
        else party.signer.sign_response(claims)
    )
    # What Spean signs, pyjwt verifies with the certificate's public key ...
    decoded = jwt.decode(
        token,
        party.key.public_key(),
        algorithms=[algorithm],
        options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
    )
    assert decoded["jti"] == EXCHANGE
    # ... and what pyjwt signs over the same header and claims, Spean verifies.
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    resigned = jwt.encode(decoded, party.key, algorithm=algorithm, headers=header)

    def verify(text: str) -> RequestClaims | ResponseClaims:
        if isinstance(claims, RequestClaims):
            return verify_request(text, RESOLVE, now=NOW)
        return verify_response(
            text,
            RESOLVE,
            now=NOW,
            expected_exchange_id=EXCHANGE,
            expected_provider=claims.provider,
            expected_client=NHIS,
        )

    assert verify(resigned) == claims
    # A changed signature is refused.
    head, _, _ = resigned.rpartition(".")
    forged = raw_signature(MOF.key, head.encode("ascii"))  # right size, wrong key
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        verify(head + "." + b64url(forged))
