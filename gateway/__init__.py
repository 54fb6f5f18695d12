"""Spean: a federated data-exchange gateway between ministries, on gRPC."""

__version__ = "0.1.0"
