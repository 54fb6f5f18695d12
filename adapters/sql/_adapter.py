"""The SQL adapter itself: plans built once at load, calls served from a pool.

See `spean.adapters.sql` for the mapping format. Loading (`from_file`) checks the
mapping against the descriptor; `start()` checks it against the database
(every statement prepares, wrapped as ``SELECT * FROM (...) LIMIT 0`` so it
reads no row and only queries pass; it returns no two columns of one name;
every column it returns lands in a response field; and where the database
reports column types, each column's type can fill its field). Calls then
only bind, execute and convert.

Invariants
----------
- Request values are always bound parameters, never spliced into SQL text.
- Callers never see SQL text, table or column names, or driver messages;
  those go to the operator's log with the exchange id.
- `many` results are produced lazily from a server-side cursor, so memory
  stays bounded whatever the number of rows; a stream closed early returns
  its connection at once.
- Every statement is bounded by the caller's deadline (`_engines.bounded`).
- A database that fails after start is `Unavailable` to the caller and the
  adapter recovers by itself when it comes back: the pool replaces dead
  connections; nothing needs restarting.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from sqlalchemy import Connection, Engine, TextClause, bindparam, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from spean.adapters._spec import find_service, use_import_folders
from spean.adapters.base import Adapter, CallContext, Health, MethodKind, PoolStatus
from spean.adapters.sql._convert import (
    ColumnKind,
    Unconvertible,
    Unsupported,
    accepts,
    bind_type,
    field_label,
    field_writer,
    message_class,
    param_reader,
    resolve,
)
from spean.adapters.sql._engines import (
    Failure,
    Limit,
    abandon_unbuffered,
    bounded,
    check_database,
    classify,
    column_kinds,
    open_engine,
    twin_columns,
    twin_in_error,
)
from spean.adapters.sql._mapping import MethodMapping, ServiceMapping, config_error, load_mapping
from spean.adapters.sql._paging import LIMIT, Paging, after_name, decode_token, encode_token
from spean.gateway.errors import (
    ConfigError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    SpeanError,
    Unavailable,
)

__all__ = ["HEALTH_SECONDS", "PROBE_SECONDS", "STREAM_BATCH_ROWS", "SqlAdapter"]

log = structlog.get_logger("spean.adapters.sql")

PROBE_SECONDS = 10.0
"""How long one statement may take to prepare at start-up."""
HEALTH_SECONDS = 2.0
STREAM_BATCH_ROWS = 500
"""Rows fetched from the cursor at a time for `many` results."""


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    path: tuple[FieldDescriptor, ...]
    read: Callable[[Message], object]


@dataclass(frozen=True, slots=True)
class _Column:
    path: tuple[FieldDescriptor, ...]
    write: Callable[[Message, object], None]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything a call needs, resolved once from the mapping and the descriptor."""

    mapping: MethodMapping
    path: str
    kind: MethodKind
    many: bool
    statement: TextClause
    probe: TextClause
    request_class: type[Message]
    response_class: type[Message]
    row_type: Descriptor
    params: tuple[_Param, ...]
    paging: Paging | None = None


@dataclass(frozen=True, slots=True)
class _RowWriter:
    keys: tuple[str, ...]
    columns: tuple[_Column, ...]

    def fill(self, message: Message, row: Sequence[object]) -> None:
        for column, value in zip(self.columns, row, strict=True):
            if value is None:
                continue  # NULL leaves the field unset
            parent = message
            for field in column.path[:-1]:
                parent = getattr(parent, field.name)
            column.write(parent, value)


