"""indexer.resolution on a bare catalog: journal-before-move, rollback on failure, crash recovery."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from api.errors import status_for
from indexer import resolution
from indexer.catalog import Catalog
from indexer.catalog.models import DupGroup, Image, ImageStatus, NotDuplicate, Pair
from indexer.grouping import MAX_SHIFTED, regroup
from indexer.resolution import Journal, ResolutionError, journal_dir


@pytest.fixture
def lib(tmp_path: Path):
    cat = Catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    root = tmp_path / "lib"
    root.mkdir()
    with cat.session() as s:
        g = DupGroup(size=3, keeper_id=1, total_bytes=30, reclaimable_bytes=20)
        s.add(g)
        s.flush()
        for i in (1, 2, 3):
            p = root / f"p{i}.jpg"
            p.write_bytes(bytes([i]) * 10)
            s.add(Image(id=i, path=str(p), bytes=10, mtime=p.stat().st_mtime, sha256=f"{i:064x}", status=ImageStatus.indexed, group_id=g.id,
                        width=10, height=10))
        s.flush()
        s.add_all([Pair(a_id=1, b_id=2, similarity=0.99), Pair(a_id=1, b_id=3, similarity=0.98)])
        gid = g.id
    yield cat, root, tmp_path / "q", gid
    cat.dispose()


def _vectors(ids: list[int]) -> dict[int, np.ndarray]:
    return {i: np.ones(4, dtype=np.float32) / 2 for i in ids}


def test_move_failure_midway_rolls_back(lib, monkeypatch) -> None:
    cat, root, q, gid = lib
    real_move, calls = shutil.move, []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_move(src, dst)

    monkeypatch.setattr(resolution.shutil, "move", flaky)
    with cat.session() as s, pytest.raises(OSError):
        resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q,
                           vectors_fn=_vectors, commit=s.commit)
    monkeypatch.setattr(resolution.shutil, "move", real_move)
    assert sorted(p.name for p in root.iterdir()) == ["p1.jpg", "p2.jpg", "p3.jpg"]
    with cat.session() as s:
        assert [i.path for i in s.scalars(select(Image).order_by(Image.id))] == [str(root / f"p{i}.jpg") for i in (1, 2, 3)]
        assert s.get(DupGroup, gid).resolution is None
    (journal,) = list(journal_dir(q).glob("*.jsonl"))
    assert [r["event"] for r in Journal(journal).records()][-1] == "rolledback"


def test_recover_after_crash_between_moves(lib) -> None:
    """A process killed after moving one file (journal says 'move' 'moved' 'move', no commit)."""
    cat, root, q, gid = lib
    dst = q / "op1" / "2_p2.jpg"
    dst.parent.mkdir(parents=True)
    shutil.move(root / "p2.jpg", dst)
    j = Journal(journal_dir(q) / "op1.jsonl")
    j.write({"event": "begin", "op": "op1", "kind": "resolve", "group_id": gid, "action": "move_others",
             "moves": [{"image_id": 2, "src": str(root / "p2.jpg"), "dst": str(dst)},
                       {"image_id": 3, "src": str(root / "p3.jpg"), "dst": str(q / "op1" / "3_p3.jpg")}]})
    j.write({"event": "move", "i": 0})
    j.write({"event": "moved", "i": 0})
    j.write({"event": "move", "i": 1})
    with open(j.path, "a") as f:
        f.write('{"event": "mov')  # torn last line
    with cat.session() as s:
        assert resolution.recover(s, q) == ["op1"]
    assert (root / "p2.jpg").exists() and (root / "p3.jpg").exists() and not dst.exists()
    with cat.session() as s:
        assert resolution.recover(s, q) == []  # idempotent
        assert resolution.history(q, gid)[0]["state"] == "rolledback"


def test_resolve_then_restore_and_keep_all(lib) -> None:
    cat, root, q, gid = lib
    with cat.session() as s:
        out = resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q,
                                 vectors_fn=_vectors, commit=s.commit)
    assert len(out.moved) == 2 and not (root / "p2.jpg").exists()
    recs = [json.loads(x) for x in (journal_dir(q) / f"{out.op}.jsonl").read_text().splitlines()]
    assert [r["event"] for r in recs] == ["begin", "move", "moved", "move", "moved", "committing", "commit"]
    with cat.session() as s, pytest.raises(ResolutionError) as e:
        resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=q, vectors_fn=_vectors,
                           commit=s.commit)
    assert status_for(e.value) == 409  # the API's status for it
    with cat.session() as s:
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit)
    assert (root / "p2.jpg").exists()
    with cat.session() as s:
        out = resolution.resolve(s, group_id=gid, action="keep_all", keep=[1, 2], quarantine_dir=q,
                                 vectors_fn=_vectors, commit=s.commit)
    with cat.session() as s:
        assert s.scalars(select(NotDuplicate)).all()[0].sha_a == f"{1:064x}"
        assert {(p.a_id, p.b_id) for p in s.scalars(select(Pair))} == {(1, 3)}
        assert out.groups_after == [gid] and s.get(DupGroup, gid).size == 2  # 1~3 still pairs; 2 left the group
        assert s.get(Image, 2).group_id is None


def test_new_copy_reopens_a_resolved_group_and_moved_files_stay_put(lib) -> None:
    from indexer.grouping import regroup

    cat, root, q, gid = lib
    with cat.session() as s:
        resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q,
                           vectors_fn=_vectors, commit=s.commit)
    with cat.session() as s:  # a rescan that finds nothing new keeps the decision
        regroup(s, [1, 2, 3], _vectors)
    with cat.session() as s:
        assert s.get(DupGroup, gid).resolution == "move_others"
        moved = {i.id: i.path for i in s.scalars(select(Image).where(Image.id.in_([2, 3])))}
    with cat.session() as s:  # a new copy of photo 1 arrives and joins the group
        p = root / "p4.jpg"
        p.write_bytes(b"\x04" * 10)
        s.add(Image(id=4, path=str(p), bytes=10, mtime=p.stat().st_mtime, sha256=f"{4:064x}", status=ImageStatus.indexed, width=10, height=10))
        s.flush()
        s.add(Pair(a_id=1, b_id=4, similarity=0.97))
        s.flush()
        regroup(s, [4], _vectors)
    with cat.session() as s:
        g = s.get(DupGroup, gid)
        assert g.resolution is None and g.size == 4 and s.get(Image, 4).group_id == gid
    with cat.session() as s:  # deciding again moves only the newcomer
        out = resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q,
                                 vectors_fn=_vectors, commit=s.commit)
    assert [m["image_id"] for m in out.moved] == [4]
    with cat.session() as s:
        assert {i.id: i.path for i in s.scalars(select(Image).where(Image.id.in_([2, 3])))} == moved
        assert s.get(DupGroup, gid).resolution == "move_others"
    assert sorted(p.name for p in root.iterdir()) == ["p1.jpg"]


def _finishes(fn, timeout: float) -> bool:
    """Run ``fn`` in a thread; True when it returned within ``timeout`` seconds."""
    import threading

    returned = threading.Event()
    t = threading.Thread(target=lambda: (fn(), returned.set()), daemon=True)
    t.start()
    t.join(timeout)
    return returned.is_set()


def test_catalog_lock_is_reentrant_in_its_thread_and_exclusive_across_threads(lib) -> None:
    import threading

    from indexer.locks import catalog_lock

    cat = lib[0]

    def nested() -> None:
        with catalog_lock(cat, "groups"), catalog_lock(cat.engine, "groups"), catalog_lock(cat, "groups"):
            pass

    assert _finishes(nested, 10), "a thread deadlocked on the lock it already holds"
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with catalog_lock(cat, "groups"):
            held.set()
            release.wait(30)

    threading.Thread(target=holder, daemon=True).start()
    assert held.wait(10)
    got = threading.Event()

    def other() -> None:
        with catalog_lock(cat, "groups"):
            got.set()

    assert not _finishes(other, 1.0) and not got.is_set()  # another thread waits for the holder
    release.set()
    assert got.wait(10)


def test_decisions_wait_for_the_groups_lock(lib) -> None:
    """resolve/restore write pairs and groups: they wait while an ingest links under the lock."""
    import threading

    from indexer.locks import catalog_lock

    cat, root, q, gid = lib

    def decide(action: str) -> None:
        with cat.session() as s:
            if action == "restore":
                resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit)
            else:
                resolution.resolve(s, group_id=gid, action=action, keep=[1], quarantine_dir=q,
                                   vectors_fn=_vectors, commit=s.commit)

    for action in ("move_others", "restore", "keep_all"):
        done = threading.Event()
        with catalog_lock(cat, "groups"):
            t = threading.Thread(target=lambda a=action, d=done: (decide(a), d.set()), daemon=True)
            t.start()
            t.join(1.0)
            assert not done.is_set(), f"{action} did not wait for the groups lock"
        t.join(30)
        assert done.is_set(), f"{action} did not finish once the lock was free"
    assert (root / "p2.jpg").exists() and (root / "p3.jpg").exists()  # moved, restored
    with cat.session() as s:
        assert {(p.a_id, p.b_id) for p in s.scalars(select(Pair))} == set()  # keep_all [1]: all three chosen
        assert len(s.scalars(select(NotDuplicate)).all()) == 3


def test_keep_all_is_undone_by_restore(lib) -> None:
    """keep_all drops the pairs and records "not duplicates"; restore puts both back and the group returns
    under its old id (it used to answer 'no duplicate group')."""
    cat, _root, q, gid = lib
    with cat.session() as s:
        out = resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=q, vectors_fn=_vectors,
                                 commit=s.commit)
    assert out.groups_after == []
    with cat.session() as s:
        assert s.get(DupGroup, gid) is None and len(s.scalars(select(NotDuplicate)).all()) == 3
    with cat.session() as s:
        back = resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, vectors_fn=_vectors)
    assert back.groups_after == [gid]
    with cat.session() as s:
        assert s.get(DupGroup, gid).size == 3 and s.scalars(select(NotDuplicate)).all() == []
        assert {(p.a_id, p.b_id, p.similarity) for p in s.scalars(select(Pair))} == {(1, 2, 0.99), (1, 3, 0.98)}
    with cat.session() as s, pytest.raises(ResolutionError):  # undone once: nothing left to undo
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, vectors_fn=_vectors)


def test_undone_keep_all_puts_back_what_each_pair_was_checked_for(lib) -> None:
    """A keep-all journals the pairs it drops with their checks (content cover, cells that moved); the undo puts
    them back as they were, so a group that bulk review held back is held back again."""
    cat, _root, q, gid = lib
    with cat.session() as s:
        s.execute(update(Pair).where(Pair.a_id == 1, Pair.b_id == 2)
                  .values(kind="verified", inliers=90, agreement=0.9, cover=0.7, shifted=MAX_SHIFTED))
        regroup(s, [1, 2, 3], _vectors)
        s.commit()
        assert s.get(DupGroup, gid).look_only is True
    with cat.session() as s:
        resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=q, vectors_fn=_vectors,
                           commit=s.commit)
    with cat.session() as s:
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, vectors_fn=_vectors)
    with cat.session() as s:
        p = s.get(Pair, (1, 2))
        assert (p.kind, p.inliers, p.agreement, p.cover, p.shifted) == ("verified", 90, 0.9, 0.7, MAX_SHIFTED)
        assert s.get(DupGroup, gid).look_only is True


def test_restore_one_file_keeps_the_rest_restorable(lib) -> None:
    cat, root, q, gid = lib
    with cat.session() as s:
        resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q, vectors_fn=_vectors,
                           commit=s.commit)
    with cat.session() as s:
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, image_ids=[2])
    assert (root / "p2.jpg").exists() and not (root / "p3.jpg").exists()
    with cat.session() as s:
        assert s.get(DupGroup, gid).resolution == "move_others"  # p3 is still in quarantine
    with cat.session() as s:
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit)
    assert (root / "p3.jpg").exists()
    with cat.session() as s:
        assert s.get(DupGroup, gid).resolution is None


RESOLVE = """
import sys
from pathlib import Path
from indexer import resolution
from indexer.catalog import Catalog

