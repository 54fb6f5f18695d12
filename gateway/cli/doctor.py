"""`spean doctor`: check a security server's setup and say what to fix.

Each check reads what the server itself would read (its YAML file, its keys
and certificates, the global configuration source and cache, its audit
store), prepares its adapters as the server does at start
(`doctor_adapters`) and looks at the peers it would dial, then reports findings: ``ok``,
``warn`` (works now, will not for long, or degrades) or ``fail`` (the server
cannot work, or part of it cannot). Every warning and failure carries a fix an
operator can act on.

Invariants: the doctor never changes anything a running server depends on.
It fetches the global configuration into a private temporary folder, reads
SQLite audit stores read-only, opens adapters' databases read-only and
closes them again, and opens only TLS handshakes to peers (no
call is made, so nothing is logged on their side). It runs beside a live
server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import sqlite3
import ssl
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography import x509

from spean.gateway import pki
from spean.gateway.audit.backends.urls import is_postgres, redact_url, sqlite_path
from spean.gateway.audit.chain import GENESIS, ChainError, ChainHead, verify_chain
from spean.gateway.authority import JOIN_REQUEST
from spean.gateway.cli.doctor_adapters import check_adapters
from spean.gateway.cli.findings import Finding, failed, render
from spean.gateway.config import ServerConfig, split_address
from spean.gateway.errors import ConfigError, SpeanError, Unavailable
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config, read_passphrase
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.globalconf_client import GlobalConfigurationClient

__all__ = ["Finding", "diagnose", "failed", "probe_peer", "register", "render"]

CERTIFICATE_WARN_DAYS = 30  # renew before this many days are left
PEER_TIMEOUT = 3.0


def diagnose(
    config_path: Path,
    *,
    now: dt.datetime | None = None,
    peers: bool = True,
    peer_timeout: float = PEER_TIMEOUT,
) -> list[Finding]:
    """Run every check against the server configured in `config_path`."""
    moment = now or dt.datetime.now(dt.UTC)
    try:
        config = load_config(config_path)
    except SpeanError as exc:
        return [
            Finding(
                "config",
                "fail",
                exc.message,
                "correct the file (format: docs/operator.md), then run spean doctor again",
            )
        ]
    findings = [Finding("config", "ok", f"{config.path}: valid, server {config.server_id}")]
    findings += _check_keys(config, moment)
    conf, conf_findings = _check_globalconf(config, moment)
    findings += conf_findings
    if conf is not None:
        findings += _check_registration(config, conf, moment)
    findings += _check_audit(config)
    findings += check_adapters(config, conf)
    if peers and conf is not None:
        findings += _check_peers(config, conf, peer_timeout)
    return findings


# ------------------------------------------------------------------ keys


def _keys_fix(config: ServerConfig) -> str:
    """The fix for keys that do not load; a join not admitted yet gets its next step."""
    request = config.base_dir / JOIN_REQUEST
    missing = [
        path
        for path in (config.keys.tls_certificate, config.keys.signing_certificate)
        if not config.resolve(path).exists()
    ]
    if request.is_file() and missing:
        return (
            f"the join request is not admitted yet: the authority runs spean authority admit"
            f" --request {request} (spean join printed it), which writes the certificates"
            " into keys/"
        )
    return (
        "check the paths under keys: (relative to the YAML file) and the passphrase"
        " (keys.passphrase_file or SPEAN_KEY_PASSPHRASE)"
    )


def _check_keys(config: ServerConfig, now: dt.datetime) -> Iterator[Finding]:
    keys = config.keys
    try:
        passphrase = read_passphrase(config)
    except OSError as exc:
        yield Finding(
            "keys",
            "fail",
            f"keys.passphrase_file: cannot read it ({exc.strerror})",
            "create the file or remove keys.passphrase_file",
        )
        return
    pairs = (
        ("TLS", keys.tls_key, keys.tls_certificate, "spean server init"),
        ("signing", keys.signing_key, keys.signing_certificate, "spean member init"),
    )
    for what, key_path, cert_path, renew in pairs:
        try:
            key = keyfiles.load_private_key(config.resolve(key_path), passphrase)
            cert = keyfiles.load_certificate(config.resolve(cert_path))
        except SpeanError as exc:
            yield Finding(
                "keys", "fail", f"{what} key or certificate: {exc.message}", _keys_fix(config)
            )
            continue
        if pki.public_key_bytes(key.public_key()) != pki.public_key_bytes(cert.public_key()):
            yield Finding(
                "keys",
                "fail",
                f"{what} certificate {cert_path} is not for the key in {key_path}",
                "install the certificate the authority issued for this key's CSR",
            )
            continue
        mode = config.resolve(key_path).stat().st_mode & 0o077
        if mode:
            yield Finding(
                "keys",
                "warn",
                f"{what} key {key_path} can be read by other users (mode {oct(mode)})",
                f"chmod 600 {config.resolve(key_path)}",
            )
        yield _expiry(what, cert, now, renew)
    tls = _load_cert(config, keys.tls_certificate)
    expected = f"{pki.SERVER_URI_PREFIX}{config.server_id}"
    if tls is not None and expected not in pki.san_uris(tls):
        yield Finding(
            "keys",
            "fail",
            f"the TLS certificate names {', '.join(pki.san_uris(tls)) or 'no server'},"
            f" not {config.server_id}",
            "use the certificate issued for this server_id, or correct server_id",
        )


def _load_cert(config: ServerConfig, path: Path) -> x509.Certificate | None:
    try:
        return keyfiles.load_certificate(config.resolve(path))
    except SpeanError:
        return None


def _expiry(what: str, cert: x509.Certificate, now: dt.datetime, renew: str) -> Finding:
    left = cert.not_valid_after_utc - now
    until = cert.not_valid_after_utc.date().isoformat()
    if left <= dt.timedelta(0):
        return Finding(
            "certificates",
            "fail",
            f"the {what} certificate expired on {until}",
            f"create a new key and CSR ({renew}), have the authority certify it, reload (SIGHUP)",
        )
    if now < cert.not_valid_before_utc:
        return Finding(
            "certificates",
            "fail",
            f"the {what} certificate is not valid before {cert.not_valid_before_utc.isoformat()}",
            "check this machine's clock (NTP)",
        )
    if left < dt.timedelta(days=CERTIFICATE_WARN_DAYS):
        return Finding(
            "certificates",
            "warn",
            f"the {what} certificate expires in {left.days} day(s), on {until}",
            f"rotate it now (docs/operator.md, 'Rotating keys'): {renew}, admit, reload",
        )
    return Finding(
        "certificates", "ok", f"the {what} certificate is valid for {left.days} more days"
    )


# ------------------------------------------------------------------ global configuration


def _check_globalconf(
    config: ServerConfig, now: dt.datetime
) -> tuple[GlobalConfiguration | None, list[Finding]]:
    gc = config.global_configuration
    findings: list[Finding] = []
    try:
        anchor = keyfiles.load_certificate(config.resolve(gc.anchor))
    except SpeanError as exc:
        return None, [
            Finding(
                "globalconf",
                "fail",
                f"global_configuration.anchor: {exc.message}",
                "install the authority's configuration-signing certificate (authority.crt)",
            )
        ]
    source = gc.source if "://" in gc.source else str(config.resolve(Path(gc.source)))
    conf: GlobalConfiguration | None = None
    with tempfile.TemporaryDirectory(prefix="spean-doctor-") as scratch:
        client = GlobalConfigurationClient(
            source=source,
            anchor=anchor,
            cache_path=Path(scratch) / "globalconf.signed",
            refresh_seconds=gc.refresh_seconds,
        )
        try:
            client.refresh()
            conf = client.current()
            findings.append(
                Finding("globalconf", "ok", f"source {source}: version {conf.version}, verified")
            )
        except SpeanError as exc:
            findings.append(
                Finding(
                    "globalconf",
                    "fail",
                    f"source {source}: {exc.message}",
                    "check that the authority serves it (spean authority serve) and that this"
                    " machine can reach it; the anchor must be the authority's current one",
                )
            )
    cache = config.resolve(gc.cache)
    try:
        cached = verify_global_configuration(cache.read_bytes(), anchor, now)
    except FileNotFoundError:
        findings.append(
            Finding(
                "globalconf",
                "warn",
                f"no cached copy at {cache}",
                "start the server once while the authority is reachable: it keeps the last"
                " good copy there, to start when the authority is down",
            )
        )
    except (SpeanError, OSError) as exc:
        detail = exc.message if isinstance(exc, SpeanError) else str(exc.strerror)
        findings.append(
            Finding(
                "globalconf",
                "warn",
                f"cached copy {cache} is not usable: {detail}",
                "let the server refresh it from the authority",
            )
        )
    else:
        if conf is None:
            conf = cached
            findings.append(
                Finding("globalconf", "warn", f"using the cached copy, version {cached.version}")
            )
    if conf is not None:
        findings.append(_freshness(conf, now))
    return conf, findings


def _freshness(conf: GlobalConfiguration, now: dt.datetime) -> Finding:
    left = conf.expires_at - now
    validity = conf.expires_at - conf.issued_at
    expires = conf.expires_at.isoformat(timespec="seconds")
    if left <= dt.timedelta(0):
        return Finding(
            "globalconf",
            "fail",
            f"version {conf.version} expired at {expires}: every exchange is refused",
            "have the authority publish (spean authority publish) and make it reachable",
        )
    if left < validity / 4:
        return Finding(
            "globalconf",
            "warn",
            f"version {conf.version} expires at {expires}, in {_hours(left)}",
            "the authority must publish again before then (schedule spean authority publish)",
        )
    return Finding("globalconf", "ok", f"version {conf.version} is fresh until {expires}")


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _check_registration(
    config: ServerConfig, conf: GlobalConfiguration, now: dt.datetime
) -> Iterator[Finding]:
    server = conf.server(config.server)
    if server is None:
        yield Finding(
            "globalconf",
            "fail",
            f"security server {config.server_id} is not in global configuration"
            f" version {conf.version}",
            "send tls.csr to the authority: spean authority admit server ..., then publish",
        )
        return
    tls = _load_cert(config, config.keys.tls_certificate)
    if tls is not None and pki.thumbprint(tls) not in server.tls_fingerprints:
        yield Finding(
            "globalconf",
            "fail",
            f"the global configuration lists another TLS certificate for {config.server_id}"
            f" ({server.tls_certificate_sha256[:16]}...) than keys.tls_certificate"
            f" ({pki.thumbprint(tls)[:16]}...): providers refuse this server's calls",
            "install the certificate the authority issued last, or have it publish the new one",
        )
    signing = _load_cert(config, config.keys.signing_certificate)
    if signing is not None:
        trusted = conf.signing_key(pki.thumbprint(signing), now)
        if trusted is None or trusted.member != config.server.member:
            yield Finding(
                "globalconf",
                "fail",
                f"the signing certificate ({pki.thumbprint(signing)[:16]}...) is not a valid,"
                f" unrevoked certificate of {config.server.member} in version {conf.version}",
                "send signing.csr to the authority (spean authority admit member) and publish",
            )
    hosted = []
    if config.consumer is not None:
        hosted += [c.subsystem for c in config.consumer.clients]
    if config.provider is not None:
        hosted += [s.subsystem for s in config.provider.services]
    for name in dict.fromkeys(hosted):
        subsystem = conf.subsystem(SubsystemId.parse(name))
        if subsystem is None:
            yield Finding(
                "globalconf",
                "fail",
                f"subsystem {name} is not registered in the federation",
                f"ask the authority: spean authority add-subsystem --id {name} --server"
                f" {config.server_id}",
            )
        elif config.server not in subsystem.servers:
            yield Finding(
                "globalconf",
                "fail",
                f"subsystem {name} is not registered on {config.server_id}",
                f"ask the authority: spean authority register-subsystem --subsystem {name} --server"
                f" {config.server_id}",
            )
    if config.provider is not None:
        _, listened = split_address(config.provider.listen)
        if listened not in (0, server.port):
            yield Finding(
                "globalconf",
                "warn",
                f"provider.listen port {listened} differs from the published address"
                f" {server.address}",
                "fine behind a load balancer or NAT that maps the port; otherwise re-admit the"
                " server with its real address",
            )


# ------------------------------------------------------------------ audit


def _check_audit(config: ServerConfig) -> Iterator[Finding]:
    store = config.audit.store
    if is_postgres(store):
        yield from _check_audit_url(config, store)
        return
    try:
        path = config.resolve(Path(sqlite_path(store)))
    except ConfigError as exc:
        yield Finding("audit", "fail", exc.message, "fix audit.store in the configuration")
        return
    if not path.exists():
        # The server creates the file and its folder at start (server/app.py).
        yield Finding(
            "audit",
            "warn",
            f"audit store {path} does not exist yet; the server creates it at start",
            "nothing to do unless you expected an existing log here: then point audit.store at it",
        )
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0) as conn:
            span = (f"{config.server_id}#", f"{config.server_id}$")
            rows = conn.execute(
                "SELECT origin, idx, record, chain FROM audit_records"
                " WHERE origin >= ? AND origin < ? ORDER BY origin, idx",
                span,
            ).fetchall()
            starts = _archive_cuts(conn, span)
    except sqlite3.Error as exc:
        yield Finding(
            "audit",
            "fail",
            f"audit store {path} cannot be read: {exc}",
            "check the file's owner and permissions, and that the disk is healthy",
        )
        return
    logs: dict[str, list[tuple[int, bytes, bytes]]] = {}
    for origin, index, record, chain in rows:
        logs.setdefault(origin, []).append((index, bytes(record), bytes(chain)))
    for origin, entries in sorted(logs.items()):
        try:
            # An archived log verifies from its last cut, not from record 0.
            verify_chain(entries, start=starts.get(origin, GENESIS))
        except ChainError as exc:
            yield Finding(
                "audit",
                "fail",
                f"log {origin} in {path} does not verify: {exc.message}",
                "stop the server, keep a copy of the file and report it to the auditor",
            )
            return
    total = sum(len(e) for e in logs.values())
    yield Finding(
        "audit",
        "ok",
        f"audit store {path}: {len(logs)} log(s), {total} record(s), every chain verifies",
    )


def _archive_cuts(conn: sqlite3.Connection, span: tuple[str, str]) -> dict[str, ChainHead]:
    """The chain head at each log's latest archive cut (none before retention ran)."""
    try:
        rows = conn.execute(
            "SELECT origin, size, chain FROM audit_cuts"
            " WHERE origin >= ? AND origin < ? ORDER BY origin, size",
            span,
        ).fetchall()
    except sqlite3.OperationalError:  # a store from before retention existed
        return {}
    return {origin: ChainHead(size, bytes(chain)) for origin, size, chain in rows}


