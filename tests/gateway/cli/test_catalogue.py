"""`spean catalogue serve` beside the demo authority, over a loopback socket, following a
publication made with `spean authority describe` and `publish`; and its refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.demo.ministries import build_demo


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No process-wide logging configuration from an in-process command."""
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_catalogue_serves_the_demo_and_follows_a_new_publication(tmp_path: Path) -> None:
    build_demo(tmp_path / "demo")
    authority = tmp_path / "demo" / "authority"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "spean.gateway.cli", "catalogue", "serve",
            "--authority", str(authority), "--port", "0", "--refresh-seconds", "0.2",
            "--endpoint", "127.0.0.1:8443",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        api = line.split()[1]
        assert get(api)["services"] == 5
        found = get(f"{api}/services?" + urllib.parse.urlencode({"q": "សុខាភិបាល"}))
        assert [s["member"] for s in found["services"]] == ["KH/GOV/MOH"]

        metadata = yaml.safe_load(
            (
                Path(__file__).resolve().parents[3] / "gateway/demo/metadata/moh-nhis.yaml"
            ).read_text()
        )
        metadata["topics"] = ["health", "statistics", "hospitals"]
        path = tmp_path / "moh.yaml"
        path.write_text(yaml.safe_dump(metadata, allow_unicode=True), encoding="utf-8")
        assert main(
            ["authority", "describe", "--dir", str(authority), "--subsystem", "KH/GOV/MOH/nhis",
             "--file", str(path)]
        ) == 0  # fmt: skip
        assert main(["authority", "publish", "--dir", str(authority)]) == 0
        deadline = time.monotonic() + 10
        while get(api)["version"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(api)["version"] == 2
        assert get(f"{api}/services?topic=hospitals")["total"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close() if process.stdout else None


def test_describe_with_a_wrong_file_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_demo(tmp_path / "demo")
    path = tmp_path / "bad.yaml"
    path.write_text("title: {en: x}\ndescription: {en: y}\ntopics: [x]\n", encoding="utf-8")
    code = main(
        ["authority", "describe", "--dir", str(tmp_path / "demo" / "authority"),
         "--subsystem", "KH/GOV/MOH/nhis", "--file", str(path)]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"spean: error: {path}: ")
    assert "data_class: Field required" in err
    assert "contacts: Field required" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--source", "x.signed"], "--source needs --anchor"),
        (["--source", "x.signed", "--anchor", "a.crt"], "cannot read"),
    ],
)
def test_serve_refuses_an_incomplete_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["catalogue", "serve", *args, "--port", "0"]) == 1
    assert says in capsys.readouterr().err
