"""The authority's management listener: its settings file, and starting and stopping it.

The settings are a YAML file with one ``management`` section, the same
keys as a security server's (docs/operator.md): ``listen``, ``tls`` (with
``client_ca`` for administrators' certificates), ``client_certificates``,
``api_keys``, ``audit_store`` (the signed admin log), ``oidc`` and
``max_body_bytes`` (1 MiB unless set here: a descriptor set is uploaded
whole). Relative paths are read from the file's folder. `spean authority
serve --management FILE` starts it beside the configuration's HTTP
server; `spean authority api-key` manages its keys.

`stop` closes the listener first, then the admin log, so no action is cut
off mid-record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.checkpoint import CheckpointSigner
from spean.gateway.audit.writer import CheckpointPolicy
from spean.gateway.authority.admin import AuthorityAdmin, admin_origin
from spean.gateway.authority.api import authority_app
from spean.gateway.authority.console import HOME, NAVIGATION, TEMPLATES, install_console
from spean.gateway.authority.core import Authority
from spean.gateway.authority.registry import SIGNING_KEY
from spean.gateway.config import ManagementConfig, split_address
from spean.gateway.errors import ConfigError
from spean.gateway.files import keyfiles
from spean.gateway.management.admin_log import AdminLog
from spean.gateway.web.console import Console
from spean.gateway.web.credentials import listener_setup
from spean.gateway.web.serve import WebListener

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManagementSettings:
    """The ``management`` section of the authority's settings file, and where it is."""

    section: ManagementConfig
    path: Path

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.path.parent / path

    @property
    def api_keys(self) -> Path:
        return self.resolve(self.section.api_keys)

    @property
    def audit_store(self) -> str:
        url = self.section.audit_store
        return url if "://" in url else str(self.resolve(Path(url)))


def load_settings(path: Path) -> ManagementSettings:
    """Read and check the settings file; errors name the file and the field."""
    path = path.resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the management settings: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("management"), dict):
        raise ConfigError(
            f"{path}: give a 'management' section (listen, tls, ...; docs/operator.md,"
            " 'The authority's management API')"
        )
    if set(data) != {"management"}:
        others = ", ".join(sorted(str(k) for k in data if k != "management"))
        raise ConfigError(f"{path}: unknown settings {others}; only 'management' is read")
    section = dict(data["management"])
    section.setdefault("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    try:
        config = ManagementConfig.model_validate(section)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(["management", *(str(p) for p in error["loc"])])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {where}: {message}")
        raise ConfigError("\n".join(problems)) from None
    return ManagementSettings(config, path)


def open_authority_admin_log(
    authority: Authority, settings: ManagementSettings, passphrase: bytes | None
) -> AdminLog:
    """The admin log, its checkpoints signed with the configuration-signing key."""
    key = keyfiles.load_private_key(authority.directory / SIGNING_KEY, passphrase)
    signer = CheckpointSigner(f"{authority.instance}/authority", key, authority.signing_certificate)
    store = open_store(
        settings.audit_store,
        admin_origin(authority.instance),
        checkpoints=CheckpointPolicy(signer),
    )
    return AdminLog(store)


class AuthorityManagementListener:
    """The API and the console of one authority, on a listener of their own."""

    def __init__(
        self, authority: Authority, settings: ManagementSettings, passphrase: bytes | None
    ) -> None:
        section = settings.section
        setup = listener_setup(section, settings.resolve)
        authenticator, tls = setup.authenticator, setup.tls
        self.admin_log = open_authority_admin_log(authority, settings, passphrase)
        try:
            self.admin = AuthorityAdmin(authority, self.admin_log)
            app = authority_app(self.admin, authenticator, section.max_body_bytes)
            install_console(
                app,
                Console(
                    authenticator,
                    templates=[TEMPLATES],
                    navigation=NAVIGATION,
                    title_key="authority.title",
                    secure_cookies=tls is not None,
                    oidc_login=setup.browser_login,
                    home=lambda _: HOME,
                    login_hint_key="authority.api_key_hint",
                ),
            )
            self._listener = WebListener(section.listen, tls, name="authority_management")
        except BaseException:
            self.admin_log.close()
            raise
        self._app = app
        self.port = self._listener.port
        self.scheme = self._listener.scheme
        host, _ = split_address(section.listen)
        self.url = f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        self._listener.start(self._app)

    def stop(self) -> None:
        self._listener.stop()
        self.admin_log.close()
