"""HTTP API: a thin FastAPI shell over indexer.pipeline.Index."""
