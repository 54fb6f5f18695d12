"""`spean authority` commands for join requests: admit one whole, or through an officer.

`admit --request FILE` takes the join request `spean join` wrote (with
`--subsystem`/`--descriptor-set` adding a published subsystem to it) and
admits member, server and subsystems and publishes, writing both
certificates into `--out` (default: the folder the request names, ``keys/``
beside the request file; see `joins.delivery_folder`); where the
federation requires approval (`set-approval required`), it keeps the request
pending instead, and `approve --server` admits it or `reject --server` drops
it. The work is `spean.gateway.authority.joins`; this module only reads
arguments and prints what was done.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from spean.gateway.authority import (
    Admitted,
    Authority,
    JoinRequest,
    SubsystemRequest,
    admit_request,
    approve,
    delivery_folder,
    join_request_yaml,
    parse_join_request,
    pending,
    read_join_request,
    reject,
    submit,
)
from spean.gateway.cli.durations import parse_duration
from spean.gateway.cli.member import add_passphrase_argument, ensure_logging, read_passphrase
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.files import keyfiles

__all__ = ["admit_parser", "register_approval"]


def admit_parser(commands: Any) -> argparse.ArgumentParser:
    """`spean authority admit`, taking --request; its KIND subcommands are added by the caller."""
    admit: argparse.ArgumentParser = commands.add_parser(
        "admit",
        help="admit a join request (spean join) in one step, or certify a member or a server",
        description="With --request: admit the member, its server and its subsystems from"
        " the join request, publish, and write both certificates; where the federation"
        " requires approval, the request waits for `spean authority approve`. With KIND:"
        " certify one member or one server from its CSR.",
    )
    admit.add_argument("--dir", type=Path, help="the authority directory")
    admit.add_argument("--request", type=Path, help="the join request (spean join writes it)")
    admit.add_argument("--subsystem", help="a subsystem the member publishes, added to the request")
    admit.add_argument(
        "--descriptor-set",
        type=Path,
        help="the FileDescriptorSet of --subsystem's services (every method is published)",
    )
    admit.add_argument(
        "--out",
        type=Path,
        help="folder for signing.crt and tls.crt (default: the one the request names"
        " beside the request file, keys/ from spean join; else the request's folder)",
    )
    validity(admit)
    add_passphrase_argument(admit)
    admit.set_defaults(func=cmd_admit_request)
    return admit


def register_approval(commands: Any) -> None:
    """`set-approval`, `pending`, `approve` and `reject`."""
    approval = commands.add_parser(
        "set-approval", help="whether join requests wait for an officer's approval"
    )
    directory(approval)
    approval.add_argument("mode", choices=("required", "not-required"))
    approval.set_defaults(func=cmd_set_approval)

    waiting = commands.add_parser("pending", help="list the join requests waiting for approval")
    directory(waiting)
    waiting.set_defaults(func=cmd_pending)

    approve_cmd = commands.add_parser(
        "approve", help="admit a pending join request and publish (an officer's decision)"
    )
    directory(approve_cmd)
    approve_cmd.add_argument("--server", required=True, help="the request's security server")
    approve_cmd.add_argument(
        "--out", type=Path, help="folder for the certificates (default: as the request says)"
    )
    validity(approve_cmd)
    add_passphrase_argument(approve_cmd)
    approve_cmd.set_defaults(func=cmd_approve)

    reject_cmd = commands.add_parser("reject", help="drop a pending join request")
    directory(reject_cmd)
    reject_cmd.add_argument("--server", required=True, help="the request's security server")
    reject_cmd.set_defaults(func=cmd_reject)


def validity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validity",
        default="24h",
        help="how long the configuration published after admission is valid (default 24h)",
    )


def directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the authority directory")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def cmd_admit_request(args: argparse.Namespace) -> int:
    ensure_logging()
    if args.request is None or args.dir is None:
        raise InvalidArgument(
            "give --dir and --request FILE (a join request), or a KIND: admit member / server"
        )
    request = read_join_request(args.request)
    if args.descriptor_set is not None and args.subsystem is None:
        raise InvalidArgument("--descriptor-set needs --subsystem: which subsystem it describes")
    if args.subsystem is not None:
        descriptors = _read(args.descriptor_set, "descriptor set") if args.descriptor_set else b""
        request = request.with_subsystem(SubsystemRequest(args.subsystem, "", descriptors))
        # Checked as if it had come in the file.
        request = parse_join_request(join_request_yaml(request), str(args.request))
    out = args.out or delivery_folder(args.request, request.deliver_to)
    request = replace(request, deliver_to=str(out.resolve()))
    authority = Authority.open(args.dir, read_passphrase(args))
    if authority.requires_approval:
        path = submit(authority, request)
        print(f"join request of {request.member} ({request.server}) is pending: {path}")
        print(
            f"an officer approves it with: spean authority approve --dir {args.dir}"
            f" --server {request.server}"
        )
        return 0
    admitted = admit_request(authority, request, parse_duration(args.validity))
    _deliver_join(request, admitted, out)
    return 0


def cmd_set_approval(args: argparse.Namespace) -> int:
    ensure_logging()
    required = args.mode == "required"
    Authority.open(args.dir).set_approval(required)
    print(
        "join requests now wait for an officer (spean authority approve)"
        if required
        else "join requests are now admitted at once"
    )
    return 0


def cmd_pending(args: argparse.Namespace) -> int:
    ensure_logging()
    requests = pending(Authority.open(args.dir))
    if not requests:
        print("no join request is pending")
    for request in requests:
        subsystems = [*request.clients, *(s.id for s in request.subsystems)]
        print(
            f"{request.server}  {request.member} ({request.member_name}) at {request.address};"
            f" subsystems: {', '.join(subsystems) or 'none'}"
        )
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    ensure_logging()
    authority = Authority.open(args.dir, read_passphrase(args))
    request, admitted = approve(authority, args.server, parse_duration(args.validity))
    out = args.out or Path(request.deliver_to)
    _deliver_join(request, admitted, out)
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    ensure_logging()
    request = reject(Authority.open(args.dir), args.server)
    print(f"rejected the join request of {request.member} ({request.server}); nothing admitted")
    return 0


def _deliver_join(request: JoinRequest, admitted: Admitted, out: Path) -> None:
    """Write both certificates into `out` and say what was admitted."""
    out.mkdir(parents=True, exist_ok=True)
    for name, pem in (
        ("signing.crt", admitted.member_certificate),
        ("tls.crt", admitted.server_certificate),
    ):
        keyfiles.write_file_atomically(out / name, pem)
    subsystems = ", ".join(admitted.subsystems) or "no subsystem"
    print(
        f"admitted {request.member} ({request.member_name}) and {request.server}"
        f" at {request.address}; registered {subsystems}"
    )
    print(f"wrote {out / 'signing.crt'} and {out / 'tls.crt'}; published {admitted.published}")
