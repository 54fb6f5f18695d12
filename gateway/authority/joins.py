"""Join requests: one file from a new member, one admission at the authority.

`spean join` writes a join request (``join-request.yaml``): the member's
identifier and name, its signing CSR, its security server's identifier,
address and TLS CSR, the client subsystems it will call from, and the
subsystems it publishes, each optionally with its FileDescriptorSet. The
authority admits it with one command, `admit_request`: member, server, every
subsystem registered on that server, then publication. A federation that
wants an officer to look first (`Authority.set_approval`) keeps the request
under ``pending/`` (`submit`) until `approve` admits it or `reject` drops it.

Invariants:

- a request is checked completely before anything changes: identifiers of
  this instance, the server and every subsystem of the request's member, both
  CSRs' signatures, the address, the descriptor sets, and that nothing in it
  is registered yet; so a bad request changes nothing;
- a pending request is kept byte for byte as submitted, one per server
  identifier; approving it runs the same `admit_request` as without approval;
- the request holds no secret (CSRs and descriptors only); certificates go
  back into the folder it names (`deliver_to`, ``keys`` from `spean join`)
  *beside the request file*, wherever the authority reads it: a request
  never makes the authority write outside the request's own folder
  (`delivery_folder` refuses an absolute path or ``..``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
import yaml

from spean.gateway import pki
from spean.gateway.authority.configuration import published_methods
from spean.gateway.authority.core import DEFAULT_PUBLISH_VALIDITY, Authority
from spean.gateway.authority.registry import PENDING
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.files import keyfiles
from spean.gateway.files.member_keys import make_private_dir
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server

log = structlog.get_logger()

JOIN_REQUEST_FORMAT = 1
JOIN_REQUEST = "join-request.yaml"


@dataclass(frozen=True, slots=True)
class SubsystemRequest:
    """A subsystem the new member publishes, and the descriptors of its services."""

    id: str
    name: str = ""
    file_descriptor_set: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """What a new member asks the authority for: both certificates and its subsystems."""

    member: str
    member_name: str
    member_csr: bytes = field(repr=False)
    server: str
    address: str
    server_csr: bytes = field(repr=False)
    clients: tuple[str, ...] = ()
    subsystems: tuple[SubsystemRequest, ...] = ()
    deliver_to: str = ""  # the folder the certificates go back into, beside the request

    def with_subsystem(self, subsystem: SubsystemRequest) -> JoinRequest:
        """This request with `subsystem` added, or replacing the one of the same id."""
        others = tuple(s for s in self.subsystems if s.id != subsystem.id)
        return replace(self, subsystems=(*others, subsystem))


@dataclass(frozen=True, slots=True)
class Admitted:
    """What admission issued: both certificates, the subsystems, the published file."""

    member_certificate: bytes = field(repr=False)
    server_certificate: bytes = field(repr=False)
    subsystems: tuple[str, ...]
    published: Path


def join_request_yaml(request: JoinRequest) -> bytes:
    document: dict[str, Any] = {
        "format": JOIN_REQUEST_FORMAT,
        "member": {
            "id": request.member,
            "name": request.member_name,
            "csr": request.member_csr.decode(),
        },
        "server": {
            "id": request.server,
            "address": request.address,
            "csr": request.server_csr.decode(),
        },
        "clients": list(request.clients),
        "subsystems": [
            {
                "id": s.id,
                "name": s.name,
                "file_descriptor_set": base64.b64encode(s.file_descriptor_set).decode(),
            }
            for s in request.subsystems
        ],
    }
    if request.deliver_to:
        document["deliver_to"] = request.deliver_to
    header = "# A Spean join request: give it to the federation authority (no secret in it).\n"
    return (header + yaml.dump(document, Dumper=_Dumper, sort_keys=False)).encode()


def read_join_request(path: Path) -> JoinRequest:
    """Read and check a join request file; errors name the file and the field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the join request {path}: {exc.strerror}") from exc
    return parse_join_request(data, str(path))


def parse_join_request(data: bytes, source: str) -> JoinRequest:
    """Parse and check a join request (see the module's invariants); pure."""

    def fail(where: str, detail: str) -> InvalidArgument:
        return InvalidArgument(f"{source}: {where}: {detail}")

    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != JOIN_REQUEST_FORMAT:
        raise fail("format", f"must be {JOIN_REQUEST_FORMAT} (a file written by spean join)")

    def section(key: str) -> dict[str, Any]:
        value = doc.get(key)
        if not isinstance(value, dict):
            raise fail(key, "must be a mapping")
        return value

    def text(item: dict[str, Any], key: str, where: str) -> str:
        value = item.get(key, "")
        if not isinstance(value, str) or not value.strip():
            raise fail(f"{where}.{key}", "must be a non-empty string")
        return value.strip()

    member_doc, server_doc = section("member"), section("server")
    member = MemberId.parse(text(member_doc, "id", "member"))
    server = parse_server(text(server_doc, "id", "server"))
    if server.member != member:
        raise fail("server.id", f"{server} does not belong to member {member}")
    address = text(server_doc, "address", "server")
    pki.parse_address(address)
    member_csr = text(member_doc, "csr", "member").encode() + b"\n"
    server_csr = text(server_doc, "csr", "server").encode() + b"\n"
    pki.load_csr(member_csr, f"{source}: member.csr")
    pki.load_csr(server_csr, f"{source}: server.csr")
    clients = doc.get("clients") or []
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise fail("clients", "must be a list of subsystem identifiers")
    subsystems: list[SubsystemRequest] = []
    items = doc.get("subsystems") or []
    if not isinstance(items, list):
        raise fail("subsystems", "must be a list")
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise fail(f"subsystems[{n}]", "must be a mapping")
        encoded = item.get("file_descriptor_set") or ""
        try:
            descriptors = base64.b64decode(encoded, validate=True) if encoded else b""
        except (binascii.Error, TypeError) as exc:
            raise fail(f"subsystems[{n}].file_descriptor_set", "must be base64") from exc
        name = item.get("name") or ""
        subsystems.append(
            SubsystemRequest(text(item, "id", f"subsystems[{n}]"), str(name).strip(), descriptors)
        )
    for identifier in [*clients, *(s.id for s in subsystems)]:
        if SubsystemId.parse(identifier).member != member:
            raise fail("subsystems", f"{identifier} does not belong to member {member}")
    deliver_to = doc.get("deliver_to") or ""
    return JoinRequest(
        member=str(member),
        member_name=text(member_doc, "name", "member"),
        member_csr=member_csr,
        server=str(server),
        address=address,
        server_csr=server_csr,
        clients=tuple(dict.fromkeys(clients)),
        subsystems=tuple(subsystems),
        deliver_to=str(deliver_to),
    )