def _check_audit_url(config: ServerConfig, url: str) -> Iterator[Finding]:
    from spean.gateway.audit.backends import open_store

    shown = redact_url(url)
    try:
        with open_store(url, f"{config.server_id}#doctor") as store:
            store.size()
    except SpeanError as exc:
        yield Finding(
            "audit",
            "fail",
            f"audit store {shown}: {exc.message}",
            "check the database is up, reachable from here, and the URL's user may write",
        )
        return
    yield Finding("audit", "ok", f"audit store {shown} is reachable")


# ------------------------------------------------------------------ peers


def probe_peer(
    address: str,
    server_name: str,
    ca_pem: bytes,
    certificate: Path,
    key: Path,
    passphrase: bytes | None = None,
    timeout: float = PEER_TIMEOUT,
) -> str:
    """Open mutual TLS to a security server as this one; return its certificate's SHA-256.

    Raises `Unavailable` naming what failed (connection, handshake).
    """
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.load_cert_chain(certificate, key, password=passphrase)
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise Unavailable(f"{address}: {exc}") from None
    if der is None:
        raise Unavailable(f"{address}: the peer presented no certificate")
    return pki.der_thumbprint(der)


def _check_peers(
    config: ServerConfig, conf: GlobalConfiguration, timeout: float
) -> Iterator[Finding]:
    try:
        passphrase = read_passphrase(config)
    except OSError:
        return  # reported by the key checks
    cert = config.resolve(config.keys.tls_certificate)
    key = config.resolve(config.keys.tls_key)

    def probe(address: str, name: str) -> str | SpeanError:
        try:
            return probe_peer(address, name, conf.ca_pem, cert, key, passphrase, timeout)
        except (SpeanError, ssl.SSLError, OSError) as exc:
            return exc if isinstance(exc, SpeanError) else Unavailable(str(exc))

    servers = list(conf.servers)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: probe(s.address, s.id.dns_name()), servers))
    reached = 0
    for server, result in zip(servers, results, strict=True):
        own = server.id == config.server
        if isinstance(result, SpeanError):
            yield Finding(
                "peers",
                "warn",
                f"{'this server' if own else server.id} at {server.address} is not reachable:"
                f" {result.message}",
                "start this server, and let other members' servers reach this address"
                if own
                else "check the route and firewall to that address; if it is down, its owner"
                " must act (calls fail over to its other servers, if any)",
            )
        elif result not in server.tls_fingerprints:
            yield Finding(
                "peers",
                "warn",
                f"{server.id} at {server.address} presents a certificate that is not the one"
                " the global configuration lists (a rotation in progress?)",
                "wait for the authority's next publication, or tell its owner",
            )
        else:
            reached += 1
    yield Finding(
        "peers",
        "ok" if reached == len(servers) else "warn",
        f"{reached} of {len(servers)} security server(s) answered mutual TLS",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check a security server's config, keys, certificates, global configuration,"
        " audit store and peers",
    )
    parser.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip the TLS handshakes with other servers"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for each peer (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print findings as JSON lines")
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when nothing failed (warnings allowed), 1 otherwise."""
    findings = diagnose(args.config, peers=not args.no_peers, peer_timeout=args.timeout)
    if args.json:
        for finding in findings:
            print(json.dumps(asdict(finding)))
    else:
        print(render(findings))
    return 1 if failed(findings) else 0
