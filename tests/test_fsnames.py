"""File names that are not UTF-8: stored and served byte for byte, by the CLI and the API (issue 28, item 1)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from indexer.config import Settings
from indexer.fsnames import MARK, from_text, to_text
from tests.conftest import BIN, photo_files

BAD = b"bad\xff\xfe.jpg"
COPY = b"copy\xc3(" + MARK.encode() + b".jpg"  # an invalid sequence beside a literal U+FFFD


def _library(root: Path) -> dict[str, bytes]:
    """A photo, a byte-identical copy under a non-UTF-8 name, another photo under one, and one photo whose path
    is too long for the catalog once escaped."""
    root.mkdir(parents=True)
    a, b = photo_files(2, offset=610)
    shutil.copy(a, root / "a.jpg")
    broot = os.fsencode(root)
    shutil.copy(a, broot + b"/" + COPY)
    shutil.copy(b, broot + b"/" + BAD)
    deep = broot + b"".join(b"/" + b"\xff" * 200 + bytes([48 + i]) for i in range(8))
    os.makedirs(deep)
    shutil.copy(b, deep + b"/x.jpg")
    return {"copy": broot + b"/" + COPY, "bad": broot + b"/" + BAD, "deep": deep + b"/x.jpg"}


def test_names_round_trip() -> None:
    for raw in (b"/a/b.jpg", b"/a/\xff.jpg", "/a/x\ufffdy".encode(), b"/\xef\xbf\xbd\xff\xfe", b"/\xc3"):
        text = to_text(os.fsdecode(raw))
        text.encode("utf-8")  # storable as UTF-8 text
        assert os.fsencode(from_text(text)) == raw
    assert to_text("/plain/ascii.jpg") == "/plain/ascii.jpg"


def test_cli_ingests_and_lists_non_utf8_names(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    names = _library(root)
    cmd = [str(BIN / "dupesift"), "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "DUPESIFT_DECODE_WORKERS": "1"}
    run = subprocess.run([*cmd, "ingest", "--json", str(root)], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["indexed"] == 3, summary
    assert [f["reason"] for f in summary["failed"]] == ["bad name"], summary["failed"]
    again = subprocess.run([*cmd, "ingest", "--json", str(root)], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert json.loads(again.stdout)["unchanged"] == 3, again.stdout  # the stored names match the disk's
    listed = subprocess.run([*cmd, "groups", "--json"], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    (group,) = json.loads(listed.stdout)["groups"]
    assert sorted(os.fsencode(from_text(m["path"])) for m in group["members"]) == sorted(
        [os.fsencode(root / "a.jpg"), names["copy"]])


def test_api_ingest_serves_non_utf8_names(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    names = _library(root)
    app = create_app(Settings(data_dir=tmp_path / "data", decode_workers=1, roots=str(root)))
    with TestClient(app) as c:
        job_id = c.post("/ingest", json={"paths": [str(root)]}).json()["job_id"]
        for _ in range(600):
            job = c.get(f"/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert job["status"] == "done", job
        assert job["done"] == 3 and [f["reason"] for f in job["failures"]] == ["bad name"], job
        (group,) = c.get("/groups").json()["groups"]
        member = next(m for m in group["members"] if os.fsencode(from_text(m["path"])) == names["copy"])
        r = c.get(f"/images/{member['id']}/file")
        assert r.status_code == 200 and r.content == Path(os.fsdecode(names["copy"])).read_bytes()
        assert c.get(f"/images/{member['id']}/thumbnail").status_code == 200
        page = c.get("/ui/compare", params={"ids": ",".join(str(m["id"]) for m in group["members"])})
        assert page.status_code == 200 and os.path.basename(member["path"]) in page.text  # its printable name
        assert c.get(f"/ui/groups/{group['id']}").status_code == 200
        # the printed form of a path names the file in requests too
        r = c.post("/ingest", json={"paths": [to_text(os.fsdecode(names["bad"]))]})
        assert r.status_code == 202, r.text
        hits = c.post("/similar", files={"file": ("q.jpg", Path(os.fsdecode(names["bad"])).read_bytes())}).json()
        assert os.fsencode(from_text(hits["results"][0]["path"])) == names["bad"]
