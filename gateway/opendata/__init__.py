"""Open data: datasets the catalogue generates through the exchange path and serves.

Pure: `model` (columns, rows, versions). I/O: `writers` (CSV, JSON Lines,
Parquet files), `store` (versions on disk), `generate` (the calls through
the catalogue's security server), `api` (the download routes).
"""
