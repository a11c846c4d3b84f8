"""Celery workers for dupesift: the same ``indexer`` steps, run by many processes through a broker."""