url, gid, q = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
cat = Catalog(url)
with cat.session() as s:
    resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q, vectors_fn=lambda ids: {},
                       commit=s.commit)
"""
STEPS = ["begin", "move:0", "moved:0", "move:1", "moved:1", "committing", "db-committed", "commit"]


@pytest.mark.parametrize("step", STEPS)
def test_a_resolve_killed_at_any_step_recovers_to_agreement(lib, step) -> None:
    """SIGKILL at each step of a resolve, then the server's start-up recovery: catalog, journal and files agree
    (all moved, resolved and committed, or nothing moved, open and rolled back), and the group can be decided
    again or restored."""
    import os
    import subprocess
    import sys

    cat, root, q, gid = lib
    env = {**os.environ, "DUPESIFT_FAULT_AT": step}
    run = subprocess.run([sys.executable, "-c", RESOLVE, cat.url, str(gid), str(q)], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -9, (run.returncode, run.stderr[-2000:])
    with cat.session() as s:
        resolution.recover(s, q)
    (journal,) = list(journal_dir(q).glob("*.jsonl"))
    state = resolution.history(q, gid)[0]["state"]
    begin = Journal(journal).records()[0]
    with cat.session() as s:
        paths = {i.id: i.path for i in s.scalars(select(Image).where(Image.id.in_([2, 3])))}
        resolved = s.get(DupGroup, gid).resolution
    moved = {mv["image_id"]: mv["dst"] for mv in begin["moves"]}
    if STEPS.index(step) >= STEPS.index("db-committed"):  # the catalog committed: the decision stands
        assert state == "committed" and resolved == "move_others" and paths == moved
        assert all(os.path.exists(d) for d in moved.values()) and sorted(p.name for p in root.iterdir()) == ["p1.jpg"]
        with cat.session() as s:
            resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit)
    else:
        assert state == "rolledback" and resolved is None, (state, resolved)
        assert paths == {i: str(root / f"p{i}.jpg") for i in (2, 3)}
        assert not any(os.path.exists(d) for d in moved.values())
        with cat.session() as s:
            resolution.resolve(s, group_id=gid, action="move_others", keep=[1], quarantine_dir=q,
                               vectors_fn=_vectors, commit=s.commit)
    assert sorted(p.name for p in root.iterdir()) in (["p1.jpg"], ["p1.jpg", "p2.jpg", "p3.jpg"])


KEEP_ALL = """
import sys
from pathlib import Path
import numpy as np
from indexer import resolution
from indexer.catalog import Catalog

