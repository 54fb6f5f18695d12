"""docs/onboarding.md, replayed: every `$` line of its `console` blocks, exactly as written.

The story runs in a fresh folder, with the installed `spean` first on PATH
and ``SCHOOLS_DB`` naming a fresh PostgreSQL database (one per run) that holds
the page's ``sql`` block. The first console block is the demo federation,
started as the page says (in its own terminal: here a background process)
and waited for until it prints the last line the page shows. Each later line
runs in bash, in order; a line ending in ``&`` runs in the background until
the replay ends. Every command must exit 0, and every output line the page
shows must appear in the command's output (JSON lines compared as JSON). The
wall time from the ministry's first command to the last answer is printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.databases import postgres_database

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "onboarding.md"
MAX_COMMANDS = 6  # the goal: a ministry joins and is called in at most six

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True, slots=True)
class Step:
    command: str
    shown: tuple[str, ...]  # the output lines the page shows after it

    @property
    def background(self) -> bool:
        return self.command.endswith("&")


def steps(lines: list[str]) -> Iterator[Step]:
    command: str | None = None
    shown: list[str] = []
    for line in lines:
        if line.startswith("$ "):
            if command is not None:
                yield Step(command, tuple(shown))
            command, shown = line[2:].strip(), []
        elif command is not None and line.strip():
            shown.append(line.strip())
    if command is not None:
        yield Step(command, tuple(shown))


def page() -> tuple[Step, list[Step], str]:
    """The demo step, the ministry's steps, and the SQL that makes the table."""
    consoles = [list(steps(block)) for block in _blocks_of("console")]
    demo, *rest = consoles
    (sql,) = _blocks_of("sql")
    return demo[0], [step for block in rest for step in block], "\n".join(sql)


def _blocks_of(language: str) -> list[list[str]]:
    found: list[list[str]] = []
    current: list[str] | None = None
    inside = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        fence = _FENCE.match(line.strip())
        if fence is None:
            if current is not None:
                current.append(line)
            continue
        if not inside:
            inside = True
            current = [] if fence.group(1) == language else None
        else:
            inside = False
            if current is not None:
                found.append(current)
            current = None
    return found


def check_shown(step: Step, output: str) -> None:
    lines = [line.strip() for line in output.splitlines()]
    for shown in step.shown:
        if shown == "...":
            continue
        if shown.startswith("{"):
            answers = [json.loads(line) for line in lines if line.startswith("{")]
            assert json.loads(shown) in answers, f"{step.command}: {shown} not in\n{output}"
        else:
            assert shown in lines, f"{step.command}: {shown!r} not in\n{output}"


def test_the_page_is_six_commands_for_the_ministry() -> None:
    _, ministry, sql = page()
    assert len(ministry) <= MAX_COMMANDS, [s.command for s in ministry]
    assert ministry[0].command.startswith("spean join ")
    assert any(s.command.startswith("spean call ") for s in ministry)
    assert "CREATE TABLE schools" in sql
    for step in ministry:  # no port typed: each comes from a file the demo or join wrote
        assert not re.search(r"127\.0\.0\.1:[1-9]", step.command), step.command


def test_publish_table_prints_the_admission_the_page_runs_next() -> None:
    _, ministry, _ = page()
    publish = next(i for i, s in enumerate(ministry) if s.command.startswith("spean publish-table"))
    admission = ministry[publish + 1]
    assert admission.command.startswith("spean authority admit ")
    assert admission.command in ministry[publish].shown  # checked against the real output


def test_the_onboarding_page_replays_against_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_step, ministry, sql = page()
    folder = tmp_path / "work"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with postgres_database(postgres_url) as database:
        engine = create_engine(database.url)
        try:
            with engine.begin() as conn:
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(text(statement))
        finally:
            engine.dispose()
        env["SCHOOLS_DB"] = database.url
        background: list[subprocess.Popen[str]] = []
        try:
            background.append(_start_and_wait(demo_step, folder, env))
            started = time.perf_counter()
            times: list[tuple[str, float]] = []
            for step in ministry:
                begun = time.perf_counter()
                if step.background:
                    background.append(_start(step.command.removesuffix("&").strip(), folder, env))
                    continue
                result = subprocess.run(
                    ["bash", "-c", step.command],
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                output = result.stdout + result.stderr
                assert result.returncode == 0, f"$ {step.command}\n{output}"
                check_shown(step, result.stdout)
                times.append((" ".join(step.command.split()[:2]), time.perf_counter() - begun))
            wall = time.perf_counter() - started
        finally:
            for process in background:
                process.terminate()
            for process in background:
                process.wait(timeout=30)
                if process.stdout is not None:
                    process.stdout.close()
    with capsys.disabled():
        print(
            f"\ndocs/onboarding.md replayed: {len(ministry)} commands, from spean join to the"
            f" answer {wall:.1f} s wall time ("
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times)
            + ")"
        )


def _start(command: str, folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _start_and_wait(step: Step, folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the demo as the page says and wait for the last line the page shows."""
    process = _start(step.command, folder, env)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.strip() == step.shown[-1]:
            return process
    process.wait(timeout=10)
    process.stdout.close()
    raise AssertionError(f"$ {step.command} ended before {step.shown[-1]!r}:\n{''.join(seen)}")
