"""A federation authority with its management API and console on, as the tests see it.

`authority_desk` sets up what the authority's staff would: an authority
directory (approval required), the administrators' own CA with a TLS
certificate for the listener on 127.0.0.1 and client certificates for a
registration officer and a system administrator, API keys of every role,
the settings file, and the listener started through
`AuthorityManagementListener` (what `spean authority serve --management`
runs). `join` runs the real `spean join` against the authority's folder and
answers the join request it wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from spean.gateway import pki
from spean.gateway.authority import Authority
from spean.gateway.authority.listener import AuthorityManagementListener, load_settings
from spean.gateway.cli import main
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role
from tests.support.management import Admin, _certificate, _write_pair

OFFICER_CN = "officer.authority.gov.kh"
SYSADMIN_CN = "sysadmin.authority.gov.kh"


@dataclass
class Desk:
    """The authority and what its staff hold to reach its management API."""

    authority: Authority
    settings: Path
    ca: Path
    access: Admin  # the listener's certificate and the HTTPS clients
    officer_cert: tuple[Path, Path]
    sysadmin_cert: tuple[Path, Path]
    keys: dict[Role, str] = field(default_factory=dict)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, key: str | None = None, cert: tuple[Path, Path] | None = None) -> httpx.Client:
        """A real HTTPS client trusting exactly the administrators' CA."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1", verify=context, headers=headers, timeout=30.0
        )

    def published(self) -> GlobalConfiguration:
        return verify_global_configuration(
            self.authority.published_path.read_bytes(),
            self.authority.signing_certificate,
            dt.datetime.now(dt.UTC),
        )


def prepare_desk(folder: Path, passphrase: bytes | None = None) -> Desk:
    """The authority, the administrators' certificates, API keys and the settings file."""
    authority = Authority.init(folder / "authority", "KH", passphrase)
    authority.set_approval(True)
    authority.publish()
    admins = folder / "admins"
    admins.mkdir()
    ca_key = pki.generate_key()
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = _certificate("Authority administrators CA", ca_key, None, ca_key, ca=True)
    keyfiles.write_certificate(admins / "ca.crt", ca)

    def issued(cn: str, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _write_pair(admins, cn, key, _certificate(cn, key, ca, ca_key, server=server))

    listener_cert, _ = issued("listener", server=True)
    settings = folder / "management.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "management": {
                    "listen": "127.0.0.1:0",
                    "tls": {
                        "certificate": "admins/listener.crt",
                        "key": "admins/listener.key",
                        "client_ca": "admins/ca.crt",
                    },
                    "client_certificates": [
                        {"common_name": OFFICER_CN, "role": "registration-officer"},
                        {"common_name": SYSADMIN_CN, "role": "system-administrator"},
                    ],
                }
            }
        )
    )
    loaded = load_settings(settings)
    store = ApiKeyStore(loaded.api_keys)
    keys = {
        role: store.create(f"test {role.value}", role)[0]
        for role in Role
        if role is not Role.DATA_SUBJECT  # only an identity provider names a person
    }
    access = Admin(
        config=settings,
        ca=admins / "ca.crt",
        listener_cert=listener_cert,
        admin_cert=issued(SYSADMIN_CN),
        auditor_cert=issued("auditor.authority.gov.kh"),
        stranger_cert=issued("stranger.authority.gov.kh"),
    )
    desk = Desk(
        authority=authority,
        settings=settings,
        ca=admins / "ca.crt",
        access=access,
        officer_cert=issued(OFFICER_CN),
        sysadmin_cert=access.admin_cert,
        keys=keys,
    )
    return desk


@contextlib.contextmanager
def authority_desk(folder: Path) -> Iterator[Desk]:
    """`prepare_desk`, its listener started in this process (as `serve --management` does)."""
    desk = prepare_desk(folder)
    listener = AuthorityManagementListener(desk.authority, load_settings(desk.settings), None)
    listener.start()
    desk.port = desk.access.port = listener.port
    try:
        yield desk
    finally:
        listener.stop()


def join(desk: Desk, folder: Path, member: str, name: str, client: str) -> Path:
    """Run `spean join` for a new member against the authority's folder; the request file."""
    code = main(
        [
            "join",
            "--member",
            member,
            "--name",
            name,
            "--server",
            "ss1",
            "--address",
            "127.0.0.1:0",
            "--client",
            client,
            "--authority",
            str(desk.authority.directory),
            "--dir",
            str(folder),
        ]
    )
    assert code == 0
    return folder / "join-request.yaml"
