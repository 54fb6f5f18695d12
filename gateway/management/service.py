"""What the management API does to a running security server, and how it gets there.

`ManagementService` is the API's view of one server: it reads the server's
state through `ServerView` (a protocol `SecurityServer` satisfies, so this
package never imports the server and the server may start the API), and it
changes access rights the one way that keeps file and server equal:

1. under the configuration file's lock, re-read the file and check the
   caller's If-Match against the ETag of the rules in the file
   (412 stale, 428 missing);
2. plan the change (gateway/management/access_edit.py; a no-op changes
   nothing and logs nothing);
3. append the action to the admin log, durably (fail closed);
4. write the file back atomically, comments and other settings kept
   (gateway/files/config.py, `edit_config`);
5. reload the server from the file (`SecurityServer.reload`, SIGHUP's path),
   still under the lock, so the new rules apply to the next call without a
   restart; if the reload fails, the previous file is put back.

A failure after step 3 appends a FAILED record with the reason; the file
and the server then both hold the rules as they were.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from spean.adapters.base import Adapter
from spean.gateway import pki
from spean.gateway.audit.store import AuditStore
from spean.gateway.config import DisabledMethodConfig, ServerConfig
from spean.gateway.errors import FailedPrecondition, NotFound, SpeanError
from spean.gateway.files import keyfiles
from spean.gateway.files.config import edit_config, load_config
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.management import models
from spean.gateway.management.access_edit import (
    AccessChange,
    RulePlan,
    access_etag,
    check_if_match,
    plan_grant,
    plan_revoke,
    services_etag,
)
from spean.gateway.management.admin_log import APPLIED, FAILED, AdminAction, AdminLog
from spean.gateway.management.audit_view import AuditView
from spean.gateway.management.key_rotation import KeyRotation
from spean.gateway.management.transparency import Transparency
from spean.gateway.web.roles import Principal

log = structlog.get_logger("spean.management")


class GlobalconfView(Protocol):
    source: str

    @property
    def last_reached(self) -> dt.datetime | None: ...

    def current(self) -> GlobalConfiguration: ...


class ServerView(Protocol):
    """What the management API needs of a running security server."""

    config: ServerConfig
    consumer_port: int | None
    provider_port: int | None

    @property
    def globalconf(self) -> GlobalconfView: ...

    @property
    def audit(self) -> AuditStore: ...

    def published_adapters(self) -> Mapping[SubsystemId, Adapter]: ...

    def reload(self) -> ServerConfig: ...

    def reload_peers(self) -> None: ...


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class ManagementService:
    def __init__(self, server: ServerView, admin_log: AdminLog, audit: AuditView) -> None:
        self.server = server
        self.admin_log = admin_log
        self.audit = audit
        self.keys = KeyRotation(server, admin_log)
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def globalconf_status(self) -> models.GlobalConfigurationStatus:
        client = self.server.globalconf
        reached = client.last_reached
        refresh = self.server.config.global_configuration.refresh_seconds
        now = dt.datetime.now(dt.UTC)
        reachable = reached is not None and (now - reached).total_seconds() <= 2 * refresh
        try:
            conf = client.current()
        except SpeanError as exc:
            return models.GlobalConfigurationStatus(
                source=client.source,
                valid=False,
                version=None,
                expires_at=None,
                last_refresh=_iso(reached),
                authority_reachable=reachable,
                problem=exc.message,
            )
        return models.GlobalConfigurationStatus(
            source=client.source,
            valid=True,
            version=conf.version,
            expires_at=_iso(conf.expires_at),
            last_refresh=_iso(reached),
            authority_reachable=reachable,
            problem=None,
        )

    def services(self) -> list[models.Service]:
        config = self.server.config
        adapters = self.server.published_adapters()
        out = []
        for service in config.provider.services if config.provider else []:
            adapter = adapters.get(SubsystemId.parse(service.subsystem))
            methods = adapter.methods() if adapter is not None else {}
            disabled = {d.method: d for d in service.disabled}
            out.append(
                models.Service(
                    subsystem=service.subsystem,
                    adapter=str(service.adapter["type"]),
                    healthy=adapter is not None and adapter.health().ok,
                    methods=[
                        _method(name, kind.value, disabled.get(name))
                        for name, kind in sorted(methods.items())
                    ],
                )
            )
        return out

    def health(self) -> models.Health:
        adapters = [
            models.AdapterHealth(subsystem=str(subsystem), ok=h.ok, detail=h.detail)
            for subsystem, adapter in sorted(self.server.published_adapters().items(), key=str)
            for h in [adapter.health()]
        ]
        valid = self.globalconf_status().valid
        good = valid and all(a.ok for a in adapters)
        return models.Health(
            status="serving" if good else "degraded",
            server_id=self.server.config.server_id,
            consumer_port=self.server.consumer_port,
            provider_port=self.server.provider_port,
            global_configuration_valid=valid,
            adapters=adapters,
        )

    def certificates(self) -> list[models.Certificate]:
        config = self.server.config
        now = dt.datetime.now(dt.UTC)
        out = []
        pairs: tuple[tuple[Literal["tls", "signing"], Path], ...] = (
            ("tls", config.keys.tls_certificate),
            ("signing", config.keys.signing_certificate),
        )
        for name, path in pairs:
            cert = keyfiles.load_certificate(config.resolve(path))
            out.append(
                models.Certificate(
                    name=name,
                    subject=cert.subject.rfc4514_string(),
                    issuer=cert.issuer.rfc4514_string(),
                    sha256=pki.thumbprint(cert),
                    not_before=cert.not_valid_before_utc.isoformat(),
                    not_after=cert.not_valid_after_utc.isoformat(),
                    days_left=(cert.not_valid_after_utc - now).days,
                )
            )
        return out

    def clients(self) -> list[models.Client]:
        config = self.server.config
        now = dt.datetime.now(dt.UTC)
        out = []
        for client in config.consumer.clients if config.consumer else []:
            if client.certificate is None:
                out.append(
                    models.Client(
                        subsystem=client.subsystem,
                        certificate_sha256=None,
                        certificate_not_after=None,
                        days_left=None,
                    )
                )
                continue
            cert = keyfiles.load_certificate(config.resolve(client.certificate))
            out.append(
                models.Client(
                    subsystem=client.subsystem,
                    certificate_sha256=pki.thumbprint(cert),
                    certificate_not_after=cert.not_valid_after_utc.isoformat(),
                    days_left=(cert.not_valid_after_utc - now).days,
                )
            )
        return out

    def access(self) -> models.AccessRules:
        # Read from the file, not from memory: the ETag must match what a write compares.
        return _rules(load_config(self.server.config.path))

    def admin_actions(self, limit: int) -> list[models.AdminLogEntry]:
        return [
            models.AdminLogEntry(
                index=index,
                action_id=r.exchange_id,
                at=dt.datetime.fromtimestamp(r.received_at_ns / 1e9, dt.UTC).isoformat(),
                principal=r.user,
                role=r.purpose,
                action=r.method,
                client=r.client,
                service=r.service,
                status=r.status,
                description=r.message,
            )
            for index, r in self.admin_log.recent(limit)
        ]

    # ------------------------------------------------------------ changing

    def grant(
        self, principal: Principal, request: models.AccessChangeRequest, if_match: str | None
    ) -> models.AccessChangeResult:
        return self._change(principal, "access.grant", request, if_match)

    def revoke(
        self, principal: Principal, request: models.AccessChangeRequest, if_match: str | None
    ) -> models.AccessChangeResult:
        return self._change(principal, "access.revoke", request, if_match)

    def reload(self, principal: Principal) -> list[models.Certificate]:
        """Reload from the files, as SIGHUP does (after a key rotation); recorded first."""
        action = AdminAction("server.reload", "", "", "reload the configuration and keys")
        with self._write_lock:
            action_id = self.admin_log.record(principal, action, APPLIED)
            try:
                self.server.reload()
            except SpeanError as exc:
                failed = replace(action, description=f"{action.description}: failed: {exc.message}")
                self.admin_log.record(principal, failed, FAILED, action_id)
                raise ReloadFailed(
                    f"the server kept its running configuration: {exc.message}"
                ) from exc
        self.server.reload_peers()
        log.info("management.reloaded", principal=principal.name, action_id=action_id)
        return self.certificates()

    def _published(self, service: str) -> list[str]:
        adapter = self.server.published_adapters().get(SubsystemId.parse(service))
        if adapter is None:
            raise NotFound(f"{service} is not a service published by this server")
        return list(adapter.methods())

    def _change(
        self,
        principal: Principal,
        action: str,
        request: models.AccessChangeRequest,
        if_match: str | None,
    ) -> models.AccessChangeResult:
        change = AccessChange(request.client, request.service, tuple(request.methods))
        published = self._published(change.service)

        def plan(document: Any, current: ServerConfig) -> _Planned | None:
            rules = current.provider.access if current.provider else []
            check_if_match(if_match, access_etag(rules))
            plan = (
                plan_grant(rules, change, published)
                if action == "access.grant"
                else plan_revoke(rules, change)
            )
            if not plan.changed:
                return None
            what = (
                f"{action.split('.')[1]} {', '.join(change.methods)} for {change.client}"
                f" on {change.service}"
            )
            return _Planned(
                AdminAction(action, change.client, change.service, what),
                lambda: _apply(document, plan, change, principal),
            )

        recorded = self._write(principal, plan)
        if recorded is not None:
            log.info(
                "management.changed",
                action=action,
                principal=principal.name,
                client=change.client,
                service=change.service,
                methods=list(change.methods),
                action_id=recorded.id,
            )
        return models.AccessChangeResult(
            changed=recorded is not None,
            action_id=recorded.id if recorded else None,
            access=self.access(),
        )

    def set_method_state(
        self,
        principal: Principal,
        request: models.MethodStateChange,
        enabled: bool,
        if_match: str | None,
    ) -> models.MethodStateResult:
        """Disable a published method (with a notice for its callers) or enable it again."""
        if request.method not in self._published(request.subsystem):
            raise NotFound(f"{request.subsystem} does not publish method {request.method}")

        def plan(document: Any, current: ServerConfig) -> _Planned | None:
            assert current.provider is not None  # the service is published
            check_if_match(if_match, services_etag(current.provider.services), what="services")
            (service,) = [s for s in current.provider.services if s.subsystem == request.subsystem]
            was_disabled = any(d.method == request.method for d in service.disabled)
            if was_disabled == (not enabled):
                return None
            verb = "enable" if enabled else "disable"
            what = f"{verb} {request.method} of {request.subsystem}"
            if not enabled and request.notice:
                what += f" (notice: {request.notice})"
            return _Planned(
                AdminAction(f"service.{verb}", "", request.subsystem, what),
                lambda: _apply_method_state(document, request, enabled, principal),
            )

        recorded = self._write(principal, plan)
        if recorded is not None:
            log.info(
                "management.changed",
                action=recorded.action.action,
                principal=principal.name,
                service=request.subsystem,
                methods=[request.method],
                action_id=recorded.id,
            )
        services = self.services()
        return models.MethodStateResult(
            changed=recorded is not None,
            action_id=recorded.id if recorded else None,
            etag=self.services_etag(),
            services=services,
        )

    def services_etag(self) -> str:
        config = self.server.config
        return services_etag(config.provider.services if config.provider else [])

    def _write(
        self, principal: Principal, plan: Callable[[Any, ServerConfig], _Planned | None]
    ) -> _Recorded | None:
        """One change of server.yaml: planned against the file as it is (its ETag checked),
        recorded in the admin log, written back, then reloaded; undone if the reload fails."""
        recorded: _Recorded | None = None

        def edit(document: Any, current: ServerConfig) -> None:
            nonlocal recorded
            planned = plan(document, current)
            if planned is None:
                return
            # No record, no change: the record is durable before the file is written.
            recorded = _Recorded(
                planned.action, self.admin_log.record(principal, planned.action, APPLIED)
            )
            planned.apply()

        def reload(_: ServerConfig) -> None:
            if recorded is None:
                return
            try:
                self.server.reload()
            except SpeanError as exc:
                raise ReloadFailed(
                    "the server could not reload its configuration, so the change was undone"
                    f" (fix this and repeat it): {exc.message}"
                ) from exc

        with self._write_lock:
            try:
                edit_config(self.server.config.path, edit, after=reload)
            except SpeanError as exc:
                if recorded is not None:
                    failed = replace(
                        recorded.action,
                        description=f"{recorded.action.description}: not applied: {exc.message}",
                    )
                    self.admin_log.record(principal, failed, FAILED, recorded.id)
                    log.error(
                        "management.change_failed", action=recorded.action.action, error=exc.message
                    )
                raise
        if recorded is not None:
            self.server.reload_peers()
        return recorded

    # ------------------------------------------------------------ data subjects

    def subject_view(self, subject: str, requested_by: str, purpose: str) -> models.SubjectView:
        """Every exchange of this server that touched `subject`, proven; the look-up recorded."""
        config = self.server.config
        views = Transparency(config, self.server.audit).view(subject, requested_by, purpose)
        return models.SubjectView(
            server_id=config.server_id,
            subject_pseudonym=views.pseudonym.hex(),
            logs=[
                models.SubjectLog(
                    origin=log.proof.origin,
                    exchanges=[
                        models.SubjectExchange.model_validate(e.summary())
                        for e in log.proof.entries
                    ],
                    pending=log.proof.pending,
                    lookup_exchange_id=log.lookup_exchange_id,
                    proof=log.text.decode("utf-8"),
                )
                for log in views.logs
            ],
        )


class ReloadFailed(FailedPrecondition):
    """The file was written but the server could not reload it (the file is put back)."""


@dataclass(frozen=True, slots=True)
class _Planned:
    """A change to make: what the admin log says of it, and how the document changes."""

    action: AdminAction
    apply: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Recorded:
    """An action in the admin log, and its id there."""

    action: AdminAction
    id: str


def _method(name: str, kind: str, disabled: DisabledMethodConfig | None) -> models.Method:
    if disabled is None:
        return models.Method(method=name, kind=kind)  # type: ignore[arg-type]
    return models.Method(
        method=name,
        kind=kind,  # type: ignore[arg-type]
        enabled=False,
        notice=disabled.notice,
        disabled_by=disabled.disabled_by,
        disabled_at=disabled.disabled_at,
    )


def _apply(document: Any, plan: RulePlan, change: AccessChange, principal: Principal) -> None:
    """Carry `plan` out on the file's round-trip YAML document."""
    provider = document["provider"]
    if "access" not in provider or provider["access"] is None:
        provider["access"] = []
    rules = provider["access"]
    stamp = {
        "granted_by": principal.name,
        "granted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if plan.index is None:
        rules.append(
            {
                "client": change.client,
                "service": change.service,
                "methods": list(plan.methods),
                **stamp,
            }
        )
    elif plan.deletes:
        del rules[plan.index]
    else:
        rules[plan.index]["methods"] = list(plan.methods)
        rules[plan.index].update(stamp)


def _apply_method_state(
    document: Any, change: models.MethodStateChange, enabled: bool, principal: Principal
) -> None:
    """Add or remove the method's `disabled` entry of its service in the YAML document."""
    (service,) = [s for s in document["provider"]["services"] if s["subsystem"] == change.subsystem]
    entries = [d for d in service.get("disabled") or [] if d["method"] != change.method]
    if not enabled:
        entries.append(
            {
                "method": change.method,
                "notice": change.notice,
                "disabled_by": principal.name,
                "disabled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )
    if entries:
        service["disabled"] = entries
    elif "disabled" in service:
        del service["disabled"]


def _rules(config: ServerConfig) -> models.AccessRules:
    rules = config.provider.access if config.provider else []
    return models.AccessRules(
        etag=access_etag(rules),
        rules=[
            models.AccessRule(
                client=r.client,
                service=r.service,
                methods=list(r.methods),
                granted_by=r.granted_by,
                granted_at=r.granted_at,
            )
            for r in rules
        ],
    )
