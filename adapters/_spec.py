"""Reading an `adapter:` entry: shared by the loaders of the gRPC and Python adapters.

Every function here takes the entry as parsed YAML and `where`, the dotted
place of the entry (``/etc/spean/server.yaml: provider.services[0].adapter``),
and raises `ConfigError` whose message starts with ``where.<key>:`` so the
operator knows which file and which field to fix. The SQL adapter's mapping
file keeps the same keys at the top of its own file; it passes the file as
`where` with ``key_sep=": "`` (``mpwt.yaml: descriptor: ...``). Nothing here
reaches the network or a database; importing Python modules is the only side
effect.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from spean.gateway.errors import ConfigError

__all__ = [
    "check_keys",
    "find_service",
    "import_module",
    "optional_file",
    "required_text",
    "use_import_folders",
    "use_python_path",
]

log = structlog.get_logger("spean.adapters")


def check_keys(spec: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """Refuse keys the adapter type does not know (a typo must not be ignored)."""
    unknown = sorted(str(key) for key in spec if key not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for a {spec['type']} adapter;"
            f" allowed: {', '.join(sorted(allowed))}"
        )


def required_text(spec: Mapping[str, Any], key: str, where: str, example: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: required, a non-empty string such as {example!r}")
    return value.strip()


def optional_file(spec: Mapping[str, Any], key: str, base_dir: Path, where: str) -> bytes | None:
    """The bytes of the file `spec[key]` names (relative to `base_dir`), or None when absent."""
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: must be the path of a file")
    path = Path(value.strip())
    path = path if path.is_absolute() else base_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}.{key}: cannot read {path}: {exc.strerror}") from exc


def use_python_path(spec: Mapping[str, Any], base_dir: Path, where: str) -> None:
    """Put the folders of `python_path` (relative to `base_dir`) first on the import path.

    An IT team keeps its generated code and servicer beside the security
    server's configuration; this is how the server finds them. The folders are
    added once and stay for the life of the process.
    """
    value = spec.get("python_path", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}.python_path: must be a folder or a list of folders")
    folders = [Path(entry.strip()) for entry in value]
    use_import_folders(
        [f if f.is_absolute() else (base_dir / f).resolve() for f in folders],
        f"{where}.python_path",
    )


def use_import_folders(folders: Sequence[Path], where: str) -> None:
    """Put `folders` (absolute, already resolved) first on the import path, in order.

    `where` names the setting in errors (``server.yaml: ...adapter.python_path``).
    """
    for folder in reversed(folders):
        if not folder.is_dir():
            raise ConfigError(f"{where}: {folder} is not a folder")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def import_module(name: str, where: str) -> ModuleType:
    """Import the operator's module `name`; any failure is a `ConfigError` at `where`.

    This is a documented boundary: the module's top-level code is the
    operator's, so whatever it raises is reported (and logged in full) as a
    configuration mistake rather than escaping as a crash.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import Python module {name!r} ({exc}); is it generated"
            " ('make proto') and on the import path (python_path)?"
        ) from exc
    except Exception as exc:
        log.exception("adapter.import_failed", module=name, where=where)
        raise ConfigError(f"{where}: importing Python module {name!r} failed: {exc!r}") from exc


def find_service(
    descriptor: str, service: str, where: str, *, key_sep: str = "."
) -> ServiceDescriptor:
    """The service `service` (full name) defined in the generated `_pb2` module `descriptor`.

    Errors name ``where + key_sep + "descriptor"`` (or ``"service"``); the SQL
    mapping, whose keys sit at the top of its file, passes ``key_sep=": "``.
    """
    at_descriptor, at_service = f"{where}{key_sep}descriptor", f"{where}{key_sep}service"
    module = import_module(descriptor, at_descriptor)
    file = getattr(module, "DESCRIPTOR", None)
    if not isinstance(file, FileDescriptor):
        raise ConfigError(
            f"{at_descriptor}: {descriptor} is not a generated _pb2 module (no file descriptor)"
        )
    services: Mapping[str, ServiceDescriptor] = file.services_by_name
    for candidate in services.values():
        if candidate.full_name == service:
            if any(m.client_streaming for m in candidate.methods):
                streaming = [m.name for m in candidate.methods if m.client_streaming]
                log.warning("adapter.client_streaming_skipped", service=service, methods=streaming)
            return candidate
    offered = ", ".join(s.full_name for s in services.values())
    raise ConfigError(
        f"{at_service}: {service!r} is not defined in {descriptor}"
        f" (it defines: {offered or 'no service'})"
    )
