"""`spean authority ...`, `spean member init` and `spean server init`, run in-process
as an operator would type them."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from spean.gateway import pki
from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.cli.authority import parse_duration
from spean.gateway.cli.member import add_server_init_arguments, cmd_server_init
from spean.gateway.errors import InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import verify_global_configuration
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server
from spean.gateway.trust import key_resolver

REPORT = "/health.v1.FacilityStats/GetMonthlyReport"


def run(*argv: str | Path) -> int:
    return main([str(arg) for arg in argv])


def server_init(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="spean server init")
    add_server_init_arguments(parser)
    return cmd_server_init(parser.parse_args([str(arg) for arg in argv]))


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No passphrase from the environment running the tests, and no process-wide logging
    configuration: it would bind this test's captured stderr for the rest of the session."""
    monkeypatch.delenv("SPEAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)


def test_a_federation_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth, moh = tmp_path / "authority", tmp_path / "moh"
    secret = tmp_path / "passphrase"
    secret.write_text("authority secret\n")

    assert (
        run("authority", "init", "--dir", auth, "--instance", "KH", "--passphrase-file", secret)
        == 0
    )
    assert "give it to every member out of band" in capsys.readouterr().out
    assert keyfiles.load_private_key(auth / "ca.key", b"authority secret")

    assert run("member", "init", "--dir", moh, "--id", "KH/GOV/MOH", "--key-type", "ed25519") == 0
    assert stat.S_IMODE((moh / "signing.key").stat().st_mode) == 0o600
    assert server_init("--dir", moh, "--id", "KH/GOV/MOH/ss1", "--address", "127.0.0.1:9443") == 0
    assert "spean authority admit server" in capsys.readouterr().out

    assert (
        run(
            "authority", "admit", "member", "--dir", auth, "--id", "KH/GOV/MOH",
            "--name", "Ministry of Health", "--csr", moh / "signing.csr",
            "--out", moh / "signing.crt", "--passphrase-file", secret,
        )
        == 0
    )  # fmt: skip
    member_cert = keyfiles.load_certificate(moh / "signing.crt")
    assert f"serial {pki.serial_hex(member_cert.serial_number)}" in capsys.readouterr().out
    assert (
        run(
            "authority", "admit", "server", "--dir", auth, "--id", "KH/GOV/MOH/ss1",
            "--address", "127.0.0.1:9443", "--csr", moh / "tls.csr",
            "--out", moh / "tls.crt", "--passphrase-file", secret,
        )
        == 0
    )  # fmt: skip
    assert (
        run(
            "authority", "add-subsystem", "--dir", auth, "--id", "KH/GOV/MOH/nhis",
            "--server", "KH/GOV/MOH/ss1", "--method", REPORT,
            "--streaming-method", "/health.v1.FacilityStats/StreamReports",
        )
        == 0
    )  # fmt: skip
    assert (
        run("authority", "publish", "--dir", auth, "--validity", "2h", "--passphrase-file", secret)
        == 0
    )

    now = dt.datetime.now(dt.UTC)
    anchor = keyfiles.load_certificate(auth / "signing.crt")
    conf = verify_global_configuration((auth / "globalconf.signed").read_bytes(), anchor, now)
    assert conf.version == 1
    assert dt.timedelta(hours=1, minutes=59) < conf.expires_at - now <= dt.timedelta(hours=2)
    nhis = SubsystemId.parse("KH/GOV/MOH/nhis")
    assert [s.id for s in conf.servers_for(nhis)] == [parse_server("KH/GOV/MOH/ss1")]
    stream = conf.method(nhis, "/health.v1.FacilityStats/StreamReports")
    assert stream is not None
    assert stream.server_streaming
    key = key_resolver(conf, now)(pki.thumbprint(member_cert))
    assert key is not None
    assert (key.member, key.algorithm) == (MemberId.parse("KH/GOV/MOH"), "EdDSA")

    capsys.readouterr()
    serial = pki.serial_hex(member_cert.serial_number)
    assert run("authority", "revoke", "--dir", auth, "--serial", serial) == 0
    assert f"revoked certificate serial {serial}" in capsys.readouterr().out
    # The passphrase may also come from the environment.
    monkeypatch.setenv("SPEAN_KEY_PASSPHRASE", "authority secret")
    assert run("authority", "publish", "--dir", auth) == 0
    conf = verify_global_configuration((auth / "globalconf.signed").read_bytes(), anchor, now)
    assert conf.version == 2
    assert conf.is_revoked(member_cert.serial_number)
    assert conf.signing_key(pki.thumbprint(member_cert)) is None


def test_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    auth = tmp_path / "authority"
    secret = tmp_path / "passphrase"
    secret.write_text("right")
    assert (
        run("authority", "init", "--dir", auth, "--instance", "KH", "--passphrase-file", secret)
        == 0
    )
    assert run("member", "init", "--dir", tmp_path / "moh", "--id", "KH/GOV/MOH") == 0
    capsys.readouterr()
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong")
    status = run(
        "authority", "admit", "member", "--dir", auth, "--id", "KH/GOV/MOH", "--name", "MoH",
        "--csr", tmp_path / "moh" / "signing.csr", "--passphrase-file", wrong,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    assert err == f"spean: error: wrong passphrase for private key {auth / 'ca.key'}\n"

    assert run("authority", "add-subsystem", "--dir", auth, "--id", "KH/GOV/MOI/idreg") == 1
    assert "its owner KH/GOV/MOI is not an admitted member" in capsys.readouterr().err
    assert run("authority", "publish", "--dir", auth, "--validity", "soon") == 1
    assert "duration 'soon'" in capsys.readouterr().err
    assert run("authority", "revoke", "--dir", auth, "--serial", "zz") == 1
    assert "is not a hexadecimal number" in capsys.readouterr().err
    assert (
        run(
            "member",
            "init",
            "--dir",
            tmp_path / "x",
            "--id",
            "KH/GOV",
            "--passphrase-file",
            tmp_path / "none",
        )
        == 1
    )
    assert "cannot read passphrase file" in capsys.readouterr().err


def test_admitted_certificate_goes_to_stdout_without_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = tmp_path / "authority"
    assert run("authority", "init", "--dir", auth, "--instance", "KH") == 0
    assert run("member", "init", "--dir", tmp_path / "moh", "--id", "KH/GOV/MOH") == 0
    capsys.readouterr()
    assert (
        run(
            "authority", "admit", "member", "--dir", auth, "--id", "KH/GOV/MOH",
            "--name", "MoH", "--csr", tmp_path / "moh" / "signing.csr",
        )
        == 0
    )  # fmt: skip
    captured = capsys.readouterr()
    cert = pki.parse_certificate_pem(captured.out.encode())
    assert pki.thumbprint(cert) in captured.err


def test_serve_until_sigterm(tmp_path: Path) -> None:
    auth = tmp_path / "authority"
    assert run("authority", "init", "--dir", auth, "--instance", "KH") == 0
    assert run("authority", "publish", "--dir", auth) == 0
    process = subprocess.Popen(
        [
            sys.executable, "-m", "spean.gateway.cli",
            "authority", "serve", "--dir", str(auth), "--port", "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:")
        url = line.split()[1]
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == (auth / "globalconf.signed").read_bytes()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", dt.timedelta(hours=24)),
        ("90s", dt.timedelta(seconds=90)),
        ("30m", dt.timedelta(minutes=30)),
        ("7d", dt.timedelta(days=7)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("3600", dt.timedelta(hours=1)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "24x", "-1h", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)
