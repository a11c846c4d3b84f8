"""Ingest never forgets photos on weak evidence and never gets stuck: unreadable folders, empty roots,
a lost vector store, a crashing decoder, decisions racing an ingest, a model change across roots.
Real photos, real ONNX model, Milvus Lite, SQLite, real worker processes."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from indexer import resolution
from indexer.catalog import Image, ImageStatus, NotDuplicate, Pair
from indexer.config import DEFAULT_MODEL, Settings
from indexer.index import Index
from indexer.locks import catalog_lock
from indexer.pairstore import unlink_all
from tests.conftest import mild_copies, photo_files, photos_and_a_slow_png


def one_group(root: Path, offset: int, name: str = "photo") -> list[str]:
    """An original in ``root/<name>/`` and its 4 edited copies in ``root/<name>-edits/``: one group of 5."""
    src = photo_files(1, offset=offset)[0]
    (root / name).mkdir(parents=True)
    original = root / name / f"{name}.jpg"
    shutil.copy(src, original)
    return sorted([str(original), *map(str, mild_copies(src, root / f"{name}-edits", name))])


def group_paths(index: Index) -> list[list[str]]:
    return sorted(sorted(m["path"] for m in g["members"]) for g in index.groups())


def _cli_without_read_override(data: Path, *args: str) -> dict:
    """``dupesift --json ...`` in a process that file permissions really apply to."""
    return _without_read_override([sys.executable, "-m", "dupesift", "--data-dir", str(data), *args])


def _without_read_override(cmd: list[str]) -> dict:
    """Run ``cmd`` (which prints JSON) in a process that file permissions really apply to: as root, one whose
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH are dropped (setpriv), so a mode-000 folder cannot be listed."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a folder unreadable")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, DUPESIFT_DECODE_WORKERS="2"), check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_unreadable_folder_keeps_its_photos(tmp_path: Path, settings_factory) -> None:
    root = tmp_path / "lib"
    members = one_group(root, offset=610)
    settings = settings_factory()
    with Index(settings) as index:
        first = index.ingest([str(root)])
        assert first.indexed == 5 and group_paths(index) == [members]
    edits = root / "photo-edits"
    edits.chmod(0)
    try:
        s = _cli_without_read_override(settings.data_dir, "ingest", "--json", str(root))
    finally:
        edits.chmod(0o755)
    assert s["removed"] == 0 and s["kept_unreadable"] == 4 and s["unchanged"] == 1
    assert [(f["path"], f["reason"]) for f in s["failed"]] == [(str(edits), "unreadable")]
    assert s["groups"] == 1 and s["duplicates"] == 4
    with Index(settings) as index:  # readable again: nothing to redo
        again = index.ingest([str(root)])
        assert again.unchanged == 5 and again.removed == again.indexed == again.kept_unreadable == 0
        assert group_paths(index) == [members]


def test_root_that_scans_empty_keeps_its_photos_unless_pruned(tmp_path: Path, settings_factory) -> None:
    """An unmounted drive leaves its mount point behind as an empty folder."""
    root = tmp_path / "mnt" / "photos"
    members = one_group(root, offset=620)
    away = tmp_path / "unmounted"
    with Index(settings_factory()) as index:
        index.ingest([str(root)])
        away.mkdir()
        for child in root.iterdir():
            shutil.move(child, away / child.name)
        s = index.ingest([str(root)])
        assert s.removed == 0 and s.kept_unreadable == 5 and s.seen == 0
        assert len(s.warnings) == 1 and str(root) in s.warnings[0] and "--prune-empty" in s.warnings[0]
        assert group_paths(index) == [members] and index.store.count() == 5

        for child in away.iterdir():  # mounted again: everything is still known and unchanged
            shutil.move(child, root / child.name)
        back = index.ingest([str(root)])
        assert back.unchanged == 5 and back.indexed == 0 and not back.warnings

        for child in root.iterdir():  # really emptied, and the user says so
            shutil.rmtree(child)
        pruned = index.ingest([str(root)], prune_empty=True)
        assert pruned.removed == 5 and not pruned.warnings
        assert index.groups() == [] and index.store.count() == 0


