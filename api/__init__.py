"""HTTP API: a thin FastAPI shell over indexer.index.Index."""