class SqlAdapter(Adapter):
    """Serves one protobuf service from SQL statements, as a mapping file declares."""

    def __init__(self, mapping: ServiceMapping) -> None:
        self._mapping = mapping
        self._zone = _zone(mapping)
        self._service = _find_service(mapping)
        self._plans = {plan.path: plan for plan in self._build_plans()}
        self._writers: dict[str, _RowWriter] = {}
        self._engine: Engine | None = None
        self._mechanism = ""  # how deadlines are enforced; learnt at start

    @classmethod
    def from_file(cls, path: Path) -> SqlAdapter:
        return cls(load_mapping(path))

    @property
    def mapping(self) -> ServiceMapping:
        return self._mapping

    def methods(self) -> Mapping[str, MethodKind]:
        return {path: plan.kind for path, plan in self._plans.items()}

    def services(self) -> Sequence[ServiceDescriptor]:
        return (self._service,)

    # ---- life cycle

    def start(self) -> None:
        if self._engine is not None:
            return
        engine = open_engine(self._mapping.database, self._mapping.source)
        try:
            with engine.connect() as conn:
                self._mechanism = check_database(conn, self._mapping.database, self._mapping.source)
                for plan in self._plans.values():
                    self._writers[plan.path] = self._probe(conn, plan)
            self._engine = engine
        except sa_exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            log.error("sql.start_failed", mapping=str(self._mapping.source), error=str(detail))
            # The operator reads this (start-up), never a caller: the driver's words help.
            raise Unavailable(
                f"{self._mapping.source}: the database {self._mapping.url!r} cannot be reached:"
                f" {detail}"
            ) from exc
        finally:
            if self._engine is not engine:  # a failed start leaves nothing open
                engine.dispose()
        log.info(
            "sql.started",
            mapping=str(self._mapping.source),
            service=self._service.full_name,
            methods=len(self._plans),
            engine=self._mapping.database.engine,
            deadlines=self._mechanism,
            read_only=self._mapping.read_only,
        )

    def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def health(self) -> Health:
        if self._engine is None:
            return Health(ok=False, detail="not started")
        limit = Limit(time.monotonic() + HEALTH_SECONDS)
        try:
            with self._engine.connect() as conn, bounded(conn, self._mechanism, limit):
                check_database(conn, self._mapping.database, self._mapping.source)
        except sa_exc.SQLAlchemyError as exc:
            return Health(ok=False, detail=f"database query failed: {getattr(exc, 'orig', exc)}")
        except ConfigError as exc:  # a SQLite file replaced by something else
            return Health(ok=False, detail=exc.message)
        return Health(ok=True, detail="database answers")

    def pool_status(self) -> PoolStatus | None:
        engine = self._engine
        # Every engine open_engine makes has a QueuePool; anything else has no
        # bounded pool to report.
        if engine is None or not isinstance(engine.pool, QueuePool):
            return None
        options = self._mapping.database
        return PoolStatus(
            checked_out=engine.pool.checkedout(),
            size=options.pool_size,
            max_overflow=options.max_overflow,
        )

    # ---- calls

    def unary(self, ctx: CallContext, request: bytes) -> bytes:
        plan = self._plan(ctx, MethodKind.UNARY)
        if plan.paging is not None:
            return self._page(ctx, plan, plan.paging, self._decode(plan, request))
        params = self._bind(plan, request)
        with self._connection(ctx, plan) as conn:
            result = conn.execute(plan.statement, params)
            writer = self._writer(plan, tuple(result.keys()), ctx)
            if not plan.many:
                row = result.first()
                if row is None:
                    raise NotFound(f"no result for {plan.mapping.name} with the given request")
                message = plan.response_class()
                self._fill(plan, writer, message, row, ctx)
                return message.SerializeToString()
            response = plan.response_class()
            elements = getattr(response, plan.mapping.into or "")
            for row in result:
                self._fill(plan, writer, elements.add(), row, ctx)
            return response.SerializeToString()

    def stream(self, ctx: CallContext, request: bytes) -> Iterator[bytes]:
        # Checked now, so a bad request fails before the first message; the
        # query itself runs only when the caller asks for the first message.
        plan = self._plan(ctx, MethodKind.SERVER_STREAMING)
        params = self._bind(plan, request)
        return self._rows(ctx, plan, params)

    def _rows(self, ctx: CallContext, plan: _Plan, params: dict[str, object]) -> Iterator[bytes]:
        with self._connection(ctx, plan) as conn:
            # yield_per streams from a server-side cursor (PostgreSQL: a named
            # cursor; MySQL: an unbuffered one), STREAM_BATCH_ROWS rows at a time.
            options = conn.execution_options(yield_per=STREAM_BATCH_ROWS)
            result = options.execute(plan.statement, params)
            writer = self._writer(plan, tuple(result.keys()), ctx)
            finished = False
            try:
                for row in result:
                    if ctx.expired():
                        raise DeadlineExceeded(f"deadline exceeded while streaming {plan.path}")
                    message = plan.response_class()
                    self._fill(plan, writer, message, row, ctx)
                    yield message.SerializeToString()
                finished = True
            finally:
                if not finished:  # closed early, or failed: release the server-side cursor
                    mysql = self._mapping.database.engine == "mysql"
                    if mysql:
                        # An unbuffered MySQL result can only be finished by
                        # reading every remaining row; dropping the connection
                        # instead is cheaper.
                        abandon_unbuffered(result)
                    result.close()  # PostgreSQL: CLOSE the named cursor
                    if mysql and not conn.invalidated:
                        conn.invalidate()

    # ---- helpers: calls

    def _plan(self, ctx: CallContext, kind: MethodKind) -> _Plan:
        plan = self._plans.get(ctx.method)
        if plan is None:
            raise NotFound(f"method {ctx.method} is not served by {self._service.full_name}")
        if plan.kind is not kind:
            # The security server routes by methods(); a mismatch is a bug there.
            raise Internal(f"method {ctx.method} is {plan.kind.value}, not {kind.value}")
        if ctx.expired():
            raise DeadlineExceeded(f"deadline exceeded before {ctx.method} reached the database")
        return plan

    def _page(self, ctx: CallContext, plan: _Plan, paging: Paging, message: Message) -> bytes:
        """One page of a paged method: `size` rows after the token's key, and the next token."""
        spec = paging.spec
        size = spec.rows_for(getattr(message, paging.size.name))
        token = getattr(message, paging.token.name)
        params = {param.name: param.read(message) for param in plan.params}
        params[LIMIT] = size + 1  # one more row says whether another page follows
        statement = paging.first
        if token:
            statement = paging.after
            after = decode_token(token, len(spec.key), spec.token)
            params.update({after_name(i): value for i, value in enumerate(after)})
        with self._connection(ctx, plan) as conn:
            result = conn.execute(statement, params)
            keys = tuple(result.keys())
            writer = self._writer(plan, keys, ctx)
            rows = result.fetchall()
        response = plan.response_class()
        elements = getattr(response, plan.mapping.into or "")
        for row in rows[:size]:
            self._fill(plan, writer, elements.add(), row, ctx)
        if len(rows) > size:
            last = rows[size - 1]
            try:
                next_token = encode_token([last[keys.index(name)] for name in spec.key])
            except TypeError as exc:
                log.error("sql.page_key_unusable", method=plan.path, error=str(exc))
                raise Internal(
                    f"the page key of {plan.path} cannot be carried in a page token;"
                    " the provider's log has details"
                ) from exc
            setattr(response, spec.next, next_token)
        return response.SerializeToString()

    def _decode(self, plan: _Plan, request: bytes) -> Message:
        try:
            return plan.request_class.FromString(request)
        except DecodeError as exc:
            raise InvalidArgument(
                f"request is not a valid {plan.request_class.DESCRIPTOR.full_name} message"
            ) from exc

    def _bind(self, plan: _Plan, request: bytes) -> dict[str, object]:
        message = self._decode(plan, request)
        return {param.name: param.read(message) for param in plan.params}

    @contextlib.contextmanager
    def _connection(self, ctx: CallContext, plan: _Plan) -> Iterator[Connection]:
        """A pooled connection bounded by the caller's deadline; translates database errors."""
        engine = self._engine
        if engine is None:
            raise Unavailable(f"{self._service.full_name} is not serving (adapter not started)")
        limit = Limit(ctx.deadline)
        try:
            with engine.connect() as conn, bounded(conn, self._mechanism, limit):
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise self._translate(exc, limit, ctx, plan) from exc

    def _translate(
        self, exc: sa_exc.SQLAlchemyError, limit: Limit, ctx: CallContext, plan: _Plan
    ) -> SpeanError:
        fields = {
            "mapping": str(self._mapping.source),
            "method": plan.path,
            "exchange_id": ctx.exchange_id,
            "error": str(getattr(exc, "orig", None) or exc),
        }
        failure = classify(exc, limit)
        if failure is Failure.DEADLINE:
            log.warning("sql.deadline_exceeded", **fields)
            return DeadlineExceeded(
                f"deadline exceeded while querying the database for {plan.path}"
            )
        if failure is Failure.VALUE:
            log.warning("sql.value_refused", **fields)
            return InvalidArgument(
                f"a value in the request is not acceptable to the database behind {plan.path}"
            )
        if failure is Failure.OUTAGE:
            log.error("sql.database_unavailable", **fields)
            return Unavailable(f"the database behind {self._service.full_name} is unavailable")
        log.error("sql.query_failed", **fields)
        return Internal(
            f"the database query for {plan.path} failed; the provider's log has details"
        )

    def _writer(self, plan: _Plan, keys: tuple[str, ...], ctx: CallContext) -> _RowWriter:
        writer = self._writers.get(plan.path)
        if writer is not None and writer.keys == keys:
            return writer
        # The columns changed since start (schema altered underneath us).
        try:
            writer = self._row_writer(plan, keys)
        except ConfigError as exc:
            log.error(
                "sql.columns_changed",
                method=plan.path,
                exchange_id=ctx.exchange_id,
                error=exc.message,
            )
            raise Internal(
                f"the provider's mapping for {plan.path} no longer matches its "
                "database; the provider's log has details"
            ) from exc
        self._writers[plan.path] = writer
        return writer

    def _fill(
        self,
        plan: _Plan,
        writer: _RowWriter,
        message: Message,
        row: Sequence[object],
        ctx: CallContext,
    ) -> None:
        try:
            writer.fill(message, row)
        except Unconvertible as exc:
            log.error(
                "sql.value_unconvertible",
                method=plan.path,
                exchange_id=ctx.exchange_id,
                field=exc.field,
                value_type=exc.value_type,
                reason=exc.reason,
            )
            raise Internal(
                f"a record found for {plan.path} could not be converted to "
                f"{plan.row_type.full_name}; the provider's log has details"
            ) from exc

    # ---- helpers: start-up

    def _probe(self, conn: Connection, plan: _Plan) -> _RowWriter:
        """Prepare the statement against the database and learn its columns, reading no row."""
        nulls: dict[str, object] = {
            p.name: [] if p.path[-1].is_repeated else None for p in plan.params
        }
        limit = Limit(time.monotonic() + PROBE_SECONDS)
        where = f"methods.{plan.mapping.name}.sql"
        try:
            with bounded(conn, self._mechanism, limit):
                result = conn.execute(plan.probe, nulls)
                keys = tuple(result.keys())
                kinds = column_kinds(self._mapping.database.engine, result.cursor.description)
                result.close()
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise  # the connection, not the statement, failed: start() says Unavailable
            twin = twin_in_error(exc)
            if twin is not None:
                raise config_error(self._mapping.source, where, _twin_message(twin)) from exc
            failure = classify(exc, limit)
            what = (
                f"did not prepare within {PROBE_SECONDS:g} s"
                if failure is Failure.DEADLINE
                else f"does not prepare against the database: {exc.orig}"
            )
            raise config_error(self._mapping.source, where, f"the statement {what}") from exc
        finally:
            conn.rollback()
        if plan.paging is not None:
            for name in plan.paging.spec.key:
                if name not in keys:
                    raise config_error(
                        self._mapping.source,
                        f"methods.{plan.mapping.name}.page.key",
                        f"the statement returns no column {name!r} (it returns {', '.join(keys)})",
                    )
        return self._row_writer(plan, keys, kinds)

    def _row_writer(
        self, plan: _Plan, keys: tuple[str, ...], kinds: Sequence[ColumnKind | None] = ()
    ) -> _RowWriter:
        """How each column of a row fills the response; `kinds` are the columns'
        types where the database reported them (empty: not known)."""
        where = f"methods.{plan.mapping.name}"
        source = self._mapping.source
        twin = twin_columns(self._mapping.database.engine, keys, plan.mapping.sql)
        if twin is not None:
            raise config_error(source, f"{where}.sql", _twin_message(twin))
        for column in plan.mapping.fields:
            if column not in keys:
                raise config_error(
                    source,
                    f"{where}.fields.{column}",
                    f"the statement returns no column {column!r} (it returns {', '.join(keys)})",
                )
        known = list(kinds) if len(kinds) == len(keys) else [None] * len(keys)
        columns = tuple(
            self._column(plan.mapping, plan.row_type, key, kind)
            for key, kind in zip(keys, known, strict=True)
        )
        return _RowWriter(keys, columns)

    def _column(
        self,
        mapping: MethodMapping,
        row_type: Descriptor,
        key: str,
        kind: ColumnKind | None = None,
    ) -> _Column:
        """Where column `key` lands in `row_type`, and how its values convert."""
        source, where = self._mapping.source, f"methods.{mapping.name}"
        target = mapping.fields.get(key, key)
        at = f"{where}.fields.{key}" if key in mapping.fields else f"{where}.sql"
        path = resolve(row_type, target, source, at, f"column {key!r}")
        try:
            column = _Column(path, field_writer(path[-1], self._zone))
        except Unsupported as exc:
            raise config_error(source, at, f"column {key!r} -> field {target!r}: {exc}") from exc
        if kind is not None and kind not in accepts(path[-1]):
            raise config_error(source, at, _kind_message(key, kind, path[-1]))
        return column

    def _build_plans(self) -> Iterator[_Plan]:
        source = self._mapping.source
        service = self._service
        for mapping in self._mapping.methods:
            where = f"methods.{mapping.name}"
            method = service.methods_by_name.get(mapping.name)
            if method is None:
                known = ", ".join(m.name for m in service.methods)
                raise config_error(
                    source,
                    where,
                    f"{service.full_name} has no method {mapping.name!r} (it has {known})",
                )
            if method.client_streaming:
                raise config_error(source, where, "client-streaming methods are not supported")
            kind = MethodKind.SERVER_STREAMING if method.server_streaming else MethodKind.UNARY
            many = (mapping.result or ("many" if method.server_streaming else "one")) == "many"
            row_type = self._row_type(mapping, kind, many, method.output_type)
            for column in mapping.fields:  # checked now; the columns themselves at start
                self._column(mapping, row_type, column)
            params = tuple(self._params(mapping, method.input_type))
            binds = [
                bindparam(p.name, type_=bind_type(p.path[-1]), expanding=p.path[-1].is_repeated)
                for p in params
            ]
            statement = text(mapping.sql).bindparams(*binds)
            # The operator's own statement, wrapped so it prepares but reads
            # no row; no request value is involved.
            probe = text(f"SELECT * FROM ({mapping.sql}) AS spean_probe LIMIT 0")  # noqa: S608
            paging = None
            if mapping.page is not None:
                paging = Paging.plan(
                    mapping.page,
                    method,
                    statement,
                    paged=kind is MethodKind.UNARY and many and mapping.into is not None,
                    where=f"{self._mapping.source}: methods.{mapping.name}.page",
                )
            yield _Plan(
                mapping=mapping,
                path=f"/{service.full_name}/{method.name}",
                kind=kind,
                many=many,
                statement=statement,
                probe=probe.bindparams(*binds),
                request_class=message_class(method.input_type),
                response_class=message_class(method.output_type),
                row_type=row_type,
                params=params,
                paging=paging,
            )

    def _row_type(
        self, mapping: MethodMapping, kind: MethodKind, many: bool, output: Descriptor
    ) -> Descriptor:
        source, where = self._mapping.source, f"methods.{mapping.name}"
        if kind is MethodKind.SERVER_STREAMING:
            if not many:
                raise config_error(
                    source, f"{where}.result", "a server-streaming method takes 'many'"
                )
            if mapping.into is not None:
                raise config_error(
                    source,
                    f"{where}.into",
                    "a server-streaming method sends one message per row; remove 'into'",
                )
            return output
        if not many:
            if mapping.into is not None:
                raise config_error(
                    source, f"{where}.into", "only a 'many' result fills a repeated field"
                )
            return output
        if mapping.into is None:
            raise config_error(
                source,
                f"{where}.into",
                f"a unary 'many' result needs 'into': a repeated field of {output.full_name}",
            )
        field = output.fields_by_name.get(mapping.into)
        if field is None or not field.is_repeated or field.message_type is None:
            raise config_error(
                source,
                f"{where}.into",
                f"{output.full_name} has no repeated message field {mapping.into!r}",
            )
        return field.message_type

    def _params(self, mapping: MethodMapping, request: Descriptor) -> Iterator[_Param]:
        source, where = self._mapping.source, f"methods.{mapping.name}"
        names = list(text(mapping.sql).compile().params)
        for name in mapping.params:
            if name not in names:
                raise config_error(
                    source, f"{where}.params.{name}", f"the statement has no parameter :{name}"
                )
        for name in names:
            target = mapping.params.get(name)
            if target is None and name not in request.fields_by_name:
                raise config_error(
                    source,
                    f"{where}.sql",
                    f"parameter :{name} is not bound: map it under params to a field of "
                    f"{request.full_name} (no field is named {name!r})",
                )
            at = f"{where}.params.{name}" if target is not None else f"{where}.sql"
            path = resolve(request, target or name, source, at, f"parameter :{name}")
            try:
                read = param_reader(path, self._zone)
            except Unsupported as exc:
                raise config_error(source, at, f"parameter :{name}: {exc}") from exc
            yield _Param(name, path, read)