def test_lost_vector_store_is_detected_and_rebuilt(tmp_path: Path, settings_factory) -> None:
    root = tmp_path / "lib"
    members = one_group(root, offset=630)
    settings = settings_factory()
    with Index(settings) as index:
        index.ingest([str(root)])
        probe = index.groups()[0]["members"][0]["id"]
    shutil.move(settings.data_dir / "milvus.db", tmp_path / "milvus.db.moved")
    with Index(settings) as index:
        assert index.store.count() == 0
        s = index.ingest([str(root)])
        assert s.healed == 5 and s.indexed == 5 and s.unchanged == 0 and s.removed == 0
        assert any("no vector" in w for w in s.warnings)
        assert index.store.count() == 5 and group_paths(index) == [members]
        assert len(index.similar_to_id(probe, k=4)) == 4
        st = index.status()
        assert st["images"] == {"indexed": 5} and st["vectors"] == 5 and st["needs_embedding"] == {}

        # a partial loss: only the missing vectors are embedded again
        lost = [m["id"] for m in index.groups()[0]["members"][:2]]
        index.store.delete(lost)
        s = index.ingest([str(root)])
        assert s.healed == 2 and s.indexed == 2 and s.unchanged == 3 and index.store.count() == 5
        assert index.ingest([str(root)]).healed == 0


def test_a_file_that_kills_its_decoder_fails_alone(tmp_path: Path) -> None:
    """A real worker death: the kernel stops a decode worker that exceeds its CPU time (the same abrupt
    end an OOM kill or a codec segfault is). A 64 MP PNG needs ~0.6 s of CPU to decode; the photos, ~10 ms."""
    root = tmp_path / "lib"
    photos_and_a_slow_png(root, 40, offset=640, png_name="p20-huge.png")
    settings = Settings(data_dir=tmp_path / "data", decode_workers=2, batch_size=8, decode_cpu_seconds=0.3)
    with Index(settings) as index:
        s = index.ingest([str(root)])
        assert [(Path(f["path"]).name, f["reason"]) for f in s.failed] == [("p20-huge.png", "decoder crashed")]
        assert "CPU time" in s.failed[0]["message"] and s.indexed == 40
        with index.catalog.session() as db:  # results stayed in step with their files through the restart
            rows = list(db.scalars(select(Image).where(Image.status == ImageStatus.indexed)))
        assert len(rows) == 40
        for img in rows:
            assert img.sha256 == hashlib.sha256(Path(img.path).read_bytes()).hexdigest(), img.path
        again = index.ingest([str(root)])  # one file to retry: decoded in a worker too, never in this process
        assert again.unchanged == 40 and [f["reason"] for f in again.failed] == ["decoder crashed"]


def _stopped_by_cpu_limit() -> None:
    os.kill(os.getpid(), signal.SIGPROF)


def test_a_dead_decoders_cause_is_read_after_its_exit_status_arrives() -> None:
    """The pool breaks when a dead worker's pipe closes, often before the kernel has its exit status
    (seen on CI: 'died on this file' for a file over the CPU limit). Asked at that moment, the cause
    must still be the CPU limit."""
    import multiprocessing as mp
    from multiprocessing.connection import wait
    from types import SimpleNamespace

    from indexer.decodepool import _death

    for _ in range(200):  # the window is short: in a plain script a quarter of tries land in it
        proc = mp.get_context("fork").Process(target=_stopped_by_cpu_limit)
        proc.start()
        wait([proc.sentinel])
        assert "0.3 s of CPU time" in _death(SimpleNamespace(_processes={proc.pid: proc}), 0.3)
        proc.join()

