"""`spean publish-table`: from a database table or view to a published, served contract.

The rules are pure modules at the top of this package: `typemap` (column
types to field types, SQL names to protobuf names), `contract` (the contract,
its field numbering across runs, the mapping and server entries),
`proto_text` (the .proto) and `diff` (what changed since the previous run and
what breaks callers). `io/` meets the world: it reads the table through
SQLAlchemy, compiles the .proto in-process with grpcio-tools and writes the
files. The command itself is `spean.gateway.cli.publish`.
"""