url, gid, q, what = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
cat = Catalog(url)
vectors = lambda ids: {i: np.ones(4, dtype=np.float32) / 2 for i in ids}
with cat.session() as s:
    if what == "keep_all":
        resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=q, vectors_fn=vectors,
                           commit=s.commit)
    else:
        resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, vectors_fn=vectors)
"""
CATALOG_ONLY_STEPS = ["committing", "db-committed", "commit"]


@pytest.mark.parametrize("step", CATALOG_ONLY_STEPS)
@pytest.mark.parametrize("what", ["keep_all", "undo"])
def test_a_keep_all_or_its_undo_killed_at_any_step_can_still_be_undone(lib, what, step) -> None:
    """SIGKILL around the catalog commit of a keep-all (or of its undo), then start-up recovery: the journal
    agrees with the catalog (a committed keep-all stays committed, so it can still be undone; an uncommitted
    one is rolled back and the group is whole)."""
    import os
    import subprocess
    import sys

    cat, _root, q, gid = lib
    if what == "undo":
        with cat.session() as s:
            resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=q, vectors_fn=_vectors,
                               commit=s.commit)
    env = {**os.environ, "DUPESIFT_FAULT_AT": step}
    run = subprocess.run([sys.executable, "-c", KEEP_ALL, cat.url, str(gid), str(q), what], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -9, (run.returncode, run.stderr[-2000:])
    with cat.session() as s:
        assert bool(resolution.recover(s, q)) == (step != "commit")  # "commit": the journal was already whole
        s.commit()
    states = [h["state"] for h in resolution.history(q, gid)]
    committed = CATALOG_ONLY_STEPS.index(step) >= CATALOG_ONLY_STEPS.index("db-committed")
    assert states[-1] == ("committed" if committed else "rolledback"), states
    with cat.session() as s:
        declined = len(s.scalars(select(NotDuplicate)).all())
        pairs = len(s.scalars(select(Pair)).all())
    kept_apart = (what == "keep_all") == committed  # a committed keep-all, or an undo that did not commit
    assert (declined, pairs) == ((3, 0) if kept_apart else (0, 2)), (declined, pairs)
    if kept_apart:  # the decision stands and can still be undone
        with cat.session() as s:
            back = resolution.restore(s, group_id=gid, quarantine_dir=q, commit=s.commit, vectors_fn=_vectors)
        assert back.groups_after == [gid]
