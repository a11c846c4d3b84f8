"""Resolving duplicate groups: keep all (not duplicates), move or trash the others, restore.

Nothing here deletes a file (emptying the quarantine, ``indexer/quarantine.py``, is the one place that does).
``move_others`` and ``trash_others`` move files into ``<quarantine_dir>/<op>/`` (trash: ``<quarantine_dir>/trash/<op>/``) and point the catalog rows at
their new place, so a rescan of the library root neither re-finds them nor forgets them, and the
group keeps its members and its resolution. ``restore`` moves them back.

Every file operation is journalled before it happens: one append-only JSON-lines file per
operation under ``<quarantine_dir>/.journal/``::

    {"event": "begin", "op", "kind", "group_id", "action", "moves": [{"image_id", "src", "dst"}]}
    {"event": "move", "i": 0}      # written (and fsynced) before moving moves[0]
    {"event": "moved", "i": 0}     # after the move
    {"event": "committing"}        # every file moved; the catalog transaction is about to commit
    {"event": "commit"}            # after the catalog transaction committed

The catalog's commit is the point of no return, so the journal never claims a commit the catalog does not
have. ``recover`` finishes every operation without ``commit``: one that reached ``committing`` and whose
catalog rows point at the new places did commit, and gets its ``commit`` line (files, catalog and journal
agree: the group is resolved, or restored); any other is rolled back: files go back to where they were and
catalog paths to their source. ``keep_all`` touches no file; its journal holds the pairs it dropped and the
"not duplicates" rows it added, so that ``restore`` can undo it as it undoes a move and ``recover`` can tell
whether its catalog transaction committed (it journals ``committing`` too). A ``batch`` id in the begin
record ties the operations of one bulk decision together (``indexer/bulk.py``).

``DUPESIFT_FAULT_AT=<step>`` kills the process at that step (``begin``, ``move:<i>``, ``moved:<i>``,
``committing``, ``db-committed``, ``commit``): the crash tests' fault-injection points.

``resolve`` and ``restore`` run under the catalog lock ``groups``, as an ingest's pair linking and
regrouping do, so a decision never lands between an ingest reading the "not duplicates" list and
storing the pairs that list should have dropped (the ingest would store them again).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from pathlib import Path

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from indexer.catalog.models import DupGroup, Image, NotDuplicate, Pair, utcnow
from indexer.errors import DupesiftError
from indexer.fsnames import to_text
from indexer.grouping import regroup
from indexer.locks import catalog_lock
from indexer.safefile import check_unchanged
from indexer.scan import under_root

ACTIONS = ("keep_all", "move_others", "trash_others")


class ResolutionError(DupesiftError):
    """A resolve/restore request that cannot be carried out as asked (which members to keep)."""


class UnknownAction(ResolutionError):
    """An action that is not one of ``ACTIONS``."""


class GroupNotFound(ResolutionError):
    """No duplicate group with that id."""


class ResolutionConflict(ResolutionError):
    """The group or its files are not in a state that allows it now (already resolved, files gone or back)."""


@dataclass
class Outcome:
    group_id: int
    action: str
    op: str | None = None
    kept: list[int] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)  # {"image_id", "src", "dst"}
    groups_after: list[int] = field(default_factory=list)  # keep_all: groups the members still form
    left: list[dict] = field(default_factory=list)  # {"image_id", "path", "why"}: changed since indexed, not moved

    def as_dict(self) -> dict:
        """The outcome with paths in their printable form (``fsnames.to_text``)."""
        return {"group_id": self.group_id, "action": self.action, "op": self.op, "kept": self.kept,
                "moved": [{**m, "src": to_text(m["src"]), "dst": to_text(m["dst"])} for m in self.moved],
                "groups_after": self.groups_after,
                "left": [{**x, "path": to_text(x["path"]), "why": to_text(x["why"])} for x in self.left]}


# -- journal ------------------------------------------------------------------------------------
class Journal:
    """Append-only, fsynced JSON lines for one operation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            torn = False
            if f.tell() > 0:  # a crash mid-write leaves a line without its newline: end it first
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            f.write((b"\n" if torn else b"") + (json.dumps(record) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict]:
        out = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return out
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except json.JSONDecodeError:  # a torn line from a crash mid-write
                continue
        return out


def journal_dir(quarantine_dir: Path) -> Path:
    return Path(quarantine_dir) / ".journal"


def _journals(quarantine_dir: Path) -> list[Journal]:
    d = journal_dir(quarantine_dir)
    return [Journal(p) for p in sorted(d.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)] if d.is_dir() else []


_parsed: dict[str, tuple[tuple[int, int], list[dict]]] = {}  # path -> ((mtime_ns, size), records)


def _records(j: Journal) -> list[dict]:
    """``j.records()``, parsed once per version of the file (a bulk undo reads every journal per group)."""
    try:
        st = j.path.stat()
    except FileNotFoundError:
        return []
    key = (st.st_mtime_ns, st.st_size)
    hit = _parsed.get(str(j.path))
    if hit is None or hit[0] != key:
        hit = (key, j.records())
        _parsed[str(j.path)] = hit
    return hit[1]


def _state(records: list[dict]) -> str:
    events = {r.get("event") for r in records}
    if "commit" in events:
        return "committed"
    if "rolledback" in events:
        return "rolledback"
    return "incomplete" if records else "empty"


def committed(quarantine_dir: Path) -> list[dict]:
    """The begin records of every committed operation, oldest first."""
    out = []
    for j in _journals(quarantine_dir):
        recs = _records(j)
        if recs and _state(recs) == "committed":
            out.append(recs[0])
    return out


def in_quarantine(path: str, quarantine_dir: Path) -> bool:
    """True for a file a decision moved into the quarantine (or its trash).

    A string test, no file system call: moves write ``quarantine_dir``-prefixed paths into the catalog (a
    /groups page asks this of every member, and resolving both paths each time was 40 % of its CPU)."""
    q = str(quarantine_dir)
    return under_root(path, q) or under_root(path, _real(q))


@lru_cache(maxsize=8)
def _real(folder: str) -> str:
    return os.path.realpath(folder)


# -- actions ------------------------------------------------------------------------------------
def resolve(session: Session, *, group_id: int, action: str, keep: list[int], quarantine_dir: Path,
            vectors_fn, commit, batch: str | None = None) -> Outcome:
    """Carry out a decision on one group. ``commit`` commits ``session`` (the caller owns it; pass one
    that has not written yet: the catalog lock ``groups`` is taken first and held through the commit)."""
    if action not in ACTIONS:
        raise UnknownAction(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    with catalog_lock(session.get_bind(), "groups"):
        return _resolve(session, group_id=group_id, action=action, keep=keep, quarantine_dir=quarantine_dir,
                        vectors_fn=vectors_fn, commit=commit, batch=batch)


def _resolve(session: Session, *, group_id: int, action: str, keep: list[int], quarantine_dir: Path,
             vectors_fn, commit, batch: str | None = None) -> Outcome:
    if action not in ACTIONS:
        raise UnknownAction(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    group = session.get(DupGroup, group_id)
    if group is None:
        raise GroupNotFound(f"no duplicate group with id {group_id}")
    members = list(session.scalars(select(Image).where(Image.group_id == group_id).order_by(Image.id)))
    ids = {m.id for m in members}
    unknown = sorted(set(keep) - ids)
    if unknown:
        raise ResolutionError(f"ids {unknown} are not members of group {group_id} (members: {sorted(ids)})")
    if group.resolution in ("move_others", "trash_others"):
        raise ResolutionConflict(f"group {group_id} is already resolved ({group.resolution}); restore it first")
    if action == "keep_all":
        return _keep_all(session, group, members, keep, vectors_fn, commit, quarantine_dir, batch)
    if not keep:
        raise ResolutionError("say which photos to keep: \"keep\" must list at least one member id")
    # members moved by an earlier decision stay in the group (in quarantine): never move them twice
    others = [m for m in members if m.id not in set(keep) and not in_quarantine(m.path, quarantine_dir)]
    if not others:
        raise ResolutionError("every photo of the group is to be kept, so nothing would move: leave the photos to "
                              "move out of \"keep\" (untick them), or use keep_all (not duplicates)")
    _check_kept(group_id, [m for m in members if m.id in set(keep)])
    missing = [m.path for m in others if not os.path.lexists(m.path)]
    if missing:
        raise ResolutionConflict(f"files no longer on disk (rescan first): {', '.join(missing)}")
    # a copy overwritten since it was indexed is another picture now: never quarantine it as a duplicate
    left = [{"image_id": m.id, "path": m.path, "why": why} for m in others
            if (why := check_unchanged(m.path, size=m.bytes, mtime=m.mtime, sha256=m.sha256))]
    others = [m for m in others if m.id not in {x["image_id"] for x in left}]
    if not others:
        raise ResolutionConflict(f"nothing was moved: every photo to move has changed since it was indexed: "
                                 f"{'; '.join(x['why'] for x in left)}. Run an ingest of its folder first")
    op = uuid.uuid4().hex
    base = Path(quarantine_dir) / ("trash" if action == "trash_others" else "") / op
    moves = [{"image_id": m.id, "src": m.path, "dst": str(base / f"{m.id}_{os.path.basename(m.path)}")}
             for m in others]
    journal = Journal(journal_dir(quarantine_dir) / f"{op}.jsonl")
    journal.write({"event": "begin", "op": op, "kind": "resolve", "group_id": group_id, "action": action,
                   "keep": sorted(keep), "moves": moves, "at": utcnow().isoformat(), "batch": batch})
    _apply_moves(session, journal, moves, group, action, commit)
    return Outcome(group_id, action, op, sorted(keep), moves, left=left)


def _check_kept(group_id: int, kept: list[Image]) -> None:
    """Refuse (nothing moved) when a photo to keep is gone or no longer holds what was indexed: moving its
    copies away would leave the library without the picture."""
    why = [w for m in kept if (w := check_unchanged(m.path, size=m.bytes, mtime=m.mtime, sha256=m.sha256))]
    if why:
        raise ResolutionConflict(f"nothing was moved: a photo to keep in group {group_id} is not as indexed: "
                                 f"{'; '.join(why)}. Run an ingest of its folder, then decide again")


def restore(session: Session, *, group_id: int, quarantine_dir: Path, commit, vectors_fn=None,
            image_ids: list[int] | None = None, last: dict | None = None) -> Outcome:
    """Undo the latest committed decision on a group not undone yet: moved files back to where they were (only
    ``image_ids`` of them, when given), or a keep-all's pairs back and its "not duplicates" rows dropped (this
    needs ``vectors_fn``). ``last``: that decision's begin record when the caller has it (``latest_decisions``;
    a bulk undo reads the journals once, not once per group). Under the lock ``groups``, like ``resolve``."""
    with catalog_lock(session.get_bind(), "groups"):
        return _restore(session, group_id=group_id, quarantine_dir=quarantine_dir, commit=commit,
                        vectors_fn=vectors_fn, image_ids=image_ids, last=last)


def _restore(session: Session, *, group_id: int, quarantine_dir: Path, commit, vectors_fn=None,
             image_ids: list[int] | None = None, last: dict | None = None) -> Outcome:
    group = session.get(DupGroup, group_id)
    last = last if last is not None else _last_resolve(quarantine_dir, group_id)
    if last is None:
        if group is None:
            raise GroupNotFound(f"no duplicate group with id {group_id}")
        raise ResolutionConflict(f"group {group_id} has nothing to restore (no files were moved)")
    begin = last
    if begin.get("action") == "keep_all":
        if vectors_fn is None:
            raise ResolutionError("undoing keep-all regroups the photos: pass vectors_fn")
        return _undo_keep_all(session, begin, quarantine_dir, vectors_fn, commit)
    back, left = [], 0
    for mv in begin["moves"]:
        img = session.get(Image, mv["image_id"])
        if img is None or img.path != mv["dst"]:
            continue  # forgotten or already back
        if image_ids is not None and mv["image_id"] not in image_ids:
            left += 1
            continue
        if os.path.exists(mv["src"]):
            raise ResolutionConflict(f"cannot restore {mv['dst']}: {mv['src']} exists again")
        back.append({"image_id": mv["image_id"], "src": mv["dst"], "dst": mv["src"]})
    if not back:
        raise ResolutionConflict(f"group {group_id} has nothing to restore")
    op = uuid.uuid4().hex
    journal = Journal(journal_dir(quarantine_dir) / f"{op}.jsonl")
    # a partial restore leaves the decision in force for the files still in quarantine
    journal.write({"event": "begin", "op": op, "kind": "restore", "group_id": group_id, "undoes": begin["op"],
                   "partial": left > 0, "moves": back, "at": utcnow().isoformat()})
    _apply_moves(session, journal, back, group, group.resolution if (group is not None and left) else None, commit)
    return Outcome(group_id, "restore", op, [], back)


def _undo_keep_all(session: Session, begin: dict, quarantine_dir: Path, vectors_fn, commit) -> Outcome:
    """Put back the pairs a keep-all dropped and drop the "not duplicates" rows it added, then regroup: the
    photos form their group again, under its old id when that id is still free."""
    gid = begin["group_id"]
    ids = set(session.scalars(select(Image.id).where(Image.id.in_(begin.get("keep", [])))))
    op = uuid.uuid4().hex
    journal = Journal(journal_dir(quarantine_dir) / f"{op}.jsonl")
    journal.write({"event": "begin", "op": op, "kind": "restore", "group_id": gid, "undoes": begin["op"],
                   "moves": [], "pairs": begin.get("pairs", []), "declined": begin.get("declined", []),
                   "at": utcnow().isoformat()})

    def change() -> set[int]:
        for sa, sb in begin.get("declined", []):
            session.execute(delete(NotDuplicate).where(NotDuplicate.sha_a == sa, NotDuplicate.sha_b == sb))
        for a, b, sim, kind, inliers, agreement, *checks in begin.get("pairs", []):
            cover, shifted = (checks + [None, None])[:2]  # journals from before 0013 and 0016 lack them
            if a in ids and b in ids and session.get(Pair, (a, b)) is None:
                session.add(Pair(a_id=a, b_id=b, similarity=sim, kind=kind, inliers=inliers, agreement=agreement,
                                 cover=cover, shifted=shifted))
        if session.get(DupGroup, gid) is None:
            session.add(DupGroup(id=gid, size=0))
            session.flush()
            session.execute(update(Image).where(Image.id.in_(ids), Image.group_id.is_(None)).values(group_id=gid))
        session.flush()
        return regroup(session, ids, vectors_fn)

    live = _commit(session, journal, change, commit)
    return Outcome(gid, "restore", op, sorted(ids), [], sorted(live))


def _commit(session: Session, journal: Journal, change: Callable[[], set[int]], commit) -> set[int]:
    """Run ``change`` (the operation's file moves, journalled, and catalog writes) and commit it, journalling
    ``committing`` first and ``commit`` last; on any failure roll the session back and the files back from the
    journal (``_rollback``, which journals that). Returns what ``change`` returned."""
    try:
        live = change()
        session.flush()
        journal.write({"event": "committing"})
        fault("committing")
        commit()
    except BaseException:
        session.rollback()
        _rollback(journal, journal.records())
        raise
    fault("db-committed")
    journal.write({"event": "commit"})
    fault("commit")
    return live


def _apply_moves(session: Session, journal: Journal, moves: list[dict], group: DupGroup | None,
                 resolution: str | None, commit) -> None:
    """Move the files (journalled), point the catalog at the new paths, set the group's resolution and
    commit (``_commit``)."""
    def change() -> set[int]:
        _do_moves(journal, moves)
        for mv in moves:
            session.execute(update(Image).where(Image.id == mv["image_id"]).values(path=mv["dst"]))
        if group is not None:
            group.resolution, group.resolved_at = resolution, utcnow() if resolution else None
        return set()

    _commit(session, journal, change, commit)


def _last_resolve(quarantine_dir: Path, group_id: int) -> dict | None:
    """The begin record of the group's latest committed decision not undone by a later (whole) restore."""
    last = None
    for j in _journals(quarantine_dir):
        recs = _records(j)
        if not recs or _state(recs) != "committed" or recs[0].get("group_id") != group_id:
            continue
        if recs[0].get("kind") == "resolve":
            last = recs[0]
        elif (recs[0].get("kind") == "restore" and last is not None and recs[0].get("undoes") == last["op"]
              and not recs[0].get("partial")):
            last = None
    return last


def latest_decisions(quarantine_dir: Path) -> dict[int, dict]:
    """Each group's latest committed decision that no later whole restore undid (``_last_resolve`` of every
    group, in one pass over the journals)."""
    last: dict[int, dict] = {}
    for b in committed(quarantine_dir):
        gid = b.get("group_id")
        if b.get("kind") == "resolve":
            last[gid] = b
        elif b.get("kind") == "restore" and gid in last and b.get("undoes") == last[gid]["op"] and not b.get("partial"):
            del last[gid]
    return last


def fault(step: str) -> None:
    """Die here, as a power cut would, when ``DUPESIFT_FAULT_AT`` names this step (crash tests only)."""
    if os.environ.get("DUPESIFT_FAULT_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _do_moves(journal: Journal, moves: list[dict]) -> None:
    fault("begin")
    for i, mv in enumerate(moves):
        journal.write({"event": "move", "i": i})
        fault(f"move:{i}")
        Path(mv["dst"]).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(mv["dst"]):
            raise ResolutionConflict(f"refusing to overwrite {mv['dst']}")
        shutil.move(mv["src"], mv["dst"])
        fault(f"moved:{i}")
        journal.write({"event": "moved", "i": i})


def _rollback(journal: Journal, records: list[dict]) -> list[dict]:
    """Put every file of an uncommitted operation back at its source. Returns the moves undone."""
    begin = records[0]
    undone = []
    for mv in begin.get("moves", []):
        src, dst = mv["src"], mv["dst"]
        if os.path.exists(dst) and not os.path.exists(src):
            Path(src).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(dst, src)
            undone.append(mv)
        elif os.path.exists(dst) and os.path.exists(src) and os.path.getsize(dst) != os.path.getsize(src):
            os.remove(dst)  # a partial cross-device copy; the source is intact
    journal.write({"event": "rolledback", "undone": len(undone)})
    return undone


def _catalog_committed(session: Session, moves: list[dict]) -> bool:
    """Whether the catalog transaction of an operation committed: its photos' rows point at the new places."""
    paths = dict(session.execute(select(Image.id, Image.path).where(
        Image.id.in_([mv["image_id"] for mv in moves]))).all())
    return bool(paths) and all(paths.get(mv["image_id"], mv["dst"]) == mv["dst"] for mv in moves)


def _catalog_only_committed(session: Session, begin: dict) -> bool:
    """Whether the catalog transaction of an operation that moves no file (a keep-all or its undo) committed:
    its "not duplicates" rows and its pairs are as that operation leaves them."""
    declined = {tuple(d) for d in begin.get("declined", [])}
    have = {tuple(d) for d in session.execute(select(NotDuplicate.sha_a, NotDuplicate.sha_b).where(
        NotDuplicate.sha_a.in_([a for a, _ in declined]))).all()} & declined
    pairs = {(p[0], p[1]) for p in begin.get("pairs", [])}
    ids = {i for pair in pairs for i in pair}
    stored = {(a, b) for a, b in session.execute(select(Pair.a_id, Pair.b_id).where(
        Pair.a_id.in_(ids), Pair.b_id.in_(ids))).all()} & pairs
    if begin.get("kind") == "restore":  # an undone keep-all: its rows gone, its pairs back
        return not have and (bool(stored) or not pairs)
    return have == declined and not stored


def recover(session: Session, quarantine_dir: Path) -> list[str]:
    """Finish operations a crash interrupted: one whose catalog transaction committed is completed (its
    ``commit`` line written), any other is rolled back (files and catalog paths). Returns their op ids."""
    out = []
    for j in _journals(quarantine_dir):
        recs = j.records()
        if _state(recs) != "incomplete":
            continue
        begin = recs[0]
        moves = begin.get("moves", [])
        if any(r.get("event") == "committing" for r in recs) and (
                _catalog_committed(session, moves) if moves else _catalog_only_committed(session, begin)):
            j.write({"event": "commit", "recovered": True})
            out.append(begin["op"])
            continue
        _rollback(j, recs)
        for mv in begin.get("moves", []):
            session.execute(update(Image).where(Image.id == mv["image_id"], Image.path == mv["dst"])
                            .values(path=mv["src"]))
        out.append(begin["op"])
    return out


def history(quarantine_dir: Path, group_id: int) -> list[dict]:
    """Committed operations on a group, oldest first (for the group page)."""
    out = []
    for j in _journals(quarantine_dir):
        recs = _records(j)
        if recs and recs[0].get("group_id") == group_id:
            b = recs[0]
            out.append({"op": b["op"], "kind": b["kind"], "action": b.get("action"), "at": b.get("at"),
                        "files": len(b.get("moves", [])), "state": _state(recs)})
    return out


def _keep_all(session: Session, group: DupGroup, members: list[Image], keep: list[int], vectors_fn,
              commit, quarantine_dir: Path, batch: str | None) -> Outcome:
    chosen = [m for m in members if m.id in set(keep)] if len(keep) >= 2 else members
    decl = set()
    for a, b in combinations(chosen, 2):
        if a.sha256 and b.sha256:
            decl.add(tuple(sorted((a.sha256, b.sha256))))
    have = set()
    for sa, sb in decl:
        if session.get(NotDuplicate, (sa, sb)) is not None:
            have.add((sa, sb))
    added = sorted(decl - have)
    for sa, sb in added:
        session.add(NotDuplicate(sha_a=sa, sha_b=sb))
    ids = sorted(m.id for m in chosen)
    inside = and_(Pair.a_id.in_(ids), Pair.b_id.in_(ids))
    dropped = [[p.a_id, p.b_id, p.similarity, p.kind, p.inliers, p.agreement, p.cover, p.shifted]
               for p in session.scalars(select(Pair).where(inside))]
    session.execute(delete(Pair).where(inside))
    session.flush()
    gid = group.id
    op = uuid.uuid4().hex
    journal = Journal(journal_dir(quarantine_dir) / f"{op}.jsonl")  # what restore needs to undo it
    journal.write({"event": "begin", "op": op, "kind": "resolve", "group_id": gid, "action": "keep_all",
                   "keep": ids, "moves": [], "pairs": dropped, "declined": [list(d) for d in added],
                   "at": utcnow().isoformat(), "batch": batch})
    live = _commit(session, journal, lambda: regroup(session, [m.id for m in members], vectors_fn),
                                commit)
    return Outcome(gid, "keep_all", op, ids, [], sorted(live))


def declined_pairs(session: Session, ids: list[int]) -> set[tuple[int, int]]:
    """Pairs among ``ids`` that a user declared "not duplicates"."""
    sha = dict(session.execute(select(Image.id, Image.sha256).where(Image.id.in_(ids))).all())
    out = set()
    rows = set(session.execute(select(NotDuplicate.sha_a, NotDuplicate.sha_b).where(
        or_(NotDuplicate.sha_a.in_([s for s in sha.values() if s]),
            NotDuplicate.sha_b.in_([s for s in sha.values() if s])))).all())
    for a, b in combinations(sorted(ids), 2):
        if sha.get(a) and sha.get(b) and tuple(sorted((sha[a], sha[b]))) in rows:
            out.add((a, b))
    return out
