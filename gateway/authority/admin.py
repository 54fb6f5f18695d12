"""The authority's management service: what its API and console read and change.

`AuthorityAdmin` stands between the routes (gateway/authority/api.py and
console.py) and the `Authority` with its join requests
(gateway/authority/core.py, joins.py): it answers pydantic models, and
every change goes the same way:

1. under one lock of this process, the caller's If-Match is compared with
   the ETag of the registry state (registry.yaml and the pending join
   requests, byte for byte): 428 without one, 412 when it is stale;
2. the action is appended to the signed admin log (`APPLIED`) and is
   durable before anything changes (no record, no change);
3. the change is made through the `Authority`, which takes the registry's
   file lock, rereads registry.yaml and writes it back atomically, so a
   `spean authority` command run at the same time is never lost; if the
   change fails, a `FAILED` record with the reason follows.

The admin log is an audit store of its own (the ``audit_store`` of the
management settings) under the origin ``<instance>/authority#management``,
its checkpoints signed with the configuration-signing key (the anchor every
member holds), so `spean audit verify` checks it like any exchange log.

A join request uploaded through the API never makes the authority write a
file outside its own directory: its ``deliver_to`` is dropped, and the
certificates are answered (they are public). A request submitted with
`spean authority admit --request` keeps the folder the officer's command
resolved, and approval writes the certificates there, as `spean authority
approve` does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeVar

import structlog
import yaml
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, Field

from spean.gateway import pki
from spean.gateway.audit.record import AuditRecord
from spean.gateway.authority.configuration import published_methods
from spean.gateway.authority.core import Authority
from spean.gateway.authority.joins import (
    JoinRequest,
    admit_request,
    approve,
    parse_join_request,
    pending,
    reject,
    submit,
)
from spean.gateway.authority.registry import PENDING, REGISTRY
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound, SpeanError
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import verify_global_configuration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.management.access_edit import PreconditionFailed, PreconditionRequired
from spean.gateway.management.admin_log import APPLIED, FAILED, AdminAction, AdminLog
from spean.gateway.web.roles import Principal

log = structlog.get_logger("spean.authority")

T = TypeVar("T")

MAX_VALIDITY_HOURS = 366 * 24
_ID = r"^[A-Za-z0-9._/-]{1,255}$"
_HEX = r"^[0-9A-Fa-f:]{1,160}$"


def admin_origin(instance: str) -> str:
    return f"{instance}/authority#management"


# ------------------------------------------------------------ models


class CertificateView(BaseModel):
    serial: str
    sha256: str
    subject: str
    kind: str
    not_after: str
    days_left: int
    revoked_at: str | None = None


class SubsystemRequestView(BaseModel):
    id: str
    name: str
    methods: list[str]


class RegistrationRequest(BaseModel):
    """A join request waiting for the registration officer, with everything it asks for."""

    server: str
    member: str
    member_name: str
    address: str
    clients: list[str]
    subsystems: list[SubsystemRequestView]
    member_csr: str = Field(description="the member's signing key request (PEM)")
    member_key_sha256: str
    server_csr: str = Field(description="the security server's TLS key request (PEM)")
    server_key_sha256: str


class RegistrationPolicy(BaseModel):
    approval_required: bool = Field(
        description="join requests wait for a registration officer (else admitted at once)"
    )


class JoinRequestUpload(BaseModel):
    join_request: str = Field(
        min_length=1, max_length=1_000_000, description="join-request.yaml as spean join wrote it"
    )


class Decision(BaseModel):
    server: str = Field(pattern=_ID, description="the request's security server identifier")
    validity_hours: int = Field(
        default=24,
        ge=1,
        le=MAX_VALIDITY_HOURS,
        description="validity of the configuration published after admission",
    )


class Rejection(BaseModel):
    server: str = Field(pattern=_ID, description="the request's security server identifier")
    reason: str = Field(min_length=1, max_length=2000, description="told to the member")


class Admission(BaseModel):
    member: str
    server: str
    subsystems: list[str]
    member_certificate: str
    server_certificate: str
    version: int = Field(description="the global configuration version published with it")


class Submission(BaseModel):
    pending: bool
    request: RegistrationRequest
    admission: Admission | None = None


class Rejected(BaseModel):
    server: str
    member: str
    reason: str


class MemberView(BaseModel):
    id: str
    name: str
    certificates: list[CertificateView]


class MemberAdmission(BaseModel):
    id: str = Field(pattern=_ID, description="member identifier, e.g. KH/GOV/MOH")
    name: str = Field(min_length=1, max_length=300)
    csr: str = Field(min_length=1, max_length=20_000, description="signing key request (PEM)")


class ServerAdmission(BaseModel):
    server: str = Field(pattern=_ID, description="security server identifier, KH/GOV/MOH/ss1")
    address: str = Field(min_length=3, max_length=300, description="host:port of its provider")
    csr: str = Field(min_length=1, max_length=20_000, description="TLS key request (PEM)")
    mode: Literal["new", "rotate", "replace"] = Field(
        default="new",
        description="new: a server not yet listed; rotate: list the certificate beside the"
        " server's current ones (a TLS key rotation); replace: list only this one (the server"
        " moved, or its key is lost)",
    )


class CertificateRetirement(BaseModel):
    server: str = Field(pattern=_ID, description="security server identifier")
    serial: str = Field(min_length=1, max_length=64, description="the certificate's serial (hex)")
    revoke: bool = Field(default=False, description="also revoke it (a key that may be lost)")


class ServerView(BaseModel):
    id: str
    address: str
    certificates: list[CertificateView]


class MethodView(BaseModel):
    path: str
    server_streaming: bool


class SubsystemView(BaseModel):
    id: str
    name: str
    servers: list[str]
    methods: list[MethodView]
    topics: list[str]
    described: bool


class ServiceDescription(BaseModel):
    """A subsystem's services: registered if new, its methods replaced if registered."""

    subsystem: str = Field(pattern=_ID, description="e.g. KH/GOV/MOH/nhis")
    name: str = Field(default="", max_length=300, description="used when it is new")
    servers: list[str] = Field(
        default_factory=list, max_length=20, description="hosting servers, when it is new"
    )
    file_descriptor_set: str = Field(
        min_length=1,
        max_length=8_000_000,
        description="the FileDescriptorSet of its services, base64 (protoc --descriptor_set_out)",
    )