def delivery_folder(request_file: Path, deliver_to: str) -> Path:
    """Where admission writes the certificates when the officer names no folder: the
    request's `deliver_to`, relative to the request's own folder, else that folder; pure.

    The request comes from outside: a path that is absolute (a folder on the member's
    machine) or climbs out with ``..`` is refused, naming the fix (``--out``)."""
    folder = request_file.parent
    if not deliver_to:
        return folder
    wanted = Path(deliver_to)
    if wanted.is_absolute() or ".." in wanted.parts:
        raise InvalidArgument(
            f"{request_file}: deliver_to {deliver_to!r} is not a folder beside the request"
            f" (spean join writes 'keys'): give --out FOLDER for the certificates"
        )
    return folder / wanted


def admit_request(
    authority: Authority,
    request: JoinRequest,
    validity: dt.timedelta = DEFAULT_PUBLISH_VALIDITY,
) -> Admitted:
    """Admit the member and its server, register every subsystem on it, and publish."""
    _check_new(authority, request)
    member_pem = authority.admit_member(request.member, request.member_name, request.member_csr)
    server_pem = authority.admit_server(request.server, request.address, request.server_csr)
    registered: list[str] = []
    for client in request.clients:
        if client not in {s.id for s in request.subsystems}:
            authority.add_subsystem(client, servers=[request.server])
            registered.append(client)
    for subsystem in request.subsystems:
        authority.add_subsystem(
            subsystem.id,
            subsystem.name,
            file_descriptor_set=subsystem.file_descriptor_set,
            servers=[request.server],
        )
        registered.append(subsystem.id)
    published = authority.publish(validity)
    log.info(
        "authority.join_admitted",
        member=request.member,
        server=request.server,
        subsystems=registered,
    )
    return Admitted(member_pem, server_pem, tuple(registered), published)


def _check_new(authority: Authority, request: JoinRequest) -> None:
    registry = authority.registry()
    for identifier, kind in (
        (request.member, "member"),
        (request.server, "security server"),
        *((c, "subsystem") for c in request.clients),
        *((s.id, "subsystem") for s in request.subsystems),
    ):
        if kind == "member":
            authority.check_identifier(MemberId.parse(identifier))
        else:
            authority.check_identifier(SubsystemId.parse(identifier))
        try:
            registry.check_new_identifier(identifier, kind)
        except FailedPrecondition as exc:
            raise FailedPrecondition(
                f"{exc.message}; this join request cannot be admitted again (admit further"
                " servers or subsystems with spean authority admit server / add-subsystem)"
            ) from exc
    for subsystem in request.subsystems:
        published_methods((), subsystem.file_descriptor_set, SubsystemId.parse(subsystem.id))


# ------------------------------------------------------------ approval


def pending_path(authority: Authority, server: str) -> Path:
    return authority.directory / PENDING / (server.replace("/", "_") + ".yaml")


def submit(authority: Authority, request: JoinRequest) -> Path:
    """Keep `request` until an officer approves it; returns the pending file."""
    _check_new(authority, request)
    path = pending_path(authority, request.server)
    if path.exists():
        raise FailedPrecondition(
            f"a join request for {request.server} is already pending; approve or reject it"
            f" first (spean authority approve/reject --server {request.server})"
        )
    make_private_dir(path.parent)
    keyfiles.write_file_atomically(path, join_request_yaml(request), 0o600)
    log.info("authority.join_pending", member=request.member, server=request.server)
    return path


def pending(authority: Authority) -> list[JoinRequest]:
    """Every pending join request, by server identifier."""
    folder = authority.directory / PENDING
    if not folder.is_dir():
        return []
    return [read_join_request(path) for path in sorted(folder.glob("*.yaml"))]


def approve(
    authority: Authority, server: str, validity: dt.timedelta = DEFAULT_PUBLISH_VALIDITY
) -> tuple[JoinRequest, Admitted]:
    """Admit the pending request of `server`; the pending file goes once admitted."""
    path = _pending_file(authority, server)
    request = read_join_request(path)
    admitted = admit_request(authority, request, validity)
    path.unlink()
    return request, admitted


def reject(authority: Authority, server: str) -> JoinRequest:
    """Drop the pending request of `server`; nothing was admitted."""
    path = _pending_file(authority, server)
    request = read_join_request(path)
    path.unlink()
    log.warning("authority.join_rejected", member=request.member, server=request.server)
    return request


def _pending_file(authority: Authority, server: str) -> Path:
    path = pending_path(authority, str(parse_server(server)))
    if not path.is_file():
        raise NotFound(
            f"no join request for {server} is pending (spean authority pending lists them)"
        )
    return path


class _Dumper(yaml.SafeDumper):
    """Writes PEM blocks as literal blocks, readable by the officer who checks them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
