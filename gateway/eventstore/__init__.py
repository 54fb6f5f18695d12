"""Publish/subscribe storage: the `EventStore` interface (`store`), its engines
(`sqlite`) and the choice between them (`engines`); docs/pubsub.md, "Storage"."""
