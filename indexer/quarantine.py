"""The quarantine: what decisions moved there (from where, when, which group), and emptying it.

Emptying is the one place dupesift deletes files, and only the files a person confirmed: the caller passes the
photo ids it showed, and only those still in the quarantine are deleted. The photos are forgotten by the
catalog (and the vector store) first, then their files deleted, so a crash in between leaves files behind in
the quarantine folder, never a catalog row without its file.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from indexer.catalog.models import Image, utcnow
from indexer.catalog.queries import under_prefix
from indexer.parts import Parts
from indexer.removal import remove
from indexer.resolution import Journal, committed, journal_dir


@dataclass
class Held:
    """One photo in the quarantine."""

    image_id: int
    group_id: int | None
    path: str  # where it is now
    origin: str | None  # where it was when a decision moved it
    bytes: int
    moved_at: str | None
    trash: bool


def _prefixes(quarantine_dir: Path) -> list[str]:
    q = str(quarantine_dir).rstrip(os.sep)
    return sorted({q + os.sep, os.path.realpath(q) + os.sep})


def contents(session: Session, quarantine_dir: Path) -> list[Held]:
    """Every catalogued photo whose file is in the quarantine, with where it came from; by group, then path."""
    origins: dict[tuple[int, str], tuple[str, str | None]] = {}
    for begin in committed(quarantine_dir):
        if begin.get("kind") == "resolve":
            for mv in begin.get("moves", []):
                origins[(mv["image_id"], mv["dst"])] = (mv["src"], begin.get("at"))
    trash = tuple(p + "trash" + os.sep for p in _prefixes(quarantine_dir))
    rows = session.scalars(select(Image).where(or_(*[under_prefix(Image.path, p) for p in _prefixes(quarantine_dir)]))
                           .order_by(Image.group_id, Image.path))
    out = []
    for img in rows:
        origin, at = origins.get((img.id, img.path), (None, None))
        out.append(Held(img.id, img.group_id, img.path, origin, img.bytes or 0, at, img.path.startswith(trash)))
    return out


def empty(ix: Parts, image_ids: list[int]) -> tuple[int, int]:
    """Delete for good the quarantined photos among ``image_ids`` (the ones a person confirmed).

    Returns (files deleted, bytes freed on disk). Ids that are not in the quarantine any more are left alone.
    """
    with ix.catalog.session() as s:
        held = [h for h in contents(s, ix.settings.quarantine_dir) if h.image_id in set(image_ids)]
    if not held:
        return 0, 0
    op = uuid.uuid4().hex
    journal = Journal(journal_dir(ix.settings.quarantine_dir) / f"{op}.jsonl")
    journal.write({"event": "begin", "op": op, "kind": "purge", "group_id": None, "moves": [],
                   "files": [{"image_id": h.image_id, "path": h.path, "origin": h.origin, "group_id": h.group_id}
                             for h in held], "at": utcnow().isoformat()})
    remove(ix, [h.image_id for h in held])
    freed = deleted = 0
    for h in held:
        try:
            size = os.stat(h.path).st_size
            os.remove(h.path)
        except FileNotFoundError:
            continue
        freed += size
        deleted += 1
        _prune_dirs(Path(h.path).parent, ix.settings.quarantine_dir)
    journal.write({"event": "commit", "deleted": deleted, "freed": freed})
    return deleted, freed


def _prune_dirs(d: Path, quarantine_dir: Path) -> None:
    """Drop the folders an operation left empty, up to the quarantine folder itself."""
    top = os.path.realpath(quarantine_dir)
    while os.path.realpath(d) != top and str(os.path.realpath(d)).startswith(top + os.sep):
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent
