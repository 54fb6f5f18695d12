"""Fuzz targets for what the provider reads from the wire before trusting anything.

Each target takes raw bytes and feeds them to one parser, the way a hostile
peer could: the request token verifier (with a fixed key resolver), the
consumer's and the provider's metadata parsers, and the unverified read of a
token's exchange id. A target returns normally or raises `SpeanError`;
anything else escaping is a finding. The functions are plain Python so that
the smoke test in tests/fuzz runs them over the seed corpus without atheris;
`fuzz/run.py` hands them to atheris.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable

from spean.gateway import pki
from spean.gateway.digests import request_digest
from spean.gateway.errors import SpeanError
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.metadata import REQUEST_TOKEN, parse_consumer_headers, single_token
from spean.gateway.tokens import (
    RequestClaims,
    TokenSigner,
    VerifyingKey,
    new_exchange_id,
    verify_request,
)
from spean.gateway.trust import claimed_exchange_id

_MEMBER = MemberId.parse("KH/GOV/MOH")
_KEY = pki.generate_key()
_CERT = pki.create_ca(_KEY, "KH", now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
SIGNER = TokenSigner(_KEY, _CERT)
_TRUSTED = {SIGNER.kid: VerifyingKey.from_certificate(_MEMBER, _CERT)}
NOW = int(time.time())


def genuine_token() -> str:
    """A token the fixed resolver accepts: the seed the fuzzer mutates from."""
    return SIGNER.sign_request(
        RequestClaims(
            issuer=_MEMBER,
            client=SubsystemId.parse("KH/GOV/MOH/nhis"),
            audience=SubsystemId.parse("KH/GOV/MPWT/vehicles"),
            method="/vehicles.v1.VehicleRegistry/GetVehicle",
            exchange_id=new_exchange_id(),
            issued_at=NOW,
            expires_at=NOW + 60,
            request_sha256=request_digest(b"\x0a\x072A-1234"),
            user="dr.sokha",
        )
    )


def _text(data: bytes) -> str:
    # The wire gives gRPC metadata as text; any bytes become some text.
    return data.decode("utf-8", "surrogateescape")


def _metadata(data: bytes) -> list[tuple[str, str | bytes]]:
    """Split the input into (key, value) pairs: lines of `key:value`; a value
    starting with `#` is passed as bytes, as a `-bin` header would be."""
    pairs: list[tuple[str, str | bytes]] = []
    for line in data.split(b"\n"):
        key, _, value = line.partition(b":")
        if value.startswith(b"#"):
            pairs.append((_text(key), value[1:]))
        else:
            pairs.append((_text(key), _text(value)))
    return pairs


def fuzz_verify_request(data: bytes) -> None:
    with contextlib.suppress(SpeanError):
        verify_request(_text(data), _TRUSTED.get, now=NOW)


def fuzz_consumer_headers(data: bytes) -> None:
    with contextlib.suppress(SpeanError):
        parse_consumer_headers(_metadata(data))


def fuzz_single_token(data: bytes) -> None:
    with contextlib.suppress(SpeanError):
        single_token(_metadata(data), REQUEST_TOKEN)


def fuzz_claimed_exchange_id(data: bytes) -> None:
    claimed_exchange_id([(REQUEST_TOKEN, _text(data))])
    claimed_exchange_id(_metadata(data))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "verify_request": fuzz_verify_request,
    "consumer_headers": fuzz_consumer_headers,
    "single_token": fuzz_single_token,
    "claimed_exchange_id": fuzz_claimed_exchange_id,
}
