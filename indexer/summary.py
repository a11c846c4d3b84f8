"""What an ingest reports: counts, time split and warnings, and the form a job row keeps of it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SCAN_FAILURES = ("unreadable", "bad name")  # failures of files the catalog has no row for


@dataclass
class Timings:
    scan: float = 0.0  # scan, diff against the catalog and removal of deleted photos
    decode: float = 0.0  # waiting for decoded pixels (decode runs in worker processes)
    embed: float = 0.0
    store: float = 0.0
    link: float = 0.0  # searching and storing pairs, verification included
    verify: float = 0.0  # reading and matching the photos of near-threshold pairs (indexer.verify)
    group: float = 0.0


@dataclass
class IngestSummary:
    seen: int = 0
    indexed: int = 0  # newly embedded (or given a twin's vector) in this run
    exact_copies: int = 0  # of those, byte-identical to an indexed file: no model work
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    ignored: int = 0  # entries that are not image files: other names, links, FIFOs, ...
    ignored_why: dict[str, int] = field(default_factory=dict)  # reason -> count
    failed: list[dict] = field(default_factory=list)  # {"path", "reason", "message"}
    kept_unreadable: int = 0  # not found, but under a folder it could not read (or an empty root): kept
    healed: int = 0  # marked indexed but missing from the vector store: reset to pending, embedded again
    needs_embedding: dict[str, int] = field(default_factory=dict)  # root -> photos still pending after this run
    warnings: list[str] = field(default_factory=list)
    groups: int = 0
    duplicates: int = 0  # photos in groups, minus one keeper per group
    verified_pairs: int = 0  # pairs below the threshold that verification confirmed
    seconds: float = 0.0
    timings: Timings = field(default_factory=Timings)
    job_id: str | None = None
    collection: str | None = None  # the vector collection of the model that ran
    dropped_collections: list[str] = field(default_factory=list)  # other models' collections dropped (reindex)

    def as_dict(self) -> dict:
        return asdict(self)

    def job_summary(self, failed: int | None = None) -> dict:
        """What the job row keeps: the counts, with the failed files as a number (``failed``, when given: the
        queue's count from the catalog) since each failed file is a catalog row of its own."""
        out = self.as_dict()
        out["failed"] = len(self.failed) if failed is None else failed
        # what the scan could not list or name has no catalog row to read the failure from
        out["unreadable"] = [f for f in self.failed if f["reason"] in SCAN_FAILURES][:1000]
        out["timings"] = {k: round(v, 3) for k, v in out["timings"].items()}
        return out