_INLINE_INGEST = """
import json, sys
from indexer.config import Settings
from indexer.index import Index

st = Settings(data_dir=sys.argv[1], decode_workers=1, batch_size=8, decode_cpu_seconds=0.3)
with Index(st) as index:
    s = index.ingest([sys.argv[2]])
print(json.dumps({"indexed": s.indexed, "unchanged": s.unchanged, "failed": s.failed}))
"""


def _crash_marks(data: Path) -> dict[str, int]:
    with Index(Settings(data_dir=data)) as index, index.catalog.session() as db:
        return {Path(p).name: n for p, n in db.execute(select(Image.path, Image.decode_crashes)) if n}


def test_decoding_in_process_a_file_that_kills_the_process_is_named_on_the_next_tries(tmp_path: Path) -> None:
    """decode_workers=1 (the Celery workers' mode) decodes in the caller's process: the file over the
    CPU limit stops the process itself. The rerun decodes that batch one photo at a time, marking each
    in the catalog, so the culprit's mark is the one left when the process dies again; the third run
    fails it unread and indexes everything else. Nothing indexed before the crashes is redone."""
    root = tmp_path / "lib"
    photos_and_a_slow_png(root, 20, offset=640, png_name="p10-huge.png")
    data = tmp_path / "data"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _INLINE_INGEST, str(data), str(root)],
                              capture_output=True, text=True, timeout=300, check=False)

    first = run()  # batches of 8 in name order: p00-p07 stored, then p08, p09, p10-huge ... dies
    assert first.returncode == -signal.SIGPROF, first.stderr[-2000:]
    marks = _crash_marks(data)
    assert marks["p10-huge.png"] == 1 and len(marks) == 8  # the whole unfinished batch is suspect
    second = run()  # that batch one by one: only the culprit's mark rises
    assert second.returncode == -signal.SIGPROF, second.stderr[-2000:]
    assert _crash_marks(data) == {**{k: 1 for k in marks}, "p10-huge.png": 2}
    third = run()
    assert third.returncode == 0, third.stderr[-2000:]
    s = json.loads(third.stdout)
    assert [(Path(f["path"]).name, f["reason"]) for f in s["failed"]] == [("p10-huge.png", "decoder crashed")]
    assert "died 2 times" in s["failed"][0]["message"]
    assert s["indexed"] == 12 and s["unchanged"] == 8 and _crash_marks(data) == {"p10-huge.png": 2}
    fourth = run()  # unchanged: not decoded again (the process lives), still reported
    assert fourth.returncode == 0 and json.loads(fourth.stdout)["failed"][0]["reason"] == "decoder crashed"
    PILImage.new("RGB", (161, 161), (90, 120, 40)).save(root / "p10-huge.png")  # a small file: decoded afresh
    fifth = json.loads(run().stdout)
    assert fifth["failed"] == [] and fifth["indexed"] == 1 and _crash_marks(data) == {}


def test_decision_waits_for_a_linking_ingest_and_sticks(tmp_path: Path, settings_factory) -> None:
    """An ingest links and regroups under the lock `groups` (re-entrantly: stages.finish holds it around
    Index.link); a "not duplicates" decision taken meanwhile waits, then wins over the pairs it stored."""
    root = tmp_path / "lib"
    members = one_group(root, offset=650)
    with Index(settings_factory()) as index:
        index.ingest([str(root)])
        gid = index.groups()[0]["id"]
        with index.catalog.session() as s:  # what a threshold change does: everything is linked again
            unlink_all(s)
        holding, go, linked = threading.Event(), threading.Event(), []

        def ingest_side() -> None:
            with catalog_lock(index.catalog, "groups"):
                holding.set()
                go.wait(30)
                linked.append(index.link())  # takes the lock again inside: must not deadlock

        def decide() -> None:
            with index.catalog.session() as s:
                resolution.resolve(s, group_id=gid, action="keep_all", keep=[], quarantine_dir=tmp_path / "q",
                                   vectors_fn=index.store.get, commit=s.commit)

        ing = threading.Thread(target=ingest_side, daemon=True)
        ing.start()
        assert holding.wait(30)
        dec = threading.Thread(target=decide, daemon=True)
        dec.start()
        dec.join(1.5)
        assert dec.is_alive(), "the decision did not wait for the ingest holding the groups lock"
        go.set()
        ing.join(60)
        assert not ing.is_alive(), "Index.link deadlocked under its caller's lock"
        dec.join(60)
        assert not dec.is_alive() and linked and linked[0] >= 4
        with index.catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(Pair)) == 0
            assert s.scalar(select(func.count()).select_from(NotDuplicate)) == 10
        assert index.groups() == []
        s = index.ingest([str(root)])  # and no later ingest brings the group back
        assert s.unchanged == 5 and index.groups() == []
    assert len(members) == 5


