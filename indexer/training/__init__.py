"""Training and export of dupesift's embedding models (needs the ``train`` extra: torch)."""
