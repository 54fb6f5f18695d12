"""Publish/subscribe storage: the `EventStore` interface and its engines (docs/pubsub.md)."""
