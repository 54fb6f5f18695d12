"""`spean join`: everything a new member prepares, in one command, in one folder.

Given the member, its security server and the authority (an http(s) URL of
its configuration service, its folder, or a published configuration file),
`spean join` writes into ``--dir`` (default: the current folder)::

    keys/signing.key, keys/signing.csr   the member's token-signing key and CSR
    keys/tls.key, keys/tls.csr           the security server's TLS key and CSR
    keys/authority.crt                   the configuration anchor
    server.yaml                          the security server's configuration
    state/                               global configuration cache, audit log
    join-request.yaml                    both CSRs and the identifiers, for the
                                         authority (`spean authority admit
                                         --request`)

The anchor is fetched (``/v1/anchor`` of the authority's URL, ``signing.crt``
of its folder) and the published configuration is verified against it; its
SHA-256 is printed so that it can be compared with the authority by
telephone. `--anchor-sha256` makes the comparison part of the command.

Invariants: private keys are created once (mode 0600) and never replaced; a
folder that already holds a join is refused whole, before anything is
written; server.yaml refers to files by paths relative to itself, so the
folder can be moved. server.yaml is valid as written: its provider side
publishes no service yet (the server starts and answers NOT_FOUND) until the
member adds one (`spean publish-table --config`). The join request asks for
the certificates back into ``keys/`` beside it (`deliver_to`, relative), so
an authority on another machine writes them beside the copy it received.

`admission_command` is the authority's next command for a folder prepared
here, with real paths where they are known; `spean publish-table` prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from spean.gateway import pki
from spean.gateway.authority import (
    ANCHOR_PATH,
    GLOBALCONF,
    GLOBALCONF_PATH,
    JOIN_REQUEST,
    REGISTRY,
    SIGNING_CERT,
    JoinRequest,
    init_member,
    init_server,
    join_request_yaml,
)
from spean.gateway.cli.member import add_passphrase_argument, ensure_logging, read_passphrase
from spean.gateway.config import is_loopback, member_folder_document
from spean.gateway.demo.federation import free_port
from spean.gateway.errors import (
    ConfigError,
    FailedPrecondition,
    InvalidArgument,
    SpeanError,
    Unavailable,
)
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config
from spean.gateway.globalconf import verify_global_configuration
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server

FETCH_SECONDS = 10.0
SERVER_YAML = "server.yaml"
ANCHOR = "keys/authority.crt"
KEYS = "keys"
AUTHORITY_DIR = "AUTHORITY_DIR"
"""Stands for the authority's folder in a printed command when it is not on this machine."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "join",
        help="prepare a new member: keys, certificate requests, server.yaml and a join request",
    )
    parser.add_argument("--member", required=True, help="member identifier, e.g. KH/GOV/MOE")
    parser.add_argument("--name", required=True, help='e.g. "Ministry of Education"')
    parser.add_argument(
        "--server", default="ss1", help="security server code or identifier (default ss1)"
    )
    parser.add_argument(
        "--address",
        required=True,
        help="host:port where other security servers reach this one; host:0 or a bare host"
        " picks a free port on this machine",
    )
    parser.add_argument(
        "--authority",
        required=True,
        help="the authority: http(s)://host:port of `spean authority serve`, its folder,"
        " or a published globalconf.signed",
    )
    parser.add_argument("--anchor", type=Path, help="the anchor certificate, if not fetched")
    parser.add_argument(
        "--anchor-sha256", help="the anchor's SHA-256 as the authority gave it; refuse another"
    )
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="SUBSYSTEM",
        help="a subsystem of this member that calls other members' services (repeat);"
        " it gets the consumer endpoint",
    )
    parser.add_argument(
        "--consumer-listen",
        help="address of the consumer endpoint for this member's applications"
        " (default 127.0.0.1 and a free port)",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("."), help="the member's folder (default: here)"
    )
    parser.add_argument(
        "--key-type",
        choices=("ec-p256", "ed25519"),
        default="ec-p256",
        help="signing key type (default ec-p256)",
    )
    add_passphrase_argument(parser)
    parser.set_defaults(func=cmd_join)


