"""Micro-benchmark: Spean token signing and verification against raw signatures.

Run from the repository root::

    .venv/bin/python -m bench.tokens [--seconds 0.5]

For each algorithm (ES256 on P-256, EdDSA on Ed25519) it times, in one run and
side by side:

- ``raw``:   `cryptography` sign / verify of a message of token size (the floor);
- ``pyjwt``: ``jwt.encode`` / ``jwt.decode`` with the same header and claims
  (what a straightforward implementation would cost);
- ``spean``: `TokenSigner.sign_request` / `verify_request`, with every check.

and prints microseconds per operation (best of seven interleaved rounds) and
the ratio to ``raw``. Tokens come
from real keys and self-signed certificates made at start-up.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import time
from collections.abc import Callable

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from spean.gateway.digests import request_digest
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import (
    RequestClaims,
    TokenSigner,
    VerifyingKey,
    new_exchange_id,
    verify_request,
)

NOW = 1_700_000_000
MEMBER = MemberId.parse("KH/GOV/MOH")


def _certificate(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KH/GOV/MOH")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _compare(operations: list[Callable[[], object]], seconds: float) -> list[float]:
    """Microseconds per call of each operation, measured side by side.

    Each gets a batch size worth about `seconds` / 10, then the batches run
    interleaved for seven rounds and each keeps its best round, so a noisy
    neighbour slows all of them alike rather than one.
    """
    batches = []
    for operation in operations:
        operation()
        batch = 1
        while True:
            start = time.perf_counter()
            for _ in range(batch):
                operation()
            if time.perf_counter() - start > seconds / 10:
                break
            batch *= 2
        batches.append(batch)
    best = [float("inf")] * len(operations)
    for _ in range(7):
        for index, (operation, batch) in enumerate(zip(operations, batches, strict=True)):
            start = time.perf_counter()
            for _ in range(batch):
                operation()
            best[index] = min(best[index], (time.perf_counter() - start) / batch)
    return [seconds_per_call * 1e6 for seconds_per_call in best]


def run(seconds: float) -> None:
    claims = RequestClaims(
        issuer=MEMBER,
        client=SubsystemId.parse("KH/GOV/MOH/nhis"),
        audience=SubsystemId.parse("KH/GOV/MPWT/vehicles"),
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        exchange_id=new_exchange_id(),
        issued_at=NOW,
        expires_at=NOW + 60,
        request_sha256=request_digest(b"\x0a\x07ABC-123"),
        user="KH1234567",
        purpose="case 2024/17",
    )
    print(f"{'operation':<22}{'raw µs':>10}{'pyjwt µs':>10}{'spean µs':>10}{'spean/raw':>11}")
    _measure("ES256", ec.generate_private_key(ec.SECP256R1()), claims, seconds)
    _measure("EdDSA", ed25519.Ed25519PrivateKey.generate(), claims, seconds)


def _measure(
    algorithm: str,
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    claims: RequestClaims,
    seconds: float,
) -> None:
    public_key = private_key.public_key()
    signer = TokenSigner(private_key, _certificate(private_key))
    resolve = {signer.kid: VerifyingKey(MEMBER, public_key, algorithm)}.get
    token = signer.sign_request(claims)
    message = token.rpartition(".")[0].encode("ascii")

    # Baseline 1: the bare signature over a message of the token's size.
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        ecdsa = ec.ECDSA(hashes.SHA256())
        der = private_key.sign(message, ecdsa)
        raw_sign = _call(private_key.sign, message, ecdsa)
        raw_verify = _call(public_key.verify, der, message, ecdsa)
    else:
        assert isinstance(public_key, ed25519.Ed25519PublicKey)
        raw_sign = _call(private_key.sign, message)
        raw_verify = _call(public_key.verify, private_key.sign(message), message)

    # Baseline 2: plain pyjwt with the same header and claims, time checks off
    # (verify_request takes `now`), so both do comparable work.
    headers = {"typ": "spean-req+jwt", "kid": signer.kid}
    payload = jwt.decode(token, options={"verify_signature": False})
    pyjwt_token = jwt.encode(payload, private_key, algorithm=algorithm, headers=headers)
    plain = jwt.PyJWT({"verify_exp": False, "verify_iat": False, "verify_aud": False})
    pyjwt_sign = _call(jwt.encode, payload, private_key, algorithm=algorithm, headers=headers)
    pyjwt_verify = _call(plain.decode, pyjwt_token, public_key, algorithms=[algorithm])

    spean_sign = _call(signer.sign_request, claims)
    spean_verify = _call(verify_request, token, resolve, now=NOW)

    for name, raw, pyjwt_op, spean in [
        ("sign request", raw_sign, pyjwt_sign, spean_sign),
        ("verify request", raw_verify, pyjwt_verify, spean_verify),
    ]:
        raw_us, pyjwt_us, spean_us = _compare([raw, pyjwt_op, spean], seconds)
        label = f"{algorithm} {name}"
        ratio = spean_us / raw_us
        print(f"{label:<22}{raw_us:>10.1f}{pyjwt_us:>10.1f}{spean_us:>10.1f}{ratio:>10.2f}x")


def _call(function: Callable[..., object], *args: object, **kwargs: object) -> Callable[[], object]:
    return functools.partial(function, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    run(parser.parse_args().seconds)


if __name__ == "__main__":
    main()
