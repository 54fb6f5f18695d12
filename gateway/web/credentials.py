"""A management listener's credentials and TLS, from its ``management`` section.

The security server's listener and the authority's read the same section
(gateway/config.py `ManagementConfig`), each resolving relative paths
against its own file: the API key store, the roles of client certificates,
the OIDC verifier and its browser login, and the listener's TLS files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spean.gateway.config import ManagementConfig
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.auth import Authenticator, OidcVerifier
from spean.gateway.web.oidc_login import OidcLogin
from spean.gateway.web.roles import Role
from spean.gateway.web.serve import ListenerTls


@dataclass(frozen=True, slots=True)
class ListenerSetup:
    authenticator: Authenticator
    browser_login: OidcLogin | None
    """The identity provider's login for the console, when ``oidc.login`` is set."""
    tls: ListenerTls | None


def listener_setup(section: ManagementConfig, resolve: Callable[[Path], Path]) -> ListenerSetup:
    oidc = OidcVerifier(section.oidc) if section.oidc is not None else None
    authenticator = Authenticator(
        ApiKeyStore(resolve(section.api_keys)),
        certificate_roles={c.common_name: Role(c.role) for c in section.client_certificates},
        oidc=oidc,
    )
    browser_login = None
    if section.oidc is not None and section.oidc.login is not None and oidc is not None:
        browser_login = OidcLogin(section.oidc, oidc, resolve)
    tls = None
    if section.tls is not None:
        tls = ListenerTls(
            certificate=resolve(section.tls.certificate),
            key=resolve(section.tls.key),
            client_ca=resolve(section.tls.client_ca) if section.tls.client_ca else None,
        )
    return ListenerSetup(authenticator, browser_login, tls)
