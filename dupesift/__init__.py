"""The ``dupesift`` command: where the core (``indexer``), the HTTP API (``api``) and the queue (``workers``)
are put together. Nothing in ``indexer`` imports this package."""
