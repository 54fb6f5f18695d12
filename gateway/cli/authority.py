"""`spean authority ...`: run the federation authority from the command line.

Every command opens the authority directory (`--dir`), does one thing through
`spean.gateway.authority.Authority` and prints what it did. The commands for
join requests (`admit --request`, `set-approval`, `pending`, `approve`,
`reject`) are in `authority_joins`. Keys are decrypted only
by the commands that sign (init, admit, publish); `serve` needs no passphrase,
but `serve --management FILE` does (its API approves, revokes and publishes).
The management API's keys are `api-key` (`authority_management`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from spean.gateway import pki
from spean.gateway.authority import Authority
from spean.gateway.authority.listener import AuthorityManagementListener, load_settings
from spean.gateway.cli import authority_joins as joins_cli
from spean.gateway.cli import authority_management as management_cli
from spean.gateway.cli.durations import parse_duration
from spean.gateway.cli.member import add_passphrase_argument, ensure_logging, read_passphrase
from spean.gateway.errors import ConfigError
from spean.gateway.files import keyfiles

__all__ = ["parse_duration", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("authority", help="run the federation authority")
    commands = parser.add_subparsers(dest="authority_command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init", help="create the federation CA and configuration-signing key"
    )
    _dir(init)
    init.add_argument("--instance", required=True, help="federation instance code, e.g. KH")
    init.add_argument(
        "--require-approval",
        action="store_true",
        help="join requests wait for an officer (spean authority approve)",
    )
    add_passphrase_argument(init)
    init.set_defaults(func=cmd_init)

    admit = joins_cli.admit_parser(commands)
    kinds = admit.add_subparsers(dest="admit_kind", metavar="KIND")
    member = kinds.add_parser("member", help="certify a member's signing key")
    _dir(member)
    member.add_argument("--id", required=True, help="member identifier, e.g. KH/GOV/MOH")
    member.add_argument("--name", required=True, help='e.g. "Ministry of Health"')
    _csr_out(member)
    add_passphrase_argument(member)
    member.set_defaults(func=cmd_admit_member)

    server = kinds.add_parser("server", help="certify a security server's TLS key")
    _dir(server)
    server.add_argument("--id", required=True, help="server identifier, e.g. KH/GOV/MOH/ss1")
    server.add_argument("--address", required=True, help="host:port of its provider endpoint")
    change = server.add_mutually_exclusive_group()
    change.add_argument(
        "--replace",
        action="store_true",
        help="issue an already admitted server a new certificate (renewal, new address)",
    )
    change.add_argument(
        "--rotate",
        action="store_true",
        help="add a new certificate beside the server's current one (TLS key rotation);"
        " end the overlap with retire-certificate",
    )
    _csr_out(server)
    add_passphrase_argument(server)
    server.set_defaults(func=cmd_admit_server)

    subsystem = commands.add_parser("add-subsystem", help="register a subsystem of a member")
    _dir(subsystem)
    subsystem.add_argument("--id", required=True, help="subsystem identifier, e.g. KH/GOV/MOH/nhis")
    subsystem.add_argument("--name", default="", help="human-readable name")
    subsystem.add_argument(
        "--server", action="append", default=[], help="a server of the member hosting it (repeat)"
    )
    subsystem.add_argument(
        "--method", action="append", default=[], help="a unary method /pkg.Service/Method (repeat)"
    )
    subsystem.add_argument(
        "--streaming-method",
        action="append",
        default=[],
        help="a server-streaming method /pkg.Service/Method (repeat)",
    )
    subsystem.add_argument(
        "--descriptor-set",
        type=Path,
        help="FileDescriptorSet of the published services (protoc --descriptor_set_out)",
    )
    subsystem.set_defaults(func=cmd_add_subsystem)

    update = commands.add_parser(
        "update-subsystem",
        help="replace a registered subsystem's methods and descriptors (its contract changed)",
    )
    _dir(update)
    update.add_argument("--id", required=True, help="subsystem identifier, e.g. KH/GOV/MOH/nhis")
    update.add_argument(
        "--method", action="append", default=[], help="a unary method /pkg.Service/Method (repeat)"
    )
    update.add_argument(
        "--streaming-method",
        action="append",
        default=[],
        help="a server-streaming method /pkg.Service/Method (repeat)",
    )
    update.add_argument(
        "--descriptor-set",
        type=Path,
        required=True,
        help="FileDescriptorSet of the published services, as spean publish-table wrote it",
    )
    update.set_defaults(func=cmd_update_subsystem)

    topic = commands.add_parser("add-topic", help="register a topic a subsystem publishes")
    _dir(topic)
    topic.add_argument(
        "--subsystem", required=True, help="owner subsystem, e.g. KH/GOV/MOI/population"
    )
    topic.add_argument("--name", required=True, help="topic name, e.g. citizen-address-changed")
    topic.add_argument(
        "--event-type",
        required=True,
        help="protobuf message, e.g. population.v1.CitizenAddressChanged",
    )
    topic.add_argument(
        "--descriptor-set",
        type=Path,
        help="FileDescriptorSet defining the event type (protoc --descriptor_set_out)",
    )
    topic.set_defaults(func=cmd_add_topic)

    register_cmd = commands.add_parser(
        "register-subsystem", help="record that a security server hosts a subsystem"
    )
    _dir(register_cmd)
    register_cmd.add_argument("--subsystem", required=True, help="subsystem identifier")
    register_cmd.add_argument("--server", required=True, help="security server identifier")
    register_cmd.set_defaults(func=cmd_register_subsystem)

    describe = commands.add_parser(
        "describe", help="set a subsystem's catalogue metadata from a YAML file"
    )
    _dir(describe)
    describe.add_argument("--subsystem", required=True, help="subsystem identifier")
    describe.add_argument(
        "--file", required=True, type=Path, help="the metadata YAML (docs/catalogue.md)"
    )
    describe.set_defaults(func=cmd_describe)

    revoke = commands.add_parser("revoke", help="revoke a certificate this authority issued")
    _dir(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="certificate serial number, hexadecimal")
    which.add_argument("--thumbprint", help="SHA-256 of the certificate, hexadecimal")
    revoke.set_defaults(func=cmd_revoke)

    retire = commands.add_parser(
        "retire-certificate",
        help="stop listing a security server's previous TLS certificate (end of a rotation)",
    )
    _dir(retire)
    retire.add_argument("--server", required=True, help="security server identifier")
    which = retire.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="certificate serial number, hexadecimal")
    which.add_argument("--thumbprint", help="SHA-256 of the certificate, hexadecimal")
    retire.add_argument(
        "--revoke", action="store_true", help="revoke the certificate too, in the same change"
    )
    retire.set_defaults(func=cmd_retire_certificate)

    auditor = commands.add_parser(
        "set-auditor-key",
        help="register the auditors' X25519 public key (encrypted bodies are sealed to it)",
    )
    _dir(auditor)
    which = auditor.add_mutually_exclusive_group(required=True)
    which.add_argument("--public-key", type=Path, help="the auditors' public key (PEM)")
    which.add_argument(
        "--generate",
        type=Path,
        metavar="PRIVATE_KEY_FILE",
        help="generate a key pair, write the private key there (0600) for the auditors",
    )
    auditor.set_defaults(func=cmd_set_auditor_key)

    publish = commands.add_parser("publish", help="sign and write the next global configuration")
    _dir(publish)
    publish.add_argument(
        "--validity",
        default="24h",
        help="how long security servers may use it without a newer one (default 24h)",
    )
    add_passphrase_argument(publish)
    publish.set_defaults(func=cmd_publish)

    joins_cli.register_approval(commands)

    serve = commands.add_parser(
        "serve",
        help="serve the published configuration over HTTP, and the management API and"
        " console with --management",
    )
    _dir(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", required=True, type=int, help="port to listen on (0: any)")
    management_cli.add_management_argument(serve, required=False)
    add_passphrase_argument(serve)
    serve.set_defaults(func=cmd_serve)
    management_cli.register_api_keys(commands)


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the authority directory")


def _csr_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csr", required=True, type=Path, help="the certificate request (PEM)")
    parser.add_argument("--out", type=Path, help="where to write the certificate (default: stdout)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _deliver(pem: bytes, out: Path | None) -> None:
    """Write the certificate to `out` (or stdout) and describe it on the other stream."""
    cert = pki.parse_certificate_pem(pem)
    summary = (
        f"serial {pki.serial_hex(cert.serial_number)}, sha256 {pki.thumbprint(cert)},"
        f" valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    )
    if out is None:
        sys.stdout.write(pem.decode())
        print(summary, file=sys.stderr)
        return
    keyfiles.write_file_atomically(out, pem)
    print(f"wrote {out}: {summary}")


def cmd_init(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.init(args.dir, args.instance, read_passphrase(args))
    if args.require_approval:
        authority.set_approval(True)
    print(f"created the {args.instance} federation authority in {args.dir}")
    print(
        f"configuration anchor: {authority.anchor_path}"
        f" (sha256 {pki.thumbprint(authority.signing_certificate)});"
        " give it to every member out of band"
    )
    return 0


def cmd_admit_member(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir, read_passphrase(args))
    pem = authority.admit_member(args.id, args.name, _read(args.csr, "CSR"))
    _deliver(pem, args.out)
    return 0


def cmd_admit_server(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir, read_passphrase(args))
    pem = authority.admit_server(
        args.id, args.address, _read(args.csr, "CSR"), replace=args.replace, rotate=args.rotate
    )
    _deliver(pem, args.out)
    return 0


def cmd_add_subsystem(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir)
    methods = [(path, False) for path in args.method]
    methods += [(path, True) for path in args.streaming_method]
    descriptors = _read(args.descriptor_set, "descriptor set") if args.descriptor_set else b""
    authority.add_subsystem(
        args.id, args.name, methods=methods, file_descriptor_set=descriptors, servers=args.server
    )
    hosted = f" on {', '.join(args.server)}" if args.server else ""
    print(f"registered subsystem {args.id}{hosted}; publish to make it known")
    return 0


def cmd_update_subsystem(args: argparse.Namespace) -> int:
    ensure_logging()
    methods = [(path, False) for path in args.method]
    methods += [(path, True) for path in args.streaming_method]
    descriptors = _read(args.descriptor_set, "descriptor set")
    Authority.open(args.dir).update_subsystem(
        args.id, methods=methods, file_descriptor_set=descriptors
    )
    print(f"updated subsystem {args.id}; publish to make its new contract known")
    return 0


def cmd_add_topic(args: argparse.Namespace) -> int:
    ensure_logging()
    descriptors = _read(args.descriptor_set, "descriptor set") if args.descriptor_set else b""
    Authority.open(args.dir).add_topic(
        args.subsystem, args.name, args.event_type, file_descriptor_set=descriptors
    )
    print(f"registered topic {args.subsystem}:{args.name}; publish to make it known")
    return 0


def cmd_register_subsystem(args: argparse.Namespace) -> int:
    ensure_logging()
    Authority.open(args.dir).register_subsystem_on_server(args.subsystem, args.server)
    print(f"subsystem {args.subsystem} is hosted on {args.server}; publish to make it known")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from spean.gateway.authority.describe import read_metadata_file

    ensure_logging()
    document = read_metadata_file(args.file)
    Authority.open(args.dir).describe(args.subsystem, document)
    print(f"described subsystem {args.subsystem} in the catalogue; publish to make it known")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir)
    if args.serial is not None:
        serial = authority.revoke(serial=pki.parse_serial_hex(args.serial))
    else:
        serial = authority.revoke(thumbprint=args.thumbprint)
    print(f"revoked certificate serial {pki.serial_hex(serial)}; publish to make it known")
    return 0


def cmd_retire_certificate(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir)
    serial = authority.retire_certificate(
        args.server,
        serial=pki.parse_serial_hex(args.serial) if args.serial is not None else None,
        thumbprint=args.thumbprint,
        revoke=args.revoke,
    )
    done = "retired and revoked" if args.revoke else "retired"
    print(
        f"{done} TLS certificate serial {pki.serial_hex(serial)} of {args.server};"
        " publish to make it known"
    )
    return 0


def cmd_set_auditor_key(args: argparse.Namespace) -> int:
    from spean.gateway.audit.bodies import fingerprint
    from spean.gateway.files.keyfiles import generate_auditor_key, load_auditor_public_key

    ensure_logging()
    authority = Authority.open(args.dir)
    if args.generate is not None:
        public = generate_auditor_key(args.generate)
        print(f"wrote the auditors' private key to {args.generate}; hand it to the auditors")
    else:
        public = load_auditor_public_key(args.public_key)
    authority.set_auditor_key(public)
    print(f"registered auditor key {fingerprint(public)}; it applies from the next publish")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    ensure_logging()
    validity = parse_duration(args.validity)
    authority = Authority.open(args.dir, read_passphrase(args))
    path = authority.publish(validity)
    print(f"published {path} (valid for {validity})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    ensure_logging()
    management = None
    if args.management is not None:
        # Approving and publishing sign: the management API needs the keys' passphrase.
        authority = Authority.open(args.dir, read_passphrase(args))
        management = AuthorityManagementListener(
            authority, load_settings(args.management), read_passphrase(args)
        )
    else:
        authority = Authority.open(args.dir)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        server = authority.serve(args.host, args.port)
    except BaseException:
        if management is not None:
            management.stop()
        raise
    print(f"serving {server.url}", flush=True)
    try:
        if management is not None:
            management.start()
            print(f"management API and console on {management.url}/console", flush=True)
        # A timeout keeps the wait responsive to signals on every platform.
        while not stopping.wait(1.0):
            pass
    finally:
        if management is not None:
            management.stop()
        server.stop()
    return 0
