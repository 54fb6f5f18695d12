"""`spean publish-table`, run in-process as an operator would type it, on a SQLite file."""

from __future__ import annotations

import shlex
import socket
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from spean.gateway.authority import Authority
from spean.gateway.cli import build_parser, main
from spean.gateway.cli import member as member_cli
from spean.gateway.demo.ministries import build_demo

SCHEMA = """
CREATE TABLE clinics (
    id INTEGER PRIMARY KEY,
    name VARCHAR(80) NOT NULL,
    opened DATE,
    beds INTEGER
);
INSERT INTO clinics VALUES (1, 'Calmette', '1959-01-01', 700), (2, 'Kantha Bopha', NULL, NULL);
CREATE VIEW open_clinics AS SELECT id AS clinic, name FROM clinics WHERE opened IS NOT NULL;
"""


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "clinics.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
    conn.close()
    return f"sqlite:///{path}"


def publish(database: str, out: Path, *extra: str) -> int:
    return main(
        ["publish-table", "--database", database, "--subsystem", "KH/GOV/MOH/clinics",
         "--out", str(out), *extra]
    )  # fmt: skip


def test_it_prints_what_it_wrote_the_entries_and_the_next_command(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = publish(
        database, out, "--table", "clinics", "--package", "clinics_cli.v1",
        "--client", "KH/GOV/MPWT/app",
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.startswith(
        "published clinics as KH/GOV/MOH/clinics: clinics_cli.v1.ClinicsRegistry\n"
    )
    for name in ("clinics_cli/v1/clinics.proto", "clinics_cli/v1/clinics_pb2.py", "clinics.pb",
                 "clinics-mapping.yaml", "clinics-server.yaml"):  # fmt: skip
        assert (out / name).is_file()
        assert f"  {out / name}\n" in printed
    fragment = yaml.safe_load((out / "clinics-server.yaml").read_text(encoding="utf-8"))
    assert fragment["provider"]["access"][0]["client"] == "KH/GOV/MPWT/app"
    assert "    - subsystem: KH/GOV/MOH/clinics\n" in printed
    command = printed.rsplit("copy the .pb there):\n  ", 1)[1].strip()
    words = shlex.split(command)
    assert words[:5] == ["spean", "authority", "add-subsystem", "--dir", "AUTHORITY_DIR"]
    args = build_parser().parse_args(words[1:])  # the authority's own parser takes it
    assert args.id == "KH/GOV/MOH/clinics"
    assert args.descriptor_set == out / "clinics.pb"
    assert args.method == [
        "/clinics_cli.v1.ClinicsRegistry/Get",
        "/clinics_cli.v1.ClinicsRegistry/List",
    ]
    assert args.streaming_method == ["/clinics_cli.v1.ClinicsRegistry/Export"]


def test_a_rerun_reports_the_changes_and_a_breaking_one_exits_1_naming_it(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert publish(database, out, "--table", "clinics", "--package", "clinics_rerun.v1") == 0
    assert publish(database, out, "--table", "clinics", "--package", "clinics_rerun.v1") == 0
    assert "changes since the previous contract:\n  none\n" in capsys.readouterr().out
    code = publish(
        database, out, "--table", "clinics", "--package", "clinics_rerun.v1", "--exclude", "beds"
    )
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.startswith(
        "spean: error: the new contract of clinics would break its callers:"
        " field clinics_rerun.v1.Record.beds (4) removed. Nothing was written."
    )
    code = publish(
        database, out, "--table", "clinics", "--package", "clinics_rerun.v1",
        "--exclude", "beds", "--allow-breaking",
    )  # fmt: skip
    assert code == 0
    assert "  breaking: field clinics_rerun.v1.Record.beds (4) removed\n" in capsys.readouterr().out
    assert "reserved 4;" in (out / "clinics_rerun/v1/clinics.proto").read_text(encoding="utf-8")


def test_a_view_needs_its_key_named(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert publish(database, out, "--table", "open_clinics", "--package", "openc.v1") == 1
    assert "view open_clinics has no primary key" in capsys.readouterr().err
    code = publish(
        database, out, "--table", "open_clinics", "--package", "openc.v1", "--key", "clinic"
    )
    assert code == 0
    mapping = yaml.safe_load((out / "open_clinics-mapping.yaml").read_text(encoding="utf-8"))
    assert mapping["methods"]["List"]["page"]["key"] == ["clinic"]


def test_config_merges_into_server_yaml_and_names_the_server_in_the_next_command(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        "server_id: KH/GOV/MOH/ss1\nprovider:\n  listen: 127.0.0.1:9443\n", encoding="utf-8"
    )
    code = publish(
        database, tmp_path / "published", "--table", "clinics", "--package", "clinics_cfg.v1",
        "--config", str(config),
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{config}:\n  provider.services: added KH/GOV/MOH/clinics\n" in printed
    assert "--server KH/GOV/MOH/ss1" in printed
    provider = yaml.safe_load(config.read_text(encoding="utf-8"))["provider"]
    # Relative to server.yaml, as the server reads it.
    assert provider["services"][0]["adapter"]["mapping"] == "published/clinics-mapping.yaml"


def test_into_a_joined_folder_the_next_command_admits_the_join_request_with_this_service(
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPEAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)
    authority = build_demo(tmp_path / "demo").root / "authority"
    folder = tmp_path / "moe"
    joined = main(
        ["join", "--member", "KH/GOV/MOE", "--name", "Ministry of Education",
         "--address", "127.0.0.1:0", "--authority", str(authority), "--dir", str(folder)]
    )  # fmt: skip
    assert joined == 0
    argv = ["publish-table", "--database", database, "--table", "clinics", "--subsystem",
            "KH/GOV/MOE/clinics", "--package", "clinics_join.v1", "--client", "KH/GOV/MOH/nhis",
            "--out", str(folder), "--config", str(folder / "server.yaml")]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0

    command = capsys.readouterr().out.rsplit("with this service):\n  ", 1)[1].strip()
    words = shlex.split(command)
    assert words[:3] == ["spean", "authority", "admit"]
    args = build_parser().parse_args(words[1:])
    assert args.dir == authority
    assert args.request == folder / "join-request.yaml"
    assert args.subsystem == "KH/GOV/MOE/clinics"
    assert args.descriptor_set == folder / "clinics.pb"
    assert main(words[1:]) == 0  # the printed command admits the join as it stands
    registry = Authority.open(authority).registry()
    assert any(s.id == "KH/GOV/MOE/clinics" for s in registry.subsystems)

    capsys.readouterr()
    assert main(argv) == 0  # admitted since: a later run changes a registered contract
    command = capsys.readouterr().out.rsplit("copy the .pb there):\n  ", 1)[1].strip()
    words = shlex.split(command)
    assert words[:5] == ["spean", "authority", "update-subsystem", "--dir", "AUTHORITY_DIR"]
    words[4] = str(authority)
    assert main(words[1:]) == 0  # the printed command replaces the contract as it stands
    entry = Authority.open(authority).registry().find_subsystem("KH/GOV/MOE/clinics")
    assert entry is not None
    assert entry.file_descriptor_set == (folder / "clinics.pb").read_bytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--table", "wards"],
            "no table or view 'wards' in the database (it has: clinics, open_clinics)",
        ),
        (
            ["--table", "clinics", "--exclude", "nope"],
            "--exclude 'nope': clinics has no such column",
        ),
        (["--table", "clinics", "--subsystem", "KH/GOV"], "subsystem"),
        (
            ["--table", "clinics", "--package", "json.v1"],
            "the package json.v1 starts with 'json', the name of an installed Python module",
        ),
    ],
)
def test_mistakes_exit_1_with_one_line_saying_what_to_fix(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert publish(database, tmp_path / "out", *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("spean: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists(), "nothing is written on a refusal"


def test_a_missing_sqlite_file_is_refused_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    assert publish(f"sqlite:///{missing}", tmp_path / "out", "--table", "t") == 1
    assert f"SQLite database {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("oracle://scott@db/orcl", "--database: oracle databases are not supported"),
        ("postgres://reader@db/registry", "--database: write postgresql:// (SQLAlchemy's name)"),
        ("postgresql+nosuch://reader@db/x", "driver 'nosuch' is not supported for postgresql"),
    ],
)
def test_an_engine_or_driver_spean_does_not_run_is_refused(
    url: str, complaint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(url, tmp_path / "out", "--table", "t") == 1
    err = capsys.readouterr().err
    assert complaint in err
    assert "Traceback" not in err


def test_a_database_server_nobody_listens_on_is_named_with_where_to_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a loopback port free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert publish(f"postgresql://reader@127.0.0.1:{port}/registry", tmp_path / "out",
                   "--table", "t") == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"cannot read 't' from the database postgresql+psycopg://reader@127.0.0.1:{port}" in err
    assert "check the URL's host, port, user, password and database name" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.mariadb
def test_a_wrong_password_is_named_and_never_shown(
    mariadb_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = make_url(mariadb_url).set(password="not-the-password")
    assert publish(wrong.render_as_string(hide_password=False), tmp_path / "out",
                   "--table", "t") == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "Access denied" in err
    assert "check the URL's host, port, user, password" in err
    assert "not-the-password" not in err


@pytest.mark.parametrize(
    ("url", "driver", "extra"),
    [
        ("postgresql://reader@127.0.0.1/registry", "psycopg", "postgres"),
        ("mysql://reader@127.0.0.1/registry", "pymysql", "mysql"),
    ],
)
def test_a_driver_not_installed_names_the_extra_to_install(
    url: str,
    driver: str,
    extra: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, driver, None)  # as if the extra were not installed
    assert publish(url, tmp_path / "out", "--table", "t") == 1
    err = capsys.readouterr().err
    assert f"driver ({driver}) is not installed: pip install 'spean[{extra}]'" in err


def test_the_timezone_is_written_and_kept_by_a_rerun_and_a_wrong_one_is_refused(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ("--table", "clinics", "--package", "clinics_tz.v1")
    assert publish(database, out, *args, "--timezone", "Asia/Phnom_Penh") == 0
    assert publish(database, out, *args) == 0
    mapping = yaml.safe_load((out / "clinics-mapping.yaml").read_text(encoding="utf-8"))
    assert mapping["timezone"] == "Asia/Phnom_Penh"
    capsys.readouterr()
    assert publish(database, out, *args, "--timezone", "Asia/Phnom_Pen") == 1
    assert "--timezone 'Asia/Phnom_Pen' is not a time zone" in capsys.readouterr().err
