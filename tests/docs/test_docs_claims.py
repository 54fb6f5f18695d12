"""What the documentation tells an operator to type or write exists.

Every `spean ...` command line in README.md and docs/*.md (in fenced code
blocks and in inline code) names subcommands and flags the CLI really has,
and every YAML example of a server configuration or an SQL mapping uses only
keys the loaders accept. A renamed flag or config key then fails here rather
than in an operator's terminal. Values are not checked: examples use
placeholders (``HOST:PORT``, ``...``) on purpose.
"""

from __future__ import annotations

import argparse
import re
import shlex
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from spean.adapters import grpc_passthrough, loader, python_adapter
from spean.adapters.sql import _mapping
from spean.gateway.cli import build_parser
from spean.gateway.config import ServerConfig

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])

_FENCE = re.compile(r"^```(\w*)\s*$")
_INLINE = re.compile(r"`(spean [^`]+)`")
_COMMAND = re.compile(r"(?:^|[\s;&|(])((?:\S*/)?spean(?:\s.*)?)$")


def _fenced(text: str) -> Iterator[tuple[str, int, str]]:
    """(language, first line number, body) of every fenced code block."""
    language: str | None = None
    start, lines = 0, list[str]()
    for number, line in enumerate(text.splitlines(), 1):
        fence = _FENCE.match(line.strip())
        if fence is None:
            if language is not None:
                lines.append(line)
            continue
        if language is None:
            language, start, lines = fence.group(1), number + 1, []
        else:
            yield language, start, "\n".join(lines)
            language = None


def _command_lines() -> Iterator[tuple[str, str]]:
    """("file:line", command) for every spean command the documents show."""
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        name = document.relative_to(REPO)
        for number, line in enumerate(text.splitlines(), 1):
            for inline in _INLINE.findall(line):
                yield f"{name}:{number}", inline
        for language, start, body in _fenced(text):
            if language not in ("", "sh", "console", "bash"):
                continue
            joined = body.replace("\\\n", " ").splitlines()
            for offset, line in enumerate(joined):
                line = line.split(" #")[0].strip().removeprefix("$ ")
                found = _COMMAND.search(line)
                if found and "next:" not in line:
                    yield f"{name}:{start + offset}", found.group(1)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _needs_subcommand(parser: argparse.ArgumentParser) -> bool:
    """Whether `parser` does nothing without a subcommand (`spean authority admit` does:
    with --request; `spean authority` does not)."""
    return any(
        isinstance(action, argparse._SubParsersAction) and action.required
        for action in parser._actions
    )


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _check_command(command: str) -> str | None:
    """Why `command` does not fit the CLI, or None when every word and flag exists."""
    # Optional parts are shown in brackets; shell operators end the command.
    cleaned = command.replace("[", " ").replace("]", " ")
    cleaned = re.split(r"\s(?:&&|\|\||\||;|&)(?:\s|$)|\s&$", cleaned)[0]
    try:
        words = iter(shlex.split(cleaned)[1:])
    except ValueError as exc:
        return f"cannot split: {exc}"
    parser = build_parser()
    flags = _flags(parser)
    for word in words:
        if word.startswith("--"):
            flag, _, value = word.partition("=")
            if flag not in flags:
                return f"no flag {flag} (known: {', '.join(sorted(flags))})"
            if flags[flag].nargs != 0 and not value:
                next(words, None)  # the flag's value, e.g. a placeholder
            continue
        children = _subparsers(parser)
        if word in children:
            parser = children[word]
            flags |= _flags(parser)
        elif children and word != "...":
            return f"no command {word!r} (known: {', '.join(sorted(children))})"
    if _needs_subcommand(parser):
        return f"incomplete: a subcommand of {parser.prog!r} is missing"
    return None


COMMANDS = sorted(set(_command_lines()))


