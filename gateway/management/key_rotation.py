"""Rotating a running server's keys through the management API (docs/operator.md).

The steps of "Rotating keys", each one request, for the member signing key
(``signing``) or the server's TLS key (``tls``):

1. `start`: a new private key (0600, encrypted with the server's passphrase
   if it has one) and its CSR in ``keys/next-<kind>/``, beside the running
   key; the CSR goes to the authority (it is answered, and stays readable).
2. `install`: the certificate the authority issued. It must certify the next
   key (same public key), come from a CA of the current global
   configuration, and be valid now; otherwise it is refused, naming why.
3. `activate`: the next folder becomes ``keys/<kind>-<serial>/`` and
   server.yaml's ``keys`` point at it (written back like every API change,
   comments kept), then the server reloads (every worker): new tokens or
   new handshakes use the new key. A failed reload puts file and folder back.
4. Retiring the old certificate is the authority's (``spean authority revoke``
   or ``retire-certificate``, then publish), after the other members' servers
   hold a configuration listing the new one.

`abandon` removes a started rotation. Each step is recorded in the admin log
before it is carried out.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from spean.gateway import pki
from spean.gateway.config import ServerConfig
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound, SpeanError
from spean.gateway.files import keyfiles
from spean.gateway.files.config import edit_config, read_passphrase
from spean.gateway.files.member_keys import init_member, init_server
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.management import models
from spean.gateway.management.admin_log import APPLIED, FAILED, AdminAction, AdminLog
from spean.gateway.web.roles import Principal

KeyKind = Literal["signing", "tls"]


@dataclass(frozen=True, slots=True)
class _Files:
    key: str  # the file names init_member / init_server write
    csr: str
    certificate: str
    key_setting: str  # server.yaml's keys.* entries
    certificate_setting: str


FILES: dict[str, _Files] = {
    "signing": _Files(
        "signing.key", "signing.csr", "signing.crt", "signing_key", "signing_certificate"
    ),
    "tls": _Files("tls.key", "tls.csr", "tls.crt", "tls_key", "tls_certificate"),
}


class KeyRotation:
    """The key rotations of one running server."""

    def __init__(self, server: Any, admin_log: AdminLog) -> None:
        self._server = server  # a management.service.ServerView
        self._admin_log = admin_log
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def state(self, kind: KeyKind) -> models.KeyState:
        config: ServerConfig = self._server.config
        files = FILES[kind]
        current = keyfiles.load_certificate(
            config.resolve(getattr(config.keys, files.certificate_setting))
        )
        folder = self._next(config, kind)
        pending = None
        if (folder / files.key).exists():
            issued = folder / files.certificate
            pending = models.NextKey(
                folder=str(folder),
                csr_pem=(folder / files.csr).read_text(encoding="ascii"),
                certificate=_certificate(keyfiles.load_certificate(issued))
                if issued.exists()
                else None,
            )
        return models.KeyState(kind=kind, current=_certificate(current), next=pending)

    # ------------------------------------------------------------ the steps

    def start(self, principal: Principal, kind: KeyKind) -> models.KeyState:
        config: ServerConfig = self._server.config
        folder = self._next(config, kind)
        with self._lock:
            if (folder / FILES[kind].key).exists():
                raise FailedPrecondition(
                    f"a {kind} key rotation is already started in {folder}: install its"
                    " certificate, or abandon it (DELETE) to start again"
                )
            self._record(principal, kind, "start", f"new {kind} key and CSR in {folder}")
            passphrase = read_passphrase(config)
            if kind == "signing":
                init_member(folder, config.server.member, passphrase=passphrase)
            else:
                address = config.provider.listen if config.provider else "127.0.0.1:1"
                init_server(folder, config.server, address, passphrase=passphrase)
        return self.state(kind)

    def install(self, principal: Principal, kind: KeyKind, pem: str) -> models.KeyState:
        config: ServerConfig = self._server.config
        files = FILES[kind]
        folder = self._next(config, kind)
        with self._lock:
            if not (folder / files.key).exists():
                raise NotFound(f"no {kind} key rotation is started: POST .../next first")
            certificate = pki.parse_certificate_pem(pem.encode("ascii", "replace"), "certificate")
            key = keyfiles.load_private_key(folder / files.key, read_passphrase(config))
            _check_issued(certificate, key, self._server.globalconf.current(), kind)
            self._record(
                principal,
                kind,
                "install",
                f"certificate {pki.serial_hex(certificate.serial_number)} for the next {kind} key",
            )
            keyfiles.write_certificate(folder / files.certificate, certificate)
        return self.state(kind)

    def activate(self, principal: Principal, kind: KeyKind) -> models.KeyState:
        """Switch to the next key: folder renamed, server.yaml rewritten, every worker reloaded."""
        config: ServerConfig = self._server.config
        files = FILES[kind]
        folder = self._next(config, kind)
        with self._lock:
            issued = folder / files.certificate
            if not issued.exists():
                raise FailedPrecondition(
                    f"the next {kind} key has no certificate yet: install the authority's first"
                )
            certificate = keyfiles.load_certificate(issued)
            _check_issued(
                certificate,
                keyfiles.load_private_key(folder / files.key, read_passphrase(config)),
                self._server.globalconf.current(),
                kind,
            )
            serial = pki.serial_hex(certificate.serial_number)
            target = folder.parent / f"{kind}-{serial}"
            action = self._record(principal, kind, "activate", f"switch to {kind} key {serial}")
            folder.rename(target)
            relative = target.relative_to(config.path.parent)

            def edit(document: Any, _: ServerConfig) -> None:
                document["keys"][files.key_setting] = str(relative / files.key)
                document["keys"][files.certificate_setting] = str(relative / files.certificate)

            def reload(_: ServerConfig) -> None:
                self._server.reload()

            try:
                edit_config(config.path, edit, after=reload)
            except SpeanError as exc:
                target.rename(folder)
                failed = AdminAction(
                    f"keys.{kind}.activate", "", "", f"not switched: {exc.message}"
                )
                self._admin_log.record(principal, failed, FAILED, action)
                raise
        self._server.reload_peers()
        return self.state(kind)

    def abandon(self, principal: Principal, kind: KeyKind) -> models.KeyState:
        config: ServerConfig = self._server.config
        folder = self._next(config, kind)
        with self._lock:
            if not folder.exists():
                raise NotFound(f"no {kind} key rotation is started")
            self._record(principal, kind, "abandon", f"remove {folder}")
            shutil.rmtree(folder)
        return self.state(kind)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _next(config: ServerConfig, kind: KeyKind) -> Path:
        return config.path.parent / "keys" / f"next-{kind}"

    def _record(self, principal: Principal, kind: KeyKind, step: str, what: str) -> str:
        return self._admin_log.record(
            principal, AdminAction(f"keys.{kind}.{step}", "", "", what), APPLIED
        )


def _certificate(certificate: x509.Certificate) -> models.KeyCertificate:
    not_after = certificate.not_valid_after_utc
    return models.KeyCertificate(
        serial=pki.serial_hex(certificate.serial_number),
        sha256=pki.thumbprint(certificate),
        not_after=not_after.isoformat(),
        days_left=(not_after - dt.datetime.now(dt.UTC)).days,
    )


def _check_issued(
    certificate: x509.Certificate, key: Any, conf: GlobalConfiguration, kind: KeyKind
) -> None:
    """The certificate certifies `key`, comes from a federation CA and is valid now."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise InvalidArgument(
            f"the certificate is not for the next {kind} key: its public key is another"
        )
    if not pki.issued_by(certificate, conf.ca_certificates):
        raise InvalidArgument(
            "the certificate is not issued by a CA of the federation's global configuration"
        )
    now = dt.datetime.now(dt.UTC)
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise InvalidArgument(
            f"the certificate is not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d}"
            f" to {certificate.not_valid_after_utc:%Y-%m-%d})"
        )
