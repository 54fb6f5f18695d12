"""A hand-driven consumer that talks to a provider directly, for refusal tests.

It holds a member's real keys (read from the federation folder) but lets the
test choose every part of the call: TLS identity, token claims, signing key,
body. Only the tests use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from spean.gateway.digests import b64url, request_digest
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server
from spean.gateway.metadata import EXCHANGE_ID, REQUEST_TOKEN, RESPONSE_TOKEN
from spean.gateway.tokens import RequestClaims, TokenSigner, algorithm_for_key, new_exchange_id


def signer_of(folder: Path) -> TokenSigner:
    return TokenSigner(
        keyfiles.load_private_key(folder / "keys" / "signing.key"),
        keyfiles.load_certificate(folder / "keys" / "signing.crt"),
    )


def claims_for(
    client: str, service: str, method: str, body: bytes, *, lifetime: int = 60
) -> RequestClaims:
    now = int(time.time())
    client_id = SubsystemId.parse(client)
    return RequestClaims(
        issuer=client_id.member,
        client=client_id,
        audience=SubsystemId.parse(service),
        method=method,
        exchange_id=new_exchange_id(),
        issued_at=now,
        expires_at=now + lifetime,
        request_sha256=request_digest(body),
    )


def reissued(claims: RequestClaims, **changes: object) -> RequestClaims:
    return replace(claims, **changes)  # type: ignore[arg-type]


def provider_channel(
    ca_pem: bytes,
    address: str,
    server_id: str,
    *,
    key_pem: bytes | None,
    cert_pem: bytes | None,
) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )
    return grpc.secure_channel(
        address,
        credentials,
        options=[("grpc.ssl_target_name_override", parse_server(server_id).dns_name())],
    )


def tls_identity(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "keys" / "tls.key").read_bytes(), (folder / "keys" / "tls.crt").read_bytes()


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """What the provider answered the hand-driven consumer."""

    code: grpc.StatusCode
    details: str
    exchange_id: str  # the `spean-exchange-id` trailer, "" when there was none
    response_token: str  # the `spean-response-token` trailer, "" when there was none


def send(
    channel: grpc.Channel, method: str, body: bytes, token: str | None, timeout: float = 5.0
) -> ProviderAnswer:
    """Call the provider with `token` (None: no token header at all) and read its answer."""
    stub: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(method)
    metadata = ((REQUEST_TOKEN, token),) if token is not None else ()
    responses = stub(body, metadata=metadata, timeout=timeout)
    try:
        for _ in responses:
            pass
    except grpc.RpcError:
        pass
    trailing = responses.trailing_metadata() or ()
    exchange_id = next((str(v) for k, v in trailing if k == EXCHANGE_ID), "")
    response_token = next((str(v) for k, v in trailing if k == RESPONSE_TOKEN), "")
    return ProviderAnswer(responses.code(), responses.details() or "", exchange_id, response_token)


def member_of(text: str) -> MemberId:
    return MemberId.parse(text)


# --- raw tokens: any header, any payload, any signature --------------------------------


def segment(value: object) -> str:
    """base64url (no padding) of compact JSON, or of the bytes themselves."""
    data = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(data)


def raw_payload(claims: RequestClaims) -> dict[str, object]:
    """The JSON claim set a genuine signer would write for `claims`, to be edited."""
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
    return payload


def sign_raw(header: object, payload: object, key: PrivateKeyTypes | None) -> str:
    """A compact JWS over exactly these segments; `key` None leaves a junk signature.

    EC keys sign in the JWS `r || s` form, Ed25519 keys as themselves, so a
    token is accepted if and only if its header and claims are. `payload` may
    be bytes, to send JSON no encoder would write (a repeated name, say).
    """
    return sign_segments(segment(header), segment(payload), key)


def sign_segments(header: str, payload: str, key: PrivateKeyTypes | None) -> str:
    """A compact JWS over two already encoded segments."""
    signing_input = f"{header}.{payload}"
    if key is None:
        return f"{signing_input}.{b64url(b'x' * 64)}"
    algorithm = jwt.get_algorithm_by_name(algorithm_for_key(key))
    return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode('ascii'), key))}"


def hs256(header: object, payload: object, secret: bytes) -> str:
    """An HMAC-SHA256 JWS, as an algorithm-confusion attacker would make it."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"
