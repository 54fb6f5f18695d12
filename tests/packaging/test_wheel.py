"""The wheel, as a ministry installs it: built from the checkout, installed into a
fresh virtual environment outside it, and the commands of docs/onboarding.md run
from there: `spean demo --once`; then, with the demo federation running, `spean
join` and `spean call`; and `spean publish-table` of a SQLite table that the
new member serves and MoH calls.

This is what `pip install spean` gives a user. An editable install hides
what the wheel forgets (package data, a module imported by a path that only
exists in the checkout), so the check runs the installed copy only: the
environment has no PYTHONPATH and its working folder is outside the checkout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Building and installing the wheel (with its dependencies) outlasts the suite's default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], dist
    )
    (built,) = dist.glob("spean-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(folder)], folder)
    _run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], folder)
    return folder


def test_the_wheel_installs_one_spean_namespace_and_its_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("spean-")}
    assert top_level == {"spean"}, "only the spean namespace is installed, no gateway/adapters"
    for needed in (
        "spean/gateway/py.typed",
        "spean/adapters/py.typed",
        "spean/gateway/demo/mappings/mpwt-vehicles.yaml",
        "spean/gateway/demo/mappings/moi-idreg.yaml",
        "spean/gateway/demo/mappings/moh-nhis.yaml",
        "spean/v1/config_pb2.py",
        "spean/demo/vehicles/v1/vehicles_pb2.py",
        # The management console's templates, catalogues and vendored script with its licence.
        "spean/gateway/web/templates/base.html",
        "spean/gateway/web/locales/km.json",
        "spean/gateway/web/static/vendor/htmx-2.0.11.min.js",
        "spean/gateway/web/static/vendor/htmx-LICENSE.txt",
        "spean/gateway/management/templates/access.html",
    ):
        assert needed in names, f"{needed} is missing from the wheel"
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)


def test_spean_demo_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import spean.gateway; print(spean.gateway.__file__)"],
        tmp_path,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), "imported from the checkout"
    result = _run(
        [str(venv / "bin" / "spean"), "demo", "--dir", str(tmp_path / "demo"), "--once"],
        tmp_path,
        timeout=180,
    )
    calls = [line.split() for line in result.stdout.splitlines() if line.startswith("  ")]
    statuses = {words[0]: words[2] for words in calls if len(words) > 3 and "KH/GOV/" in words[1]}
    assert statuses.get("GetVehicle") == "OK", result.stdout
    assert statuses.get("VerifyCitizen") == "OK", result.stdout
    assert (tmp_path / "demo" / "mpwt" / "state" / "audit.db").exists()


def test_spean_publish_table_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    """No protoc and no checkout: the installed command compiles the contract itself, and
    the installed SQL adapter serves the mapping it wrote."""
    database = tmp_path / "clinics.db"
    python = str(venv / "bin" / "python")
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE clinics (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.execute("INSERT INTO clinics VALUES (1, 'Calmette')")
    conn.close()
    result = _run(
        [str(venv / "bin" / "spean"), "publish-table", "--database", f"sqlite:///{database}",
         "--table", "clinics", "--subsystem", "KH/GOV/MOH/clinics", "--out", "published"],
        tmp_path,
    )  # fmt: skip
    assert "spean authority add-subsystem" in result.stdout
    serve = (
        "import sys; from pathlib import Path; from spean.adapters.sql import SqlAdapter;"
        " a = SqlAdapter.from_file(Path(sys.argv[1])); a.start(); print(sorted(a.methods()))"
    )
    mapping = tmp_path / "published" / "clinics-mapping.yaml"
    served = _run([python, "-c", serve, str(mapping)], tmp_path)
    assert "/clinics.v1.ClinicsRegistry/Export" in served.stdout


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def demo(venv: Path, tmp_path: Path) -> Iterator[Path]:
    """The demo federation, served by the installed `spean demo` until the test ends."""
    process = subprocess.Popen(
        [str(venv / "bin" / "spean"), "demo", "--dir", "spean-demo"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Serving until Ctrl-C"):
                break
        else:
            pytest.fail("spean demo ended before serving:\n" + "".join(lines))
        yield tmp_path / "spean-demo"
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


def test_join_and_call_run_from_the_installed_wheel(venv: Path, demo: Path) -> None:
    spean = str(venv / "bin" / "spean")
    work = demo.parent
    _run(
        [spean, "join", "--member", "KH/GOV/MOEYS", "--name", "Ministry of Education",
         "--address", "127.0.0.1:0", "--authority", "spean-demo/authority", "--dir", "moeys"],
        work,
    )  # fmt: skip
    assert (work / "moeys" / "join-request.yaml").is_file()
    called = _run(
        [spean, "call", "--config", "spean-demo/moh/server.yaml",
         "--service", "KH/GOV/MPWT/vehicles", "/vehicles.v1.VehicleRegistry/GetVehicle",
         '{"plate": "2A-1234"}'],
        work,
    )  # fmt: skip
    assert json.loads(called.stdout)["plate"] == "2A-1234"
    assert "exchange-id: " in called.stderr


def test_a_table_published_from_the_installed_wheel_is_called(venv: Path, demo: Path) -> None:
    spean = str(venv / "bin" / "spean")
    work = demo.parent
    with sqlite3.connect(work / "schools.db") as conn:
        conn.execute("CREATE TABLE schools (code TEXT PRIMARY KEY, name TEXT, pupils INTEGER)")
        conn.execute("INSERT INTO schools VALUES ('PP-001', 'Preah Sisowath', 2150)")
    conn.close()
    _run(
        [spean, "join", "--member", "KH/GOV/MOEYS", "--name", "Ministry of Education",
         "--address", "127.0.0.1:0", "--authority", "spean-demo/authority", "--dir", "moeys"],
        work,
    )  # fmt: skip
    _run(
        [spean, "publish-table", "--database", "sqlite:///schools.db", "--table", "schools",
         "--subsystem", "KH/GOV/MOEYS/schools", "--client", "KH/GOV/MOH/nhis",
         "--out", "moeys", "--config", "moeys/server.yaml"],
        work,
    )  # fmt: skip
    _run(
        [spean, "authority", "admit", "--dir", "spean-demo/authority",
         "--request", "moeys/join-request.yaml", "--subsystem", "KH/GOV/MOEYS/schools",
         "--descriptor-set", "moeys/schools.pb"],
        work,
    )  # fmt: skip
    server = subprocess.Popen(
        [spean, "server", "run", "--config", "moeys/server.yaml"],
        cwd=work,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        called = _run(
            [spean, "call", "--config", "spean-demo/moh/server.yaml",
             "--service", "KH/GOV/MOEYS/schools", "--wait", "30s",
             "/schools.v1.SchoolsRegistry/Get", '{"code": "PP-001"}'],
            work,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert json.loads(called.stdout)["name"] == "Preah Sisowath"