def test_the_documents_show_commands() -> None:
    # The extraction itself must work, or every check below passes vacuously.
    assert len(COMMANDS) > 40
    assert any("audit replay" in command for _, command in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_commands_and_flags_exist(where: str, command: str) -> None:
    assert _check_command(command) is None, f"{where}: {command!r}: {_check_command(command)}"


def test_the_checker_finds_a_wrong_flag_and_a_wrong_command() -> None:
    assert "no flag --colour" in str(_check_command("spean audit verify x.zip --colour"))
    assert "no command 'verfy'" in str(_check_command("spean audit verfy x.zip"))
    assert _check_command("spean audit verify x.zip [--json]") is None


# -- configuration examples ----------------------------------------------------------


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model a field holds, directly, in a list or as an optional."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType) or origin is typing.Annotated:
        for argument in typing.get_args(annotation):
            model = _model_of(argument)
            if model is not None:
                return model
    return None


def _unknown_keys(data: object, model: type[BaseModel], where: str) -> Iterator[str]:
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            field = model.model_fields.get(str(key))
            if field is None:
                yield f"{where}.{key}"
                continue
            if key == "adapter" and isinstance(value, dict):
                allowed = ADAPTER_KEYS.get(str(value.get("type")), frozenset())
                yield from (f"{where}.adapter.{k}" for k in value if k not in allowed)
            inner = _model_of(field.annotation)
            if inner is not None:
                yield from _unknown_keys(value, inner, f"{where}.{key}")


_SERVER_KEYS = set(ServerConfig.model_fields)
# The keys each adapter type's loader accepts (adapters/loader.py and the adapters).
ADAPTER_KEYS = {
    "sql": frozenset({"type", "mapping"}),
    "grpc": grpc_passthrough._KEYS,
    "python": python_adapter._KEYS,
}
_MAPPING_KEYS = {"service", "descriptor", "methods"}


def _yaml_examples() -> Iterator[tuple[str, object]]:
    for document in DOCUMENTS:
        for language, start, body in _fenced(document.read_text(encoding="utf-8")):
            if language != "yaml":
                continue
            try:
                data = yaml.safe_load(body)
            except yaml.YAMLError:  # an excerpt with "..." elisions; checked by eye
                continue
            yield f"{document.relative_to(REPO)}:{start}", data


EXAMPLES = list(_yaml_examples())


def test_the_documents_show_yaml_examples() -> None:
    tops = [set(data) for _, data in EXAMPLES if isinstance(data, dict)]
    assert any(top & {"keys", "audit", "provider"} for top in tops)
    assert any(top >= _MAPPING_KEYS for top in tops)


def test_the_key_checker_finds_a_wrong_key() -> None:
    example = {
        "audit": {"store": "a.db", "retention": {"max_days": 3}},
        "provider": {"services": [{"adapter": {"type": "grpc", "targets": "x"}}]},
    }
    assert sorted(_unknown_keys(example, ServerConfig, "")) == [
        ".audit.retention.max_days",
        ".provider.services.adapter.targets",
    ]


@pytest.mark.parametrize(("where", "data"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_documented_configuration_keys_exist(where: str, data: object) -> None:
    if not isinstance(data, dict):
        return
    top = set(map(str, data))
    if top >= _MAPPING_KEYS:  # an SQL mapping file
        assert not top - _mapping._SERVICE_KEYS, f"{where}: {sorted(top - _mapping._SERVICE_KEYS)}"
        database = data.get("database")
        if isinstance(database, dict):
            unknown = set(map(str, database)) - _mapping._DATABASE_KEYS
            assert not unknown, f"{where}: database.{sorted(unknown)}"
        for name, method in (data.get("methods") or {}).items():
            unknown = set(map(str, method or {})) - _mapping._METHOD_KEYS
            assert not unknown, f"{where}: methods.{name}.{sorted(unknown)}"
    elif top <= _SERVER_KEYS:  # a server configuration or an excerpt of one
        assert list(_unknown_keys(data, ServerConfig, "")) == [], where


# Event names the code logs, e.g. "server.reload_failed": dotted like config paths.
_LOG_EVENTS = {
    event
    for folder in ("gateway", "adapters")
    for source in (REPO / folder).rglob("*.py")
    for event in re.findall(r'"([a-z_]+\.[a-z_.]+)"', source.read_text(encoding="utf-8"))
}


def _config_paths() -> Iterator[tuple[str, str]]:
    """("file:line", path) for inline config paths such as `limits.max_message_bytes`."""
    tops = "|".join(sorted(_SERVER_KEYS))
    pattern = re.compile(rf"`((?:{tops})(?:\.[a-z_]+)+)`")
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            for path in pattern.findall(line):
                if path in _LOG_EVENTS:  # `audit.witness_invalid` is an event, not a key
                    continue
                yield f"{document.relative_to(REPO)}:{number}", path


PATHS = sorted(set(_config_paths()))


def test_documented_configuration_paths_exist() -> None:
    assert len(PATHS) > 10  # the extraction works
    missing = []
    for where, path in PATHS:
        *parents, leaf = path.split(".")
        example: dict[str, object] = {leaf: None}
        for parent in reversed(parents):
            example = {parent: example}
        missing += [f"{where}: {path}" for _ in _unknown_keys(example, ServerConfig, "")]
    assert missing == []


def test_every_adapter_type_is_checked() -> None:
    assert set(ADAPTER_KEYS) == set(loader.ADAPTER_TYPES)


def test_documented_environment_variables_are_read() -> None:
    # An operator told to set SPEAN_SOMETHING must find something reading it.
    told = [*DOCUMENTS, *(REPO / "deploy").rglob("*.yaml")]
    named = {v for path in told for v in re.findall(r"\bSPEAN_[A-Z_]+\b", path.read_text())}
    readers = [
        *(REPO / "gateway").rglob("*.py"),
        *(REPO / "adapters").rglob("*.py"),
        *(REPO / "deploy").rglob("*.py"),
        REPO / "tests" / "conftest.py",
        REPO / ".ci" / "run",
    ]
    read = "\n".join(path.read_text(encoding="utf-8") for path in readers)
    assert "SPEAN_KEY_PASSPHRASE" in named  # the extraction works
    assert sorted(v for v in named if v not in read) == []
