"""dupesift core library: scan, decode, embed, store, pair and group photos.

No web framework or task-queue imports live here; `api/` and `workers/` are thin shells over it.
"""

__version__ = "0.1.0"