def cmd_join(args: argparse.Namespace) -> int:
    ensure_logging()
    member = MemberId.parse(args.member)
    server = parse_server(args.server if "/" in args.server else f"{member}/{args.server}")
    if server.member != member:
        raise InvalidArgument(f"security server {server} does not belong to member {member}")
    clients = [str(SubsystemId.parse(c)) for c in args.client]
    for client in clients:
        if SubsystemId.parse(client).member != member:
            raise InvalidArgument(f"client {client} does not belong to member {member}")
    folder: Path = args.dir
    _refuse_existing(folder)
    address = with_port(args.address)
    source, anchor_pem = fetch_anchor(args.authority, args.anchor)
    anchor = pki.parse_certificate_pem(anchor_pem, "the configuration anchor")
    fingerprint = pki.thumbprint(anchor)
    if args.anchor_sha256 is not None:
        wanted = args.anchor_sha256.strip().lower().replace(":", "")
        if wanted != fingerprint:
            raise FailedPrecondition(
                f"the authority's anchor has SHA-256 {fingerprint}, not {wanted}: do not join"
                " through it; ask the authority which anchor is current"
            )
    instance = _check_configuration(source, anchor)
    if instance != member.instance:
        raise InvalidArgument(
            f"the authority serves instance {instance!r}; member {member} belongs to"
            f" {member.instance!r}"
        )

    keys = folder / KEYS
    passphrase = read_passphrase(args)
    member_files = init_member(keys, member, key_kind=args.key_type, passphrase=passphrase)
    server_files = init_server(keys, server, address, passphrase=passphrase)
    keyfiles.write_file_atomically(folder / ANCHOR, anchor_pem)
    (folder / "state").mkdir(mode=0o700, exist_ok=True)
    consumer = args.consumer_listen or (with_port("127.0.0.1") if clients else None)
    document = server_document(
        server=str(server),
        source=source,
        address=address,
        clients=clients,
        consumer_listen=consumer,
    )
    config_path = folder / SERVER_YAML
    header = (
        "# Written by spean join. The provider side publishes no service yet (the server"
        " starts and\n# answers NOT_FOUND): add one with spean publish-table --config"
        " this file.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False)
    keyfiles.write_file_atomically(config_path, (header + body).encode())
    request = JoinRequest(
        member=str(member),
        member_name=args.name.strip(),
        member_csr=member_files.csr.read_bytes(),
        server=str(server),
        address=address,
        server_csr=server_files.csr.read_bytes(),
        clients=tuple(clients),
        deliver_to=KEYS,  # beside the request, wherever the authority reads it
    )
    request_path = folder / JOIN_REQUEST
    keyfiles.write_file_atomically(request_path, join_request_yaml(request))

    print(f"wrote {keys}/ (signing.key, tls.key: private, mode 0600; both CSRs), {config_path}")
    print(f"      and {request_path} for the authority")
    print(f"server {server} at {address}; global configuration from {source}")
    if consumer:
        print(f"consumer endpoint for {', '.join(clients)}: {consumer}")
    print(f"configuration anchor sha256 {_grouped(fingerprint)}")
    print("  compare it with the authority by telephone before starting the server")
    admit = _admit_words(_local_authority(source), request_path)
    print(
        f"next: publish a service (spean publish-table ... --out {folder} --config"
        f" {config_path}), then the authority runs: {shlex.join(admit)}"
        " [--subsystem ID --descriptor-set FILE]"
    )
    return 0


def admission_command(config: Path, subsystem: str, descriptor_set: Path) -> str | None:
    """The authority's command admitting the join prepared beside `config` with `subsystem`
    published, or None when there is no join request there or it was admitted already
    (its signing certificate has come back)."""
    request = config.parent / JOIN_REQUEST
    if not request.is_file():
        return None
    try:
        server = load_config(config)
    except SpeanError:
        return None  # the publication itself reports a file it cannot merge into
    if server.resolve(server.keys.signing_certificate).exists():
        return None
    words = _admit_words(_local_authority(server.global_configuration.source), request)
    words += ["--subsystem", subsystem, "--descriptor-set", shown(descriptor_set)]
    return shlex.join(words)


def _admit_words(authority: Path | None, request: Path) -> list[str]:
    where = shown(authority) if authority is not None else AUTHORITY_DIR
    return ["spean", "authority", "admit", "--dir", where, "--request", shown(request)]


def _local_authority(source: str) -> Path | None:
    """The authority's folder, when the configuration source is a file published in it."""
    if source.startswith(("http://", "https://")):
        return None
    folder = Path(source).parent
    return folder if (folder / REGISTRY).is_file() else None


def shown(path: Path) -> str:
    """`path` relative to the working folder when it is inside it, as a user would type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def server_document(
    *,
    server: str,
    source: str,
    address: str,
    clients: list[str],
    consumer_listen: str | None,
) -> dict[str, Any]:
    """The server.yaml skeleton: keys, global configuration, both endpoints, audit store."""
    host, port = pki.parse_address(address)
    # Listen where peers connect on a loopback address; elsewhere on every interface
    # (a NAT or load balancer may stand between the published address and this host).
    listen_host = host if is_loopback(host) else "0.0.0.0"
    document = member_folder_document(server, source, ANCHOR)
    if consumer_listen is not None:
        document["consumer"] = {
            "listen": consumer_listen,
            "clients": [{"subsystem": client} for client in clients],
        }
    document["provider"] = {"listen": f"{listen_host}:{port}", "services": [], "access": []}
    return document


def with_port(address: str) -> str:
    """`address` as host:port; host:0 or a bare host gets a port free on this machine now."""
    text = address.strip()
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":") or (text.startswith("[") and text.endswith("]")):
        host, port = text, "0"
    if port != "0":
        pki.parse_address(text)
        return text
    try:
        # Below the kernel's ephemeral range, as the demo's ports: no outgoing
        # connection takes it between now and the server's start.
        chosen = free_port(host.strip("[]"))
    except OSError as exc:
        raise InvalidArgument(
            f"cannot pick a free port on {host} ({exc}); give --address host:port"
        ) from exc
    result = f"{host}:{chosen}"
    pki.parse_address(result)
    return result


def fetch_anchor(authority: str, anchor: Path | None) -> tuple[str, bytes]:
    """The configuration source for server.yaml and the anchor's PEM."""
    if authority.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(authority)
        base = parts._replace(path="", query="", fragment="").geturl()
        source = base + GLOBALCONF_PATH
        pem = _read(anchor) if anchor else _get(base + ANCHOR_PATH, "the configuration anchor")
        return source, pem
    path = Path(authority).resolve()
    if path.is_dir():
        published = path / GLOBALCONF
        if not published.is_file():
            raise FailedPrecondition(
                f"{path} holds no published configuration ({GLOBALCONF}); the authority"
                " publishes first (spean authority publish)"
            )
        return str(published), _read(anchor or path / SIGNING_CERT)
    if path.is_file():
        if anchor is None and not (path.parent / SIGNING_CERT).is_file():
            raise InvalidArgument(f"give the anchor certificate with --anchor: none beside {path}")
        return str(path), _read(anchor or path.parent / SIGNING_CERT)
    raise ConfigError(f"--authority {authority}: no such URL, folder or file")


def _check_configuration(source: str, anchor: x509.Certificate) -> str:
    """Verify the published configuration against the anchor; returns its instance."""
    if source.startswith(("http://", "https://")):
        data = _get(source, "the global configuration")
    else:
        data = _read(Path(source))
    return verify_global_configuration(data, anchor, dt.datetime.now(dt.UTC)).instance


def _get(url: str, what: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_SECONDS) as response:  # noqa: S310 - http(s) only
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"cannot fetch {what} from {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot fetch {what} from {url}: {reason}") from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _refuse_existing(folder: Path) -> None:
    for name in (SERVER_YAML, JOIN_REQUEST, "keys/signing.key", "keys/tls.key"):
        if (folder / name).exists():
            raise FailedPrecondition(
                f"{folder / name} exists: this folder already holds a join; choose another --dir"
            )


def _grouped(fingerprint: str) -> str:
    """The fingerprint in groups of four, as read aloud."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


__all__ = [
    "AUTHORITY_DIR",
    "admission_command",
    "cmd_join",
    "fetch_anchor",
    "register",
    "server_document",
    "shown",
    "with_port",
]