class ServiceDescriptionResult(BaseModel):
    created: bool
    subsystem: SubsystemView


class RevocationRequest(BaseModel):
    serial: str | None = Field(default=None, pattern=_HEX, description="hexadecimal")
    thumbprint: str | None = Field(default=None, pattern=_HEX, description="SHA-256, hexadecimal")
    reason: str = Field(min_length=1, max_length=2000)


class Revocation(BaseModel):
    serial: str
    subject: str
    kind: str
    revoked_at: str
    reason: str | None = None


class PublishRequest(BaseModel):
    validity_hours: int = Field(default=24, ge=1, le=MAX_VALIDITY_HOURS)


class Publication(BaseModel):
    version: int
    issued_at: str
    expires_at: str
    members: int
    servers: int
    revoked: int


class PublicationStatus(BaseModel):
    published: Publication | None
    next_version: int


class AdminLogEntry(BaseModel):
    index: int
    action_id: str
    at: str
    principal: str
    role: str
    action: str
    subject: str
    detail: str
    status: str
    description: str


# ------------------------------------------------------------ the service


def _days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    return (not_after - now).days


def _key_sha256(csr_pem: bytes) -> str:
    """The SHA-256 of the request's public key (SubjectPublicKeyInfo), for the officer to
    compare with the one the member reads out by telephone."""
    spki = (
        pki.load_csr(csr_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).hexdigest()


def _request_view(request: JoinRequest) -> RegistrationRequest:
    subsystems = []
    for s in request.subsystems:
        methods = published_methods((), s.file_descriptor_set, SubsystemId.parse(s.id))
        subsystems.append(
            SubsystemRequestView(id=s.id, name=s.name, methods=[path for path, _ in methods])
        )
    return RegistrationRequest(
        server=request.server,
        member=request.member,
        member_name=request.member_name,
        address=request.address,
        clients=list(request.clients),
        subsystems=subsystems,
        member_csr=request.member_csr.decode(),
        member_key_sha256=_key_sha256(request.member_csr),
        server_csr=request.server_csr.decode(),
        server_key_sha256=_key_sha256(request.server_csr),
    )


class AuthorityAdmin:
    """Reads and changes one authority for its management API and console."""

    def __init__(self, authority: Authority, admin_log: AdminLog) -> None:
        self.authority = authority
        self.admin_log = admin_log
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def etag(self) -> str:
        """The ETag of the registry state: registry.yaml and the pending requests."""
        digest = hashlib.sha256()
        directory = self.authority.directory
        digest.update((directory / REGISTRY).read_bytes())
        folder = directory / PENDING
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
        return '"' + digest.hexdigest()[:32] + '"'

    def requests(self) -> list[RegistrationRequest]:
        return [_request_view(r) for r in pending(self.authority)]

    def policy(self) -> RegistrationPolicy:
        return RegistrationPolicy(approval_required=self.authority.requires_approval)

    def _certificates(self, kind: str, subject: str) -> list[CertificateView]:
        registry = self.authority.registry()
        now = dt.datetime.now(dt.UTC)
        found = []
        for issued in registry.issued:
            if issued.kind != kind or issued.subject != subject:
                continue
            not_after = dt.datetime.fromisoformat(issued.not_after)
            found.append(
                CertificateView(
                    serial=issued.serial,
                    sha256=issued.thumbprint,
                    subject=issued.subject,
                    kind=issued.kind,
                    not_after=not_after.isoformat(),
                    days_left=_days_left(not_after, now),
                    revoked_at=registry.revoked.get(issued.serial),
                )
            )
        return found

    def members(self) -> list[MemberView]:
        return [
            MemberView(id=m.id, name=m.name, certificates=self._certificates("member", m.id))
            for m in self.authority.registry().members
        ]

    def servers(self) -> list[ServerView]:
        registry = self.authority.registry()
        views = []
        for server in registry.servers:
            listed = {
                pki.thumbprint(pki.parse_certificate_pem(pem.encode()))
                for pem in [server.tls_certificate, *server.additional_tls_certificates]
            }
            certificates = [
                c for c in self._certificates("server", server.id) if c.sha256 in listed
            ]
            views.append(
                ServerView(id=server.id, address=server.address, certificates=certificates)
            )
        return views

    def subsystems(self) -> list[SubsystemView]:
        return [
            SubsystemView(
                id=s.id,
                name=s.name,
                servers=list(s.servers),
                methods=[MethodView(path=p, server_streaming=st) for p, st in s.methods],
                topics=[name for name, _, _ in s.topics],
                described=s.catalogue is not None,
            )
            for s in self.authority.registry().subsystems
        ]

    def revocations(self) -> list[Revocation]:
        registry = self.authority.registry()
        reasons: dict[str, str] = {}
        for _, record in self._actions():
            if record.method == "certificate.revoke" and record.status == APPLIED:
                reasons.setdefault(record.service, record.message)
        issued = {i.serial: i for i in registry.issued}
        return [
            Revocation(
                serial=serial,
                subject=issued[serial].subject if serial in issued else "",
                kind=issued[serial].kind if serial in issued else "",
                revoked_at=at,
                reason=reasons.get(serial),
            )
            for serial, at in sorted(registry.revoked.items(), key=lambda item: item[1])
        ]

    def publication(self) -> PublicationStatus:
        registry = self.authority.registry()
        path = self.authority.published_path
        if not path.is_file():
            return PublicationStatus(published=None, next_version=registry.next_version)
        conf = verify_global_configuration(
            path.read_bytes(), self.authority.signing_certificate, dt.datetime.now(dt.UTC)
        )
        return PublicationStatus(
            published=Publication(
                version=conf.version,
                issued_at=conf.issued_at.isoformat(),
                expires_at=conf.expires_at.isoformat(),
                members=len(conf.members),
                servers=len(conf.servers),
                revoked=len(conf.revoked_serials),
            ),
            next_version=registry.next_version,
        )

    def _actions(self) -> list[tuple[int, AuditRecord]]:
        return self.admin_log.recent(self.admin_log.store.size())

    def admin_actions(self, limit: int) -> list[AdminLogEntry]:
        return [
            AdminLogEntry(
                index=index,
                action_id=r.exchange_id,
                at=dt.datetime.fromtimestamp(r.received_at_ns / 1e9, dt.UTC).isoformat(),
                principal=r.user,
                role=r.purpose,
                action=r.method,
                subject=r.client,
                detail=r.service,
                status=r.status,
                description=r.message,
            )
            for index, r in self.admin_log.recent(limit)
        ]

    # ------------------------------------------------------------ changing

    def _change(
        self,
        principal: Principal,
        action: AdminAction,
        if_match: str | None,
        change: Callable[[], T],
    ) -> T:
        with self._lock:
            check_if_match(if_match, self.etag())
            action_id = self.admin_log.record(principal, action, APPLIED)
            try:
                result = change()
            except SpeanError as exc:
                failed = replace(action, description=f"{action.description}: failed: {exc.message}")
                self.admin_log.record(principal, failed, FAILED, action_id)
                raise
        log.info(
            "authority.management_change",
            action=action.action,
            subject=action.client,
            principal=principal.name,
            action_id=action_id,
        )
        return result

    def submit(
        self, principal: Principal, upload: JoinRequestUpload, if_match: str | None
    ) -> Submission:
        _refuse_aliases(upload.join_request)
        request = parse_join_request(upload.join_request.encode(), "the uploaded join request")
        # A request from outside never names where the authority writes (module docstring).
        request = replace(request, deliver_to="")
        view = _request_view(request)
        if self.authority.requires_approval:
            action = AdminAction(
                "registration.submit",
                request.server,
                request.member,
                f"join request of {request.member} ({request.member_name}) for"
                f" {request.server} at {request.address}, kept for approval",
            )
            self._change(principal, action, if_match, lambda: submit(self.authority, request))
            return Submission(pending=True, request=view)
        action = AdminAction(
            "registration.admit",
            request.server,
            request.member,
            f"join request of {request.member} ({request.member_name}) for {request.server}"
            f" at {request.address}, admitted at once (approval not required)",
        )
        admitted = self._change(
            principal, action, if_match, lambda: admit_request(self.authority, request)
        )
        return Submission(
            pending=False,
            request=view,
            admission=self._admission(
                request,
                admitted.member_certificate,
                admitted.server_certificate,
                admitted.subsystems,
            ),
        )

    def approve(self, principal: Principal, decision: Decision, if_match: str | None) -> Admission:
        request = self._pending(decision.server)
        action = AdminAction(
            "registration.approve",
            request.server,
            request.member,
            f"approved the join request of {request.member} ({request.member_name}) for"
            f" {request.server} at {request.address}; published for {decision.validity_hours}h",
        )
        validity = dt.timedelta(hours=decision.validity_hours)
        _, admitted = self._change(
            principal, action, if_match, lambda: approve(self.authority, decision.server, validity)
        )
        if request.deliver_to and Path(request.deliver_to).is_absolute():
            self._deliver(Path(request.deliver_to), admitted.member_certificate,
                          admitted.server_certificate)  # fmt: skip
        return self._admission(
            request, admitted.member_certificate, admitted.server_certificate, admitted.subsystems
        )

    def reject(self, principal: Principal, rejection: Rejection, if_match: str | None) -> Rejected:
        request = self._pending(rejection.server)
        action = AdminAction(
            "registration.reject",
            request.server,
            request.member,
            f"rejected the join request of {request.member} ({request.member_name}) for"
            f" {request.server}: {rejection.reason}",
        )
        self._change(principal, action, if_match, lambda: reject(self.authority, rejection.server))
        return Rejected(server=request.server, member=request.member, reason=rejection.reason)

    def set_policy(
        self, principal: Principal, policy: RegistrationPolicy, if_match: str | None
    ) -> RegistrationPolicy:
        required = policy.approval_required
        action = AdminAction(
            "registration.policy",
            self.authority.instance,
            "approval-required" if required else "approval-not-required",
            "join requests wait for a registration officer"
            if required
            else "join requests are admitted at once",
        )
        self._change(principal, action, if_match, lambda: self.authority.set_approval(required))
        return self.policy()

    def admit_member(
        self, principal: Principal, admission: MemberAdmission, if_match: str | None
    ) -> CertificateView:
        csr = admission.csr.encode()
        pki.load_csr(csr, f"the CSR for member {admission.id}")
        action = AdminAction(
            "member.admit",
            admission.id,
            _key_sha256(csr),
            f"admitted member {admission.id} ({admission.name.strip()})",
        )
        pem = self._change(
            principal,
            action,
            if_match,
            lambda: self.authority.admit_member(admission.id, admission.name, csr),
        )
        serial = pki.serial_hex(pki.parse_certificate_pem(pem).serial_number)
        return next(c for c in self._certificates("member", admission.id) if c.serial == serial)

    def describe_services(
        self, principal: Principal, description: ServiceDescription, if_match: str | None
    ) -> ServiceDescriptionResult:
        try:
            descriptors = base64.b64decode(description.file_descriptor_set, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                "file_descriptor_set must be base64 (of protoc --descriptor_set_out's file)"
            ) from None
        subsystem = description.subsystem
        created = self.authority.registry().find_subsystem(subsystem) is None
        if not created and description.servers:
            raise FailedPrecondition(
                f"subsystem {subsystem} is registered; its servers are not changed by a service"
                " description (leave servers empty)"
            )
        digest = hashlib.sha256(descriptors).hexdigest()
        action = AdminAction(
            "subsystem.register" if created else "subsystem.update",
            subsystem,
            digest,
            f"{'registered' if created else 'updated'} the services of {subsystem}"
            f" (descriptor set sha256 {digest[:16]})",
        )

        def change() -> None:
            if created:
                self.authority.add_subsystem(
                    subsystem,
                    description.name,
                    file_descriptor_set=descriptors,
                    servers=description.servers,
                )
            else:
                self.authority.update_subsystem(subsystem, file_descriptor_set=descriptors)

        self._change(principal, action, if_match, change)
        view = next(s for s in self.subsystems() if s.id == subsystem)
        return ServiceDescriptionResult(created=created, subsystem=view)

    def admit_server(
        self, principal: Principal, admission: ServerAdmission, if_match: str | None
    ) -> CertificateView:
        """Certify a security server's TLS key: a new server, a rotation or a replacement."""
        csr = admission.csr.encode()
        pki.load_csr(csr, f"the CSR for security server {admission.server}")
        action = AdminAction(
            f"server.admit.{admission.mode}",
            admission.server,
            _key_sha256(csr),
            f"certified a TLS key of {admission.server} at {admission.address} ({admission.mode})",
        )
        pem = self._change(
            principal,
            action,
            if_match,
            lambda: self.authority.admit_server(
                admission.server,
                admission.address,
                csr,
                rotate=admission.mode == "rotate",
                replace=admission.mode == "replace",
            ),
        )
        serial = pki.serial_hex(pki.parse_certificate_pem(pem).serial_number)
        return next(c for c in self._certificates("server", admission.server) if c.serial == serial)

    def retire_certificate(
        self, principal: Principal, retirement: CertificateRetirement, if_match: str | None
    ) -> ServerView:
        """End a TLS rotation's overlap: the server's certificate is no longer listed."""
        try:
            serial = int(retirement.serial.replace(":", ""), 16)
        except ValueError:
            raise InvalidArgument(f"serial {retirement.serial!r} is not hexadecimal") from None
        action = AdminAction(
            "server.retire-certificate",
            retirement.server,
            pki.serial_hex(serial),
            f"retired certificate {pki.serial_hex(serial)} of {retirement.server}"
            + (" and revoked it" if retirement.revoke else ""),
        )
        self._change(
            principal,
            action,
            if_match,
            lambda: self.authority.retire_certificate(
                retirement.server, serial=serial, revoke=retirement.revoke
            ),
        )
        return next(s for s in self.servers() if s.id == retirement.server)

    def revoke(
        self, principal: Principal, request: RevocationRequest, if_match: str | None
    ) -> Revocation:
        if (request.serial is None) == (request.thumbprint is None):
            raise InvalidArgument("give exactly one of serial or thumbprint")
        registry = self.authority.registry()
        if request.serial is not None:
            try:
                wanted = pki.serial_hex(int(request.serial.replace(":", ""), 16))
            except ValueError:
                raise InvalidArgument(f"serial {request.serial!r} is not hexadecimal") from None
            issued = next((i for i in registry.issued if i.serial == wanted), None)
        else:
            assert request.thumbprint is not None
            wanted = request.thumbprint.strip().lower().replace(":", "")
            issued = next((i for i in registry.issued if i.thumbprint == wanted), None)
        if issued is None:
            raise NotFound(f"this authority issued no certificate {wanted}")
        action = AdminAction(
            "certificate.revoke",
            issued.subject,
            issued.serial,
            request.reason,
        )
        serial = int(issued.serial, 16)
        self._change(principal, action, if_match, lambda: self.authority.revoke(serial=serial))
        return next(r for r in self.revocations() if r.serial == issued.serial)

    def publish(
        self, principal: Principal, request: PublishRequest, if_match: str | None
    ) -> Publication:
        version = self.authority.registry().next_version
        action = AdminAction(
            "configuration.publish",
            self.authority.instance,
            str(version),
            f"publish global configuration version {version}, valid {request.validity_hours}h",
        )
        validity = dt.timedelta(hours=request.validity_hours)
        self._change(principal, action, if_match, lambda: self.authority.publish(validity))
        status = self.publication()
        assert status.published is not None
        return status.published

    # ------------------------------------------------------------ internals

    def _pending(self, server: str) -> JoinRequest:
        for request in pending(self.authority):
            if request.server == server:
                return request
        raise NotFound(
            f"no join request for {server} is pending (GET /api/v1/registration-requests lists"
            " them)"
        )

    def _deliver(self, folder: Path, member_pem: bytes, server_pem: bytes) -> None:
        """Write the certificates where `spean authority admit --request` said; the
        admission stands if this fails (the answer carries them), so it is logged."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            keyfiles.write_file_atomically(folder / "signing.crt", member_pem)
            keyfiles.write_file_atomically(folder / "tls.crt", server_pem)
        except (OSError, SpeanError) as exc:
            log.warning("authority.delivery_failed", folder=str(folder), reason=str(exc))

    def _admission(
        self,
        request: JoinRequest,
        member_pem: bytes,
        server_pem: bytes,
        subsystems: tuple[str, ...],
    ) -> Admission:
        status = self.publication()
        return Admission(
            member=request.member,
            server=request.server,
            subsystems=list(subsystems),
            member_certificate=member_pem.decode(),
            server_certificate=server_pem.decode(),
            version=status.published.version if status.published else 0,
        )


def _refuse_aliases(text: str) -> None:
    """Refuse YAML anchors and aliases before the document is built: spean join writes
    none, and an alias repeated inside aliases expands a small upload into a huge
    document (the "billion laughs")."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                raise InvalidArgument(
                    "the uploaded join request uses YAML anchors or aliases; send the file"
                    " spean join wrote, unchanged"
                )
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"the uploaded join request is not valid YAML: {exc}") from None


def check_if_match(if_match: str | None, current: str) -> None:
    """Refuse a change whose If-Match is missing (428) or stale (412)."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            "this change needs an If-Match header with the ETag of the registry (any GET of"
            " the authority's API answers it), so that a concurrent change is not lost"
        )
    offered = {tag.strip() for tag in if_match.split(",")}
    if current not in offered and "*" not in offered:
        raise PreconditionFailed(
            f"the registry changed since you read it (its ETag is now {current}); read it"
            " again and repeat the change if it still applies"
        )
