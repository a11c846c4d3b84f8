"""Bulk review: the suggested keepers of many groups at once, and the undo of such a batch.

``plan`` lists what a bulk decision would do over a filter (the groups, their keepers, the files and bytes that
would move); the caller shows it, and on confirmation decides each group with the same batch id
(``resolution.resolve(batch=...)``), so ``batch_groups`` can find them again for the undo. A group that holds
together only through look-alike links (``DupGroup.look_only``: small colour copies or the cosine, the weakest
evidence, or a check that agreed on a small part of the pictures: ``grouping.look_alike``), or that holds two
capture times (two shots of a burst: ``grouping.look_only``) or a pair whose content moved (frames of a still
camera: ``grouping.two_frames``), that hangs on one link between two parts (``grouping.bridged``), that holds a
photo with a checked link to a photo outside it (a collage: ``grouping.reaching_out``), or that holds more than
``grouping.MAX_BULK`` photos, is never in a bulk decision: the plan counts it as held back, for review
one group at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indexer.browse import filters
from indexer.catalog.models import DupGroup
from indexer.resolution import latest_decisions


@dataclass
class Plan:
    groups: list[tuple[int, int]] = field(default_factory=list)  # (group id, keeper id)
    files: int = 0  # copies that would move to the quarantine
    bytes: int = 0  # their size
    count: int = 0  # groups
    held_back: int = 0  # groups of the filter left for review one by one (look-alike links only)

    def encode(self) -> str:
        """The plan as the confirmation form carries it: ``gid:keeper,...``."""
        return ",".join(f"{g}:{k}" for g, k in self.groups)


def plan(session: Session, *, min_size: int = 2, folder: str | None = None) -> Plan:
    """The unresolved groups matching the filter, each with its suggested keeper, largest saving first."""
    out = Plan(held_back=_held_back(session, min_size, folder))
    where = _offered(min_size, folder)
    for gid, keeper, size, reclaim in session.execute(
            select(DupGroup.id, DupGroup.keeper_id, DupGroup.size, DupGroup.reclaimable_bytes).where(*where)
            .order_by(DupGroup.reclaimable_bytes.desc(), DupGroup.id.desc())):
        out.groups.append((gid, keeper))
        out.files += size - 1
        out.bytes += reclaim or 0
    out.count = len(out.groups)
    return out


def decode(text: str) -> list[tuple[int, int]]:
    """The (group id, keeper id) pairs of ``Plan.encode``; ValueError for anything else."""
    pairs = []
    for item in filter(None, text.split(",")):
        g, k = item.split(":")
        pairs.append((int(g), int(k)))
    return pairs


def batch_groups(quarantine_dir: Path, batch: str) -> list[int]:
    """The groups whose latest decision (not undone yet) is the bulk decision ``batch``."""
    return sorted(g for g, b in latest_decisions(quarantine_dir).items() if b.get("batch") == batch)


def summary(session: Session, *, min_size: int = 2, folder: str | None = None) -> Plan:
    """``plan``'s totals without its list (aggregate queries, for the offer on every list page)."""
    n, files, size = session.execute(select(
        func.count(), func.coalesce(func.sum(DupGroup.size - 1), 0), func.coalesce(func.sum(DupGroup.reclaimable_bytes), 0)
    ).where(*_offered(min_size, folder))).one()
    return Plan(files=int(files), bytes=int(size), count=int(n), held_back=_held_back(session, min_size, folder))


def _offered(min_size: int, folder: str | None) -> list:
    """The groups a bulk decision takes: unresolved, with a keeper, held together by more than the look."""
    return filters(unresolved=True, min_size=min_size, folder=folder) + [
        DupGroup.keeper_id.is_not(None), DupGroup.look_only.is_(False)]


def _held_back(session: Session, min_size: int, folder: str | None) -> int:
    where = filters(unresolved=True, min_size=min_size, folder=folder, look_only=True)
    return int(session.scalar(select(func.count()).select_from(DupGroup).where(*where)) or 0)
