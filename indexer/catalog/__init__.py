"""The catalog: every file, pair, group, decision and job, in SQLite or PostgreSQL."""
from indexer.catalog.db import Catalog, migrate
from indexer.catalog.models import (
    Base,
    DupGroup,
    Features,
    Image,
    ImageStatus,
    Job,
    Meta,
    NotDuplicate,
    Pair,
    Root,
)

__all__ = ["Base", "Catalog", "DupGroup", "Features", "Image", "ImageStatus", "Job", "Meta", "NotDuplicate", "Pair",
           "Root", "migrate"]