# --------------------------------------------------------------------------- module helpers


def _zone(mapping: ServiceMapping) -> tzinfo:
    if mapping.timezone == "UTC":
        return UTC  # needs no zone database
    try:
        return ZoneInfo(mapping.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise config_error(
            mapping.source, "timezone", f"unknown time zone {mapping.timezone!r}"
        ) from exc


def _find_service(mapping: ServiceMapping) -> ServiceDescriptor:
    """Import the mapping's descriptor module (after its `python_path`) and find the service,
    with the same steps and errors as the gRPC and Python adapters. The mapping's keys sit
    at the top of its file, so errors read ``file: descriptor: ...``."""
    use_import_folders(mapping.python_path, f"{mapping.source}: python_path")
    return find_service(mapping.descriptor, mapping.service, str(mapping.source), key_sep=": ")


def _twin_message(column: str) -> str:
    return (
        f"the statement returns two columns named {column!r}; each column fills one field,"
        " so give one of them another name with AS (or leave it out)"
    )


def _kind_message(key: str, kind: ColumnKind, field: FieldDescriptor) -> str:
    takes = ", ".join(sorted(k.value for k in accepts(field)))
    return (
        f"column {key!r} is {kind.value} in the database and cannot fill the "
        f"{field_label(field)} (it takes {takes} columns); convert it in the statement,"
        f" e.g. CAST({key} AS ...), or map the column to another field"
    )