def test_a_decision_made_while_a_copy_is_indexed_is_not_undone_by_its_exact_pair(
        tmp_path: Path, settings_factory) -> None:
    """A byte-identical copy gets its "exact" pair without the embedder, when its batch is stored. A
    "not duplicates" decision on the group taken while that batch is in flight must hold: the pair is
    stored under the lock `groups`, so it either sees the decision or exists before it (and goes with
    the group). Here the decision lands while the ingest waits for the lock with the copy indexed."""
    root = tmp_path / "lib"
    members = one_group(root, offset=655)
    shutil.copy(members[0], root / "photo" / "twin1.jpg")  # the group holds two identical files: the
    with Index(settings_factory()) as index:               # decision then covers their content pair too
        index.ingest([str(root)])
        (group,) = index.groups()
        assert len(group["members"]) == 6
        shutil.copy(members[0], root / "twin2.jpg")
        from indexer import stages
        from indexer.jobs import create_job

        job = create_job(index.catalog, "ingest", {"paths": [str(root)]})  # the queue's stages, in threads here
        (batch,) = stages.plan(index, job)
        done: list = []
        with catalog_lock(index.catalog, "groups"):
            ing = threading.Thread(target=lambda: done.append(stages.embed(index, job, batch)), daemon=True)
            ing.start()
            deadline = time.time() + 60
            while True:  # the copy's batch is stored; its exact pair waits for the lock
                with index.catalog.session() as s:
                    if s.scalar(select(Image.status).where(Image.path == str(root / "twin2.jpg"))) \
                            == ImageStatus.indexed:
                        break
                assert time.time() < deadline and ing.is_alive()
                time.sleep(0.05)
            with index.catalog.session() as s:
                resolution.resolve(s, group_id=group["id"], action="keep_all", keep=[], quarantine_dir=tmp_path / "q",
                                   vectors_fn=index.store.get, commit=s.commit)
        ing.join(60)
        assert not ing.is_alive() and done == [(1, 0)]
        assert stages.finish(index, job)
        assert index.groups() == []  # twin2 joined no one: its content was declined with the group
        with index.catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(Pair)) == 0


def _other_version(model: Path, out: Path) -> Path:
    from indexer.modelspec import read_spec, write_spec

    shutil.copy(model, out)
    spec = read_spec(out)
    write_spec(out, type(spec)(**{**spec.__dict__, "version": spec.version + "-b"}))
    return out


def test_model_change_marks_other_roots_as_waiting(tmp_path: Path, settings_factory) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    group_a, group_b = one_group(a, offset=660), one_group(b, offset=670)
    base = settings_factory()
    with Index(base) as old:
        old.ingest([str(a), str(b)])
        assert group_paths(old) == sorted([group_a, group_b])
    new_model = _other_version(DEFAULT_MODEL, tmp_path / "model-b.onnx")
    with Index(base.model_copy(update={"model_path": new_model})) as new:
        s = new.ingest([str(a)])
        assert s.indexed == 5 and s.needs_embedding == {str(b): 5}
        assert len(s.warnings) == 1 and str(b) in s.warnings[0]
        st = new.status()
        assert st["images"] == {"indexed": 5, "pending": 5} and st["needs_embedding"] == {str(b): 5}
        assert st["vectors"] == 5
        assert group_paths(new) == [group_a]  # b's photos have no vector of this model: in no group yet

        s = new.ingest([str(b)])
        assert s.indexed == 5 and s.needs_embedding == {} and not s.warnings
        assert group_paths(new) == sorted([group_a, group_b]) and new.status()["needs_embedding"] == {}


