"""Who is on the other end: TLS peers and token signers, from the global configuration (pure).

The global configuration is the only source of trust. A TLS peer is a
security server only if the thumbprint of its certificate is listed there and
its serial is not revoked (`identify_server`); a token's signer is a member
only if the token's ``kid`` names a listed, unrevoked signing certificate of
that member, within its validity period when a security server checks it
(`key_resolver`, the one resolver every token verification uses; the offline
audit verifier leaves the period out, for the reason given there). A refusal
says which it is: not listed, listed but revoked, or outside its period.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509

from spean.gateway import metadata, pki
from spean.gateway.digests import b64url_decode
from spean.gateway.errors import SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration, ServerInfo
from spean.gateway.identifiers import MemberId
from spean.gateway.pki import pem_thumbprint
from spean.gateway.tokens import MAX_TOKEN_SIZE, KeyResolver, VerifyingKey, is_exchange_id


def key_resolver(
    conf: GlobalConfiguration, now: datetime | None = None, *, check_validity: bool = True
) -> KeyResolver:
    """The token verifier's key lookup, from the global configuration: the one resolver.

    A kid resolves to the key of a member signing certificate the
    configuration lists (which its parsing checked was issued by the
    federation CA) and does not revoke. A kid that names a listed certificate
    the configuration revokes raises `Unauthenticated` saying so, with the
    certificate's member and serial; a kid no listed certificate has resolves
    to None, which the verifier refuses as an unknown key. With
    `check_validity` (the security servers), the certificate must also be
    within its validity period at `now` (by default, when the resolver is
    made), or `Unauthenticated` says why not. The offline audit verifier
    passes `check_validity=False`: it judges logs long after their
    certificates may have expired, and every token in them had its
    certificate's period checked when it was accepted. (Revocation counts
    for it all the same: the configuration it judges by revokes the key.)

    The keys come from a table built once per configuration (`_trusted_keys`),
    so a resolver costs nothing to make and a token's key is one lookup; the
    validity period is still checked on every call.
    """
    moment = now or datetime.now(UTC)
    trusted_keys = _trusted_keys(conf)

    def resolve(kid: str) -> VerifyingKey | None:
        found = trusted_keys.get(kid)
        if found is None:
            return _untrusted(conf, kid)
        key, certificate = found
        if check_validity:
            conf.check_certificate_valid(certificate, moment)
        return key

    return resolve


def _untrusted(conf: GlobalConfiguration, kid: str) -> VerifyingKey | None:
    """A kid `_trusted_keys` does not hold: revoked (raises), unknown (None), or
    spelled otherwise than its thumbprint (upper case), which `conf` resolves."""
    trusted = conf.signing_key(kid)
    if trusted is not None:
        return VerifyingKey(
            member=trusted.member, public_key=trusted.public_key, algorithm=trusted.algorithm
        )
    listed = _signing_certificates(conf).get(kid.lower())
    if listed is not None and conf.is_revoked(listed[1].serial_number):
        member, certificate = listed
        raise Unauthenticated(
            f"signing certificate of {member} (serial"
            f" {pki.serial_hex(certificate.serial_number)}) is revoked"
            f" (global configuration version {conf.version})"
        )
    return None


@functools.lru_cache(maxsize=8)
def _trusted_keys(
    conf: GlobalConfiguration,
) -> dict[str, tuple[VerifyingKey, x509.Certificate]]:
    """The verifying key of every signing certificate `conf` trusts, by thumbprint.

    Built once per configuration (immutable, hashed by identity), so that a
    token's key is one dictionary lookup instead of a revocation check and a
    new `VerifyingKey` per token. Revoked certificates are left out: their
    kids take `_untrusted`, which says so. A new configuration (one that
    revokes a key, say) is another object and gets its own table, never this
    one's.
    """
    table: dict[str, tuple[VerifyingKey, x509.Certificate]] = {}
    for kid in _signing_certificates(conf):
        trusted = conf.signing_key(kid)
        if trusted is not None:
            key = VerifyingKey(
                member=trusted.member, public_key=trusted.public_key, algorithm=trusted.algorithm
            )
            table[kid] = (key, trusted.certificate)
    return table


@functools.lru_cache(maxsize=8)
def _signing_certificates(
    conf: GlobalConfiguration,
) -> dict[str, tuple[MemberId, x509.Certificate]]:
    """Every signing certificate `conf` lists, revoked ones included, by thumbprint.

    Only a kid that does not resolve is looked up here; a configuration is
    immutable (and hashed by identity), so its table is built once.
    """
    return {
        pki.thumbprint(certificate): (member.id, certificate)
        for member in conf.members
        for certificate in member.signing_certificates
    }


def identify_server(conf: GlobalConfiguration, pem: bytes | None) -> tuple[ServerInfo, str]:
    """Map a TLS peer certificate to a listed, unrevoked security server."""
    presented = presented_certificate(pem)
    thumbprint = pem_thumbprint(presented)
    return listed_server(conf, presented, thumbprint), thumbprint


def presented_certificate(pem: bytes | None) -> bytes:
    """The TLS peer's certificate, or `Unauthenticated` when it presented none.

    A provider's audit record of a refused peer names the certificate it was
    refused for (docs/protocol.md, section 11): the provider takes its
    thumbprint before any check, then calls `identify_server`.
    """
    if pem is None:
        raise Unauthenticated("the connection carries no client certificate")
    return pem


def listed_server(conf: GlobalConfiguration, pem: bytes, thumbprint: str) -> ServerInfo:
    """The listed, unrevoked security server whose TLS certificate is `pem`.

    `thumbprint` is `pem`'s (`pki.pem_thumbprint`), taken by the caller.
    """
    server = conf.server_by_fingerprint(thumbprint)
    if server is None:
        raise Unauthenticated(
            f"TLS certificate {thumbprint[:16]}... is not that of a security server listed in"
            f" global configuration version {conf.version}"
        )
    # The thumbprint is the SHA-256 of the DER certificate, so the peer's
    # certificate IS the listed one with that thumbprint: read its serial
    # there instead of parsing the PEM again on every exchange.
    listed = _listed_certificate(server, thumbprint)
    serial = (listed or x509.load_pem_x509_certificate(pem)).serial_number
    if conf.is_revoked(serial):
        raise Unauthenticated(
            f"TLS certificate of security server {server.id} (serial {serial:x}) is revoked"
        )
    return server


def _listed_certificate(server: ServerInfo, thumbprint: str) -> x509.Certificate | None:
    """The certificate of `server` whose SHA-256 is `thumbprint`, if listed with it."""
    for fingerprint, certificate in zip(
        server.tls_fingerprints, server.tls_certificates, strict=False
    ):
        if fingerprint == thumbprint:
            return certificate
    return None


def claimed_exchange_id(invocation: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The exchange id a request token claims, read WITHOUT verifying it.

    Used only to label the audit record of a refusal; None when there is no
    single, well-formed claim.
    """
    tokens = [v for k, v in invocation if k == metadata.REQUEST_TOKEN]
    if len(tokens) != 1 or not isinstance(tokens[0], str) or len(tokens[0]) > MAX_TOKEN_SIZE:
        return None
    parts = tokens[0].split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except (SpeanError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    return jti if is_exchange_id(jti) else None
