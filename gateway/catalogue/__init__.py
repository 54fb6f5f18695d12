"""The federation's catalogue: what every member publishes, searchable, in English and Khmer.

Built from the signed global configuration and nothing else, so every
catalogue of a federation shows the same signed facts. Pure modules (values
in, values out): `model` (the catalogue), `protodoc` (documentation from
descriptor sets), `snippets` (how to call a method), `search` (the query and
the indexed text), `dcat` (DCAT-AP 3 in RDF). I/O modules: `index` (SQLite
FTS5 and PostgreSQL full-text search), `api` (the JSON API, FastAPI) and
`service` (the served catalogue: configuration source, refresh, index).
docs/catalogue.md describes the whole.
"""
