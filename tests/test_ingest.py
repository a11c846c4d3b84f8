"""End to end on the embedded default: real photos, real ONNX model, Milvus Lite, SQLite/PostgreSQL."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.index import Index
from tests.conftest import REALDUP, mild_copies, photo_files
from tests.test_decode import _png_header_only


def build_library(root: Path) -> dict:
    """Two photos with edited copies (and one byte-identical copy), four distinct photos, bad files."""
    photos = photo_files(6, offset=300)
    groups = []
    for n, src in enumerate(photos[:2]):
        folder = root / f"album{n}"
        folder.mkdir(parents=True)
        original = folder / f"original{n}.jpg"
        shutil.copy(src, original)
        members = [original, *mild_copies(src, root / "edits" / f"set{n}", f"copy{n}")]
        groups.append(members)
    exact = root / "backup" / "original0-copy.jpg"
    exact.parent.mkdir()
    shutil.copy(groups[0][0], exact)
    groups[0].append(exact)
    singles = []
    for n, src in enumerate(photos[2:]):
        p = root / "misc" / f"single{n}.jpg"
        p.parent.mkdir(exist_ok=True)
        shutil.copy(src, p)
        singles.append(p)
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    data = photos[0].read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (bad / "bomb.png").write_bytes(_png_header_only(40_000, 40_000))
    (bad / "notes.txt").write_text("ignored: not an image extension")
    return {"groups": [sorted(map(str, g)) for g in groups], "singles": [str(s) for s in singles]}


def group_paths(index: Index) -> list[list[str]]:
    return sorted(sorted(m["path"] for m in g["members"]) for g in index.groups())


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "library"
    truth = build_library(root)
    return root, truth


def test_ingest_groups_reruns_edits_and_deletes(library, settings_factory) -> None:
    root, truth = library
    settings = settings_factory()
    with Index(settings) as index:
        s = index.ingest([str(root)])
        assert s.seen == 2 * 5 + 1 + 4 + 4 and s.ignored == 1
        assert s.indexed == 15 and s.exact_copies == 1
        reasons = {Path(f["path"]).name: f["reason"] for f in s.failed}
        assert reasons == {"zero.jpg": "empty", "text.png": "not-an-image", "truncated.jpg": "corrupt",
                           "bomb.png": "too-large"}
        assert group_paths(index) == sorted(truth["groups"])
        assert s.groups == 2 and s.duplicates == 9
        g0 = next(g for g in index.groups() if str(root / "backup" / "original0-copy.jpg") in [m["path"] for m in g["members"]])
        keeper = next(m for m in g0["members"] if m["id"] == g0["keeper"])
        assert keeper["width"] * keeper["height"] == max(m["width"] * m["height"] for m in g0["members"])
        assert g0["keeper_reason"] and 0 <= g0["max_distance"] <= 1

        again = index.ingest([str(root)])
        assert again.indexed == 0 and again.unchanged == 15 and again.removed == 0
        assert group_paths(index) == sorted(truth["groups"])

        # change a single into a copy of group 1's original; delete a copy of group 0
        single = Path(truth["singles"][0])
        Image.open(truth["groups"][1][0] if truth["groups"][1][0].endswith("original1.jpg") else
                   next(p for p in truth["groups"][1] if p.endswith("original1.jpg"))).save(single, quality=80)
        os.utime(single, (time.time() + 5, time.time() + 5))
        gone = next(p for p in truth["groups"][0] if p.endswith("copy0_small.jpg"))
        os.remove(gone)
        third = index.ingest([str(root)])
        assert third.changed == 1 and third.removed == 1 and third.indexed == 1
        want = sorted([sorted(p for p in truth["groups"][0] if p != gone), sorted(truth["groups"][1] + [str(single)])])
        assert group_paths(index) == want
        assert index.store.count() == 14  # one removed, none duplicated


def test_transitive_grouping(tmp_path: Path, settings_factory) -> None:
    """A~B and A~C group B and C even when B and C are not within the threshold."""
    src = Image.open(photo_files(1, offset=40)[0]).convert("RGB")
    w, h = src.size
    root = tmp_path / "t"
    root.mkdir()
    src.save(root / "a.jpg", quality=95)
    src.crop((0, 0, int(w * 0.62), h)).save(root / "b.jpg", quality=95)
    src.crop((int(w * 0.38), 0, w, h)).save(root / "c.jpg", quality=95)
    probe = Index(settings_factory(data_dir=tmp_path / "probe"))
    from indexer.decode import load_image

    vec = probe.embedder.embed(np.stack([load_image(root / n, max_pixels=10**9, size=probe.spec.input_size).pixels
                                         for n in ("a.jpg", "b.jpg", "c.jpg")]))
    probe.close()
    sab, sac, sbc = float(vec[0] @ vec[1]), float(vec[0] @ vec[2]), float(vec[1] @ vec[2])
    assert sbc < min(sab, sac), "the halves must be further from each other than from the whole"
    threshold = (sbc + min(sab, sac)) / 2
    with Index(settings_factory(threshold=threshold)) as index:
        index.ingest([str(root)])
        groups = index.groups()
        assert len(groups) == 1 and {Path(m["path"]).name for m in groups[0]["members"]} == {"a.jpg", "b.jpg", "c.jpg"}
        assert groups[0]["max_distance"] == pytest.approx(1 - sbc, abs=1e-4)


def test_exif_rotated_and_heic_copies_match(tmp_path: Path, settings_factory) -> None:
    """A copy stored turned with an EXIF orientation tag that turns it back, and a HEIC copy, group with their
    photo. ../shared's pdq/exif-rotn shots (each taken at its own moment, framed otherwise: another photo of the
    scene, not a copy) do not join it (``grouping.two_moments``)."""
    import pillow_heif

    root = tmp_path / "lib"
    shutil.copytree(REALDUP / "pdq" / "exif-rotn", root / "exif")
    with Image.open(root / "exif" / "exif-rotn-1.jpg") as im:
        exif = im.getexif()
        exif[0x0112] = 6  # stored turned a quarter left: the viewer turns it right
        im.transpose(Image.Transpose.ROTATE_90).save(root / "exif" / "turned.jpg", quality=90, exif=exif)
    src = photo_files(1, offset=80)[0]
    (root / "heic").mkdir()
    shutil.copy(src, root / "heic" / "photo.jpg")
    pillow_heif.from_pillow(Image.open(src).convert("RGB")).save(str(root / "heic" / "photo.heic"), quality=75)
    with Index(settings_factory()) as index:
        s = index.ingest([str(root)])
        assert not s.failed
        names = sorted(sorted(Path(m["path"]).name for m in g["members"]) for g in index.groups())
        assert ["photo.heic", "photo.jpg"] in names
        assert ["exif-rotn-1.jpg", "turned.jpg"] in names, names


def _cli(data_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "dupesift", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, env=e, timeout=600, check=False)


def test_cli_contract_and_reopen_in_new_process(library, tmp_path: Path) -> None:
    root, truth = library
    data = tmp_path / "cli-data"
    r = _cli(data, "ingest", str(root))
    assert r.returncode == 0, r.stderr
    assert "newly indexed" in r.stdout and "failed files" in r.stdout and "too-large" in r.stdout
    r = _cli(data, "groups", "--json")  # a new process reopens the Milvus Lite file and the catalog
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["groups"]) == 2
    for g in doc["groups"]:
        assert set(g) >= {"id", "members", "keeper", "keeper_reason", "max_distance"}
        assert g["keeper"] in [m["id"] for m in g["members"]]
        for m in g["members"]:
            assert set(m) >= {"id", "path", "bytes", "width", "height", "format", "mtime", "sha256", "similarity_to_keeper"}
            assert os.path.isabs(m["path"]) and len(m["sha256"]) == 64
    query = next(p for p in truth["groups"][1] if p.endswith("_bright.png"))
    r = _cli(data, "similar", query, "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    assert res[0]["path"] == query and res[0]["similarity"] > 0.999 and res[0]["is_duplicate"]
    assert res[1]["path"] in truth["groups"][1] and res[1]["is_duplicate"]
    r = _cli(data, "status", "--json")
    st = json.loads(r.stdout)
    assert st["images"]["indexed"] == 15 and st["groups"] == 2 and st["data_dir"] == str(data)
    r = _cli(data, "ingest", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def test_postgres_catalog(library, settings_factory, pg_url) -> None:
    root, truth = library
    with Index(settings_factory(database_url=pg_url)) as index:
        s = index.ingest([str(root)])
        assert s.indexed == 15 and len(s.failed) == 4
        assert group_paths(index) == sorted(truth["groups"])
        assert index.ingest([str(root)]).indexed == 0
        index.catalog.dispose()


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for n, src in enumerate(photo_files(120, offset=500)):
        shutil.copy(src, root / f"p{n:03d}.jpg")
    data = tmp_path / "kill-data"
    env = dict(os.environ, DUPESIFT_BATCH_SIZE="8", DUPESIFT_DECODE_WORKERS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dupesift", "--data-dir", str(data), "ingest", str(root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = data / "catalog.sqlite3"
    deadline = time.time() + 180
    indexed = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    indexed = c.execute("select count(*) from images where status='indexed'").fetchone()[0]
            except sqlite3.Error:
                continue
            if indexed >= 16:
                break
    assert proc.poll() is None, "ingest finished before it could be killed; make the library larger"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process tree, as a crash or OOM kill would
    proc.wait()
    time.sleep(1)
    with sqlite3.connect(db) as c:
        before = c.execute("select count(*) from images where status='indexed'").fetchone()[0]
    assert 0 < before < 120
    r = _cli(data, "ingest", "--json", str(root), env={"DUPESIFT_BATCH_SIZE": "8"})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["indexed"] == 120 - before and summary["unchanged"] == before
    st = json.loads(_cli(data, "status", "--json").stdout)
    assert st["images"] == {"indexed": 120}
    with sqlite3.connect(db) as c:  # the killed run's job is not left "running" forever
        jobs = dict(c.execute("select status, count(*) from jobs group by status").fetchall())
    assert jobs == {"interrupted": 1, "done": 1}, jobs
    from indexer.config import Settings

    with Index(Settings(data_dir=data)) as index:
        assert index.store.count() == 120


def test_lite_store_busy_is_a_clear_error_and_close_releases_it(tmp_path: Path, settings_factory) -> None:
    from indexer.errors import StoreBusy

    data = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from indexer.config import Settings; from indexer.index import Index;"
        f"i = Index(Settings(data_dir={str(data)!r})); print('ready', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy, match="open in another process"):
            Index(settings_factory(data_dir=data))
    finally:
        holder.kill()
        holder.wait()
    first = Index(settings_factory(data_dir=data))
    first.close()
    with Index(settings_factory(data_dir=data)) as again:  # same process, after close: lock was released
        assert again.store.count() == 0
