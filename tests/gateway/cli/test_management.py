"""`spean management api-key`: create (shown once), list (no secrets), revoke."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spean.gateway.cli import main
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role

MINIMAL = {
    "server_id": "KH/GOV/MPWT/ss1",
    "keys": {
        "tls_key": "k",
        "tls_certificate": "c",
        "signing_key": "k",
        "signing_certificate": "c",
    },
    "global_configuration": {"source": "gc", "anchor": "a", "cache": "c"},
    "consumer": {"listen": "127.0.0.1:0", "clients": [{"subsystem": "KH/GOV/MPWT/app"}]},
    "audit": {"store": "audit.sqlite"},
}


def _config(tmp_path: Path, management: bool = True) -> Path:
    document = dict(MINIMAL)
    if management:
        document["management"] = {"listen": "127.0.0.1:0"}
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert (
        main(
            [
                "management",
                "api-key",
                "create",
                "--config",
                str(config),
                "--role",
                "auditor",
                "--name",
                "monitoring",
            ]
        )
        == 0
    )
    key = capsys.readouterr().out.splitlines()[0]
    store = ApiKeyStore(tmp_path / "state" / "management-keys.json")
    principal = store.authenticate(key)
    assert principal.role is Role.AUDITOR
    key_id = key.split("_")[1]

    assert main(["management", "api-key", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed
    assert "active" in listed
    assert key not in listed

    assert main(["management", "api-key", "revoke", "--config", str(config), key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    main(["management", "api-key", "list", "--config", str(config)])
    assert "revoked 20" in capsys.readouterr().out


def test_without_a_management_section_the_command_says_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, management=False)
    code = main(
        [
            "management",
            "api-key",
            "create",
            "--config",
            str(config),
            "--role",
            "auditor",
            "--name",
            "x",
        ]
    )
    assert code != 0
    assert "there is no management section" in capsys.readouterr().err


def test_an_unknown_role_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "management",
                "api-key",
                "create",
                "--config",
                str(_config(tmp_path)),
                "--role",
                "root",
                "--name",
                "x",
            ]
        )
    assert "invalid choice: 'root'" in capsys.readouterr().err
