"""Declarative SQL adapter: a protobuf service served from SQL statements.

An IT team publishes a table by writing the service's `.proto` and one YAML
mapping per service; no code:

```yaml
service: vehicles.v1.VehicleRegistry           # full protobuf service name
descriptor: spean.demo.vehicles.v1.vehicles_pb2  # Python module with the generated descriptors
python_path: lib                               # optional: its folder(s), relative to this file
database: sqlite:///mpwt-vehicles.db           # SQLAlchemy URL, or a table (below)
timezone: Asia/Phnom_Penh                      # zone of naive date-times stored; default UTC
methods:
  GetVehicle:
    sql: SELECT plate, registered_on FROM vehicles WHERE plate = :plate
    params: {plate: plate}       # statement parameter -> request field path (dotted when nested)
    result: one                  # one | many; default: one for unary, many for server streaming
    fields: {registered_on: registration_date}   # column -> response field path; default same name
  ListVehicles:                  # a unary method returning a repeated field
    sql: SELECT plate FROM vehicles WHERE owner_id = :owner_id
    result: many
    into: vehicles               # the repeated message field each row becomes an element of
```

A server database takes a table instead of a bare URL:

```yaml
database:
  url: postgresql://spean_reader@db.mpwt.internal:5432/registry  # or mysql://, mariadb://
  password_file: secrets/registry-db.password   # relative to the mapping file
  read_only: true        # default; false only for a service that must write
  pool_size: 5           # connections kept open
  max_overflow: 5        # extra connections under load, closed when idle
  pool_timeout: 5        # seconds a call waits for a free connection
```

A relative SQLite path resolves against the mapping file's folder. A
statement parameter missing from `params` takes the request field of the same
name. A repeated request field binds as an expanding list
(``WHERE plate IN :plates``). At start every statement is prepared and its
columns checked: no two of one name, each lands in a field, and, where the
database reports column types (PostgreSQL, MySQL/MariaDB; not SQLite), each
type can fill its field. Conversions are listed in
`spean.adapters.sql._convert`; engine specifics (read-only sessions, deadlines,
pools) in `spean.adapters.sql._engines`.

The public names are `SqlAdapter`, the mapping values and the loaders below;
the underscore modules may change freely.
"""

from __future__ import annotations

from spean.adapters.sql._adapter import HEALTH_SECONDS, PROBE_SECONDS, STREAM_BATCH_ROWS, SqlAdapter
from spean.adapters.sql._mapping import (
    DatabaseOptions,
    MethodMapping,
    ServiceMapping,
    load_mapping,
    parse_mapping,
)

__all__ = [
    "HEALTH_SECONDS",
    "PROBE_SECONDS",
    "STREAM_BATCH_ROWS",
    "DatabaseOptions",
    "MethodMapping",
    "ServiceMapping",
    "SqlAdapter",
    "load_mapping",
    "parse_mapping",
]
