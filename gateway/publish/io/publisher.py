"""Publishing one table: read it, build and compile its contract, compare, write the files.

`publish(request)` is the whole of `spean publish-table` but the printing.
Order of work, so that a refusal changes nothing on disk:

1. read the table's shape (`introspect.read_table`);
2. read the previous contract from ``<out>/<table>.pb`` when there is one and
   build the new contract with its numbering (field numbers stay stable); a
   package named like an installed Python module (``json.v1``) is refused,
   since its generated module could not be imported;
3. compile the new .proto in a temporary folder;
4. compare with the previous contract: a breaking change refuses the run
   (`FailedPrecondition`, every breaking change named) unless allowed;
5. only then write, each file atomically: the .proto and the generated
   module under ``<out>/<package path>/``, the descriptor set, the SQL
   mapping, the server.yaml fragment (its paths relative to --out), and a
   password file when the URL carried a password (mode 0600: the mapping
   names it, never holds it);
6. with `config`, merge the entries into that server.yaml (`config_merge`),
   the mapping's path relative to it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from spean.adapters.sql._mapping import explicit_driver
from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.files.keyfiles import write_file_atomically
from spean.gateway.publish.contract import (
    Contract,
    Numbering,
    Options,
    build_contract,
    mapping_document,
    numbering_of,
    server_entries,
)
from spean.gateway.publish.diff import Change, compare
from spean.gateway.publish.io.config_merge import merge_into
from spean.gateway.publish.io.introspect import read_table
from spean.gateway.publish.io.protoc import compile_proto, main_file
from spean.gateway.publish.proto_text import proto_text
from spean.gateway.publish.typemap import proto_name

__all__ = ["Outcome", "Request", "publish"]


@dataclass(frozen=True, slots=True)
class Request:
    database: str
    table: str
    options: Options
    out: Path
    allow_breaking: bool = False
    config: Path | None = None
    schema: str | None = None
    timezone: str | None = None  # of naive date-times; None: as before, else UTC


@dataclass(frozen=True, slots=True)
class Outcome:
    contract: Contract
    previous: bool  # a previous contract was found in --out
    changes: tuple[Change, ...]
    written: tuple[Path, ...]
    descriptor_set: Path
    entries: dict[str, list[dict[str, object]]]
    config_notes: tuple[str, ...]
    server_id: str | None  # from --config, for the next command


def publish(request: Request) -> Outcome:
    url = _url(request.database)
    table = read_table(url, request.table, request.schema)
    out = request.out.resolve()
    stem = proto_name(table.name)
    descriptor_path = out / f"{stem}.pb"
    old = _previous(descriptor_path)
    contract = build_contract(
        table, request.options, numbering_of(old) if old is not None else Numbering()
    )
    _refuse_shadowed(contract.package)
    text = proto_text(contract)
    compiled = compile_proto(text, contract.proto_file)
    new = main_file(compiled.descriptor_set)
    assert new is not None, "a compiled contract holds its own file"
    changes = compare(old, new) if old is not None else ()
    breaking = [change for change in changes if change.breaking]
    if breaking and not request.allow_breaking:
        raise FailedPrecondition(
            f"the new contract of {table.name} would break its callers: "
            + "; ".join(change.what for change in breaking)
            + ". Nothing was written. Publish the new table as a new contract (another --out"
            " and --package, e.g. a v2 beside v1), or rerun with --allow-breaking once every"
            " caller is ready"
        )
    mapping_path = out / f"{stem}-mapping.yaml"
    fragment_path = out / f"{stem}-server.yaml"
    proto_path = out / contract.proto_file
    module_path = out / contract.module.replace(".", "/")
    module_path = module_path.with_name(module_path.name + ".py")
    database, secret = _database_entry(url, out, stem)
    zone = _timezone(request.timezone, mapping_path)
    mapping = mapping_document(contract, database, zone)
    config = request.config.resolve() if request.config is not None else None
    # The fragment and the printed entries read as if server.yaml were in --out; the
    # merged ones are relative to the server.yaml named, as the server resolves them.
    entries = server_entries(contract, mapping_path.name)
    proto_path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if secret is not None:
        write_file_atomically(secret[0], secret[1].encode("utf-8") + b"\n", mode=0o600)
        written.append(secret[0])
    for path, data in (
        (proto_path, text.encode("utf-8")),
        (module_path, compiled.python_module),
        (descriptor_path, compiled.descriptor_set),
        (mapping_path, _yaml(mapping)),
        (fragment_path, _yaml({"provider": entries})),
    ):
        write_file_atomically(path, data)
        written.append(path)
    notes: tuple[str, ...] = ()
    server_id = None
    if config is not None:
        merged = server_entries(contract, os.path.relpath(mapping_path, config.parent))
        notes, server_id = merge_into(config, merged)
    return Outcome(
        contract=contract,
        previous=old is not None,
        changes=changes,
        written=tuple(written),
        descriptor_set=descriptor_path,
        entries=entries,
        config_notes=notes,
        server_id=server_id,
    )


def _timezone(asked: str | None, mapping: Path) -> str:
    """`--timezone`, else the zone the previous mapping named (an operator may have set it
    there), else UTC; a zone that does not exist is refused now rather than at start."""
    zone = asked or _previous_zone(mapping) or "UTC"
    if zone != "UTC":
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"--timezone {zone!r} is not a time zone: an IANA name such as Asia/Phnom_Penh"
            ) from exc
    return zone


def _previous_zone(mapping: Path) -> str | None:
    try:
        document = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # no previous mapping to learn from: it is rewritten anyway
    zone = document.get("timezone") if isinstance(document, dict) else None
    return zone if isinstance(zone, str) and zone else None


def _refuse_shadowed(package: str) -> None:
    """The generated module is imported as ``<package>.<table>_pb2``: a package whose first
    word is an installed module (``json``, ``calendar``, ``email``) could never be imported."""
    top = package.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is not None and spec.origin not in (None, "namespace"):  # a namespace merges
        raise ConfigError(
            f"the package {package} starts with {top!r}, the name of an installed Python module,"
            f" so the server could not import its generated code: choose another with --package,"
            f" e.g. --package {top}_registry.v1"
        )


def _url(text: str) -> URL:
    try:
        url = make_url(text)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(
            f"--database {text!r} is not a SQLAlchemy URL such as sqlite:///registry.db or"
            " postgresql://reader@db.example:5432/registry"
        ) from exc
    return explicit_driver(url, "--database")


def _previous(path: Path) -> descriptor_pb2.FileDescriptorProto | None:
    if not path.exists():
        return None
    try:
        return main_file(path.read_bytes())
    except (OSError, DecodeError) as exc:
        raise FailedPrecondition(
            f"{path} holds the previous contract but cannot be read ({exc}); restore it, or"
            " remove it to publish afresh (field numbers then start again)"
        ) from exc


def _database_entry(url: URL, out: Path, stem: str) -> tuple[object, tuple[Path, str] | None]:
    """The mapping's `database`: a SQLite path relative to the mapping, a server URL
    without its password (kept in a file of its own beside the mapping)."""
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "").resolve()
        return f"sqlite:///{os.path.relpath(path, out)}", None
    if url.password is None:
        return url.render_as_string(hide_password=False), None
    secret = out / f"{stem}.password"
    # URL.set(password=None) would keep the password: build the URL without one.
    bare = URL.create(
        url.drivername, url.username, None, url.host, url.port, url.database, url.query
    ).render_as_string(hide_password=False)
    return {"url": bare, "password_file": secret.name}, (secret, str(url.password))


def _yaml(document: object) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, width=100).encode("utf-8")
