"""The edges of `publish-table`: the database, the protobuf compiler and the files."""