_PLAN = """
import json, sys
from indexer import stages
from indexer.config import Settings
from indexer.jobs import create_job
from indexer.index import Index

with Index(Settings(data_dir=sys.argv[1], decode_workers=2)) as index:
    job = create_job(index.catalog, "ingest", {"paths": sys.argv[2:], "prune_empty": True})
    batches = stages.plan(index, job)
    with index.catalog.session() as s:
        from indexer.catalog import Job
        params = s.get(Job, job).params
print(json.dumps({"job": job, "batches": batches, "params": params}))
"""


def test_queued_plan_heals_keeps_unreadable_and_prunes_like_the_in_process_ingest(
        tmp_path: Path, settings_factory) -> None:
    """``stages.plan`` (the queue's scan) has the in-process ingest's safety: lost vectors are embedded
    again, photos under a folder it cannot list are kept, and a root emptied on purpose is pruned."""
    from indexer import stages

    a, b = tmp_path / "a", tmp_path / "b"
    members = one_group(a, offset=682)  # a textured photo: a brightened copy of a smooth one may stay apart
    one_group(b, offset=690)
    settings = settings_factory()
    with Index(settings) as index:
        index.ingest([str(a), str(b)])
        with index.catalog.session() as s:
            original = s.scalar(select(Image.id).where(Image.path == str(a / "photo" / "photo.jpg")))
        index.store.delete([original])  # the store lost one vector
    for child in b.iterdir():  # b really emptied
        shutil.rmtree(child)
    edits = a / "photo-edits"
    (edits / "photo_small.jpg").unlink()  # gone, but under a folder the scan cannot list: kept
    edits.chmod(0o111)
    try:
        out = _without_read_override([sys.executable, "-c", _PLAN, str(settings.data_dir), str(a), str(b)])
    finally:
        edits.chmod(0o755)
    partial = out["params"]["partial"]
    assert out["batches"] == [[original]] and partial["healed"] == 1
    assert partial["removed"] == 5 and partial["kept_unreadable"] == 4
    assert [u["path"] for u in out["params"]["unreadable"]] == [str(edits)]
    assert any("no vector" in w for w in partial["warnings"])
    with Index(settings) as index:
        assert stages.embed(index, out["job"], out["batches"][0]) == (1, 0)
        assert stages.finish(index, out["job"])
        assert index.store.count() == 5 and group_paths(index) == [members]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dupesift", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, DUPESIFT_DECODE_WORKERS="2", COLUMNS="200"), check=False)


def test_cli_prune_empty_and_the_text_summary_of_what_was_kept(tmp_path: Path, settings_factory) -> None:
    root = tmp_path / "mnt" / "photos"
    one_group(root, offset=700)
    settings = settings_factory()
    with Index(settings) as index:
        index.ingest([str(root)])
    for child in root.iterdir():
        shutil.rmtree(child)
    r = _cli(settings.data_dir, "ingest", str(root))  # the text summary says what it kept, and why
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith("│ kept") and ln.rstrip(" │").endswith(" 5") for ln in r.stdout.splitlines()), r.stdout
    assert "healed" in r.stdout and "warning:" in r.stdout and "--prune-empty" in r.stdout
    r = _cli(settings.data_dir, "ingest", "--prune-empty", "--json", str(root))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["removed"] == 5 and s["kept_unreadable"] == 0 and not s["warnings"]
    r = _cli(settings.data_dir, "status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"vectors\S*: 0$", r.stdout, re.MULTILINE) and re.search(r"needs_embedding\S*: none$", r.stdout, re.MULTILINE)
