"""`spean authority serve --management FILE` and `spean authority api-key`, as run by hand.

The authority's keys are encrypted; the command is a real process, given the
passphrase in its file, serving the configuration over HTTP and the
management API and console over TLS; a key made with `spean authority
api-key create` publishes through it and a revoked key is refused at once.
A settings file that is wrong stops the command naming the file and the
field.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spean.gateway.authority.listener import load_settings
from spean.gateway.cli import main
from spean.gateway.errors import ConfigError
from tests.support.authority_desk import prepare_desk
from tests.support.servers import REPO

PASSPHRASE = b"correct horse battery staple"


def _key(settings: Path, role: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    capsys.readouterr()  # what came before
    assert main(["authority", "api-key", "create", "--management", str(settings),
                 "--role", role, "--name", f"ops {role}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    key = next(line for line in out.splitlines() if line.startswith("spk_"))
    key_id = key.split("_")[1]
    return key, key_id


def test_serve_with_management_publishes_with_a_key_and_refuses_a_revoked_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = prepare_desk(tmp_path, PASSPHRASE)
    (tmp_path / "passphrase").write_bytes(PASSPHRASE + b"\n")
    key, key_id = _key(desk.settings, "system-administrator", capsys)
    process = subprocess.Popen(
        [sys.executable, "-m", "spean.gateway.cli", "authority", "serve",
         "--dir", str(desk.authority.directory), "--port", "0",
         "--management", str(desk.settings), "--passphrase-file", str(tmp_path / "passphrase")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        found = re.search(r"on https://127\.0\.0\.1:(\d+)/console", lines[1])
        assert lines[0].startswith("serving http://"), lines
        assert found is not None, lines
        desk.port = int(found.group(1))
        with desk.client(key) as client:
            status = client.get("/global-configuration")
            assert status.status_code == 200, status.text
            etag = status.headers["etag"]
            published = client.post("/publications", json={}, headers={"If-Match": etag})
            assert published.status_code == 200, published.text
            assert published.json()["version"] == desk.published().version == 2
            assert main(["authority", "api-key", "revoke", "--management", str(desk.settings),
                         key_id]) == 0  # fmt: skip
            refused = client.get("/members")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0


def test_api_keys_are_listed_without_their_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = prepare_desk(tmp_path)
    key, key_id = _key(desk.settings, "auditor", capsys)
    assert main(["authority", "api-key", "list", "--management", str(desk.settings)]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing
    assert "ops auditor" in listing
    assert key.split("_")[2] not in listing


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"listen": "127.0.0.1:0"}, "give a 'management' section"),
        ({"management": {"listen": "127.0.0.1:0"}, "server_id": "x"}, "unknown settings server_id"),
        ({"management": {"listen": "10.1.2.3:8443"}}, "is not loopback: configure management.tls"),
        (
            {"management": {"listen": "127.0.0.1:0", "max_body_bytes": 1}},
            "management.max_body_bytes",
        ),
    ],
)
def test_a_wrong_settings_file_is_refused_naming_the_field(
    tmp_path: Path, document: dict[str, object], named: str
) -> None:
    path = tmp_path / "management.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert str(path) in refused.value.message
    assert named in refused.value.message


def test_relative_paths_are_read_from_the_settings_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "management.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"management": {"listen": "127.0.0.1:0"}}))
    settings = load_settings(path)
    assert settings.api_keys == tmp_path / "etc" / "state" / "management-keys.json"
    assert settings.audit_store == str(tmp_path / "etc" / "state" / "management-audit.sqlite")
    assert settings.section.max_body_bytes == 1024 * 1024
