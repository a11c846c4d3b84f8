"""Every API endpoint through TestClient, with its error paths, on a real (small) library."""
from __future__ import annotations

import json
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from indexer.config import Settings
from indexer.errors import DupesiftError
from tests.conftest import mild_copies, photo_files


def _library(root: Path) -> dict[str, list[Path]]:
    """Three groups of five (an original + four mild copies) and four singles: 19 photos."""
    sets = {}
    for n, src in enumerate(photo_files(3, offset=300)):
        d = root / f"set{n}"
        d.mkdir(parents=True)
        shutil.copy(src, d / "orig.jpg")
        sets[f"set{n}"] = [d / "orig.jpg", *mild_copies(src, d, "c")]
    (root / "singles").mkdir()
    for n, src in enumerate(photo_files(4, offset=400)):
        shutil.copy(src, root / "singles" / f"s{n}.jpg")
    return sets


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    root = base / "lib"
    sets = _library(root)
    settings = Settings(data_dir=base / "data", decode_workers=2, roots=str(root))
    app = create_app(settings)
    with TestClient(app) as client:
        r = client.post("/ingest", json={"paths": [str(root)]})
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["job_id"])
        assert job["status"] == "done" and job["done"] == 19, job
        yield {"client": client, "root": root, "sets": sets, "settings": settings, "base": base}


def wait_job(client: TestClient, job_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def group_of(client: TestClient, path: Path) -> dict:
    for g in client.get("/groups", params={"limit": 200}).json()["groups"]:
        if any(m["path"] == str(path) for m in g["members"]):
            return g
    raise AssertionError(f"{path} is in no group")


def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w×h pixels but carries almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- service ---------------------------------------------------------------------------------------
def test_health_stats_metrics(env) -> None:
    c = env["client"]
    assert c.get("/health").json()["images"] == 19
    st = c.get("/stats").json()
    assert st["images"]["indexed"] == 19 and st["groups"] >= 3 and st["reclaimable_bytes"] > 0
    m = c.get("/metrics")
    assert m.status_code == 200 and "dupesift_http_requests_total" in m.text and 'dupesift_images{status="indexed"} 19.0' in m.text


def test_job_listing_and_errors(env) -> None:
    c = env["client"]
    jobs = c.get("/jobs").json()["jobs"]
    assert jobs and jobs[0]["status"] == "done" and jobs[0]["rate"] > 0
    assert c.get("/jobs/nope").status_code == 404
    assert c.get("/jobs", params={"limit": 0}).status_code == 422


# -- groups ----------------------------------------------------------------------------------------
def test_groups_pagination_sort_and_filters(env) -> None:
    c = env["client"]
    full = c.get("/groups", params={"limit": 200}).json()
    assert full["total"] == full["count"] >= 3 and full["next_cursor"] is None
    for sort, key in (("size", "size"), ("reclaimable", "reclaimable_bytes"), ("newest", "updated_at")):
        seen, cursor = [], None
        while True:
            r = c.get("/groups", params={"limit": 1, "sort": sort} | ({"cursor": cursor} if cursor else {}))
            assert r.status_code == 200, r.text
            body = r.json()
            seen += body["groups"]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert [g["id"] for g in seen] != [] and len({g["id"] for g in seen}) == full["total"]
        vals = [(g[key], g["id"]) for g in seen]
        assert vals == sorted(vals, reverse=True), sort
    assert c.get("/groups", params={"cursor": "garbage!!"}).status_code == 400
    cur = c.get("/groups", params={"limit": 1, "sort": "size"}).json()["next_cursor"]
    assert c.get("/groups", params={"cursor": cur, "sort": "newest"}).status_code == 400  # cursor of another sort
    assert c.get("/groups", params={"sort": "bogus"}).status_code == 422
    assert c.get("/groups", params={"limit": 0}).status_code == 422
    assert c.get("/groups", params={"min_size": 1}).status_code == 422


def test_newest_sorts_by_last_change_and_bad_cursors_are_400(env) -> None:
    """Group ids are reused, so "newest" follows updated_at; a cursor with a huge number is a 400, not a 500."""
    from datetime import timedelta

    from indexer.browse import encode_cursor
    from indexer.catalog.models import DupGroup, utcnow

    c = env["client"]
    ids = sorted(g["id"] for g in c.get("/groups", params={"limit": 200}).json()["groups"])
    with c.app.state.index.catalog.session() as s:  # the oldest id changed last
        s.get(DupGroup, ids[0]).updated_at = utcnow() + timedelta(hours=1)
        s.commit()
    first = c.get("/groups", params={"sort": "newest", "limit": 1}).json()
    assert first["groups"][0]["id"] == ids[0]
    nxt = c.get("/groups", params={"sort": "newest", "limit": 200, "cursor": first["next_cursor"]}).json()
    assert sorted(g["id"] for g in nxt["groups"]) == ids[1:]
    for sort, value, gid in (("size", 10**30, 1), ("size", 2, -(10**40)), ("newest", 2**62, 1)):
        bad = encode_cursor(sort, value, gid)
        r = c.get("/groups", params={"cursor": bad, "sort": sort})
        assert r.status_code == 400 and "invalid cursor" in r.json()["detail"], (bad, r.text)
    assert c.get("/ui/groups", params={"cursor": encode_cursor("size", 10**30, 1), "sort": "size"}).status_code == 400


def test_group_detail(env) -> None:
    c = env["client"]
    g = group_of(c, env["sets"]["set0"][0])
    d = c.get(f"/groups/{g['id']}").json()
    assert d["size"] == 5 and len(d["members"]) == 5 and d["keeper"] in {m["id"] for m in d["members"]}
    assert d["keeper_reason"] and "pixel" in d["keeper_rule"]
    assert sum(m["is_keeper"] for m in d["members"]) == 1
    assert len(d["pairs"]) == 10 and all(-1 <= p["similarity"] <= 1 for p in d["pairs"])
    keeper = next(m for m in d["members"] if m["is_keeper"])
    assert keeper["width"] * keeper["height"] == max(m["width"] * m["height"] for m in d["members"])
    assert c.get("/groups/999999").status_code == 404
    assert c.get("/groups/0").status_code == 422
    assert c.get("/groups/abc").status_code == 422


# -- similar ---------------------------------------------------------------------------------------
def test_similar_by_upload_and_id(env) -> None:
    c = env["client"]
    q = env["sets"]["set1"][3]  # the brightened PNG
    r = c.post("/similar", files={"file": ("q.png", q.read_bytes(), "image/png")}, params={"k": 6})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["path"] == str(q) and res[0]["similarity"] > 0.999
    assert sum(x["is_duplicate"] for x in res) == 5 and res[0]["thumbnail_url"].startswith("/images/")
    strict = c.post("/similar", files={"file": ("q.png", q.read_bytes())}, params={"min_similarity": 0.9999}).json()
    assert len(strict["results"]) == 1
    by_id = c.get("/similar", params={"image_id": res[0]["id"], "k": 4}).json()["results"]
    assert len(by_id) == 4 and all(x["id"] != res[0]["id"] and x["is_duplicate"] for x in by_id)
    assert c.get("/similar", params={"image_id": 999999}).status_code == 404
    assert c.get("/similar", params={"image_id": 0}).status_code == 422
    assert c.get("/similar", params={"image_id": 1, "k": 0}).status_code == 422


def test_similar_upload_errors(env) -> None:
    c = env["client"]
    post = lambda data, **kw: c.post("/similar", files={"file": ("x.jpg", data, "image/jpeg")}, **kw)
    assert post(b"").status_code == 400
    r = post(b"GIF89a but not really an image, just text pretending" * 3)
    assert r.status_code in (400, 413, 415) and r.json()["detail"]  # garbage dimensions may read as huge
    r = post(b"%PDF-1.4 not an image")
    assert r.status_code == 415 and "not a recognised image" in r.json()["detail"]
    r = post(png_header(40_000, 40_000))  # 1600 MP
    assert r.status_code == 413 and "MP" in r.json()["detail"]
    good = env["sets"]["set0"][0].read_bytes()
    assert post(good[: len(good) // 3]).status_code == 400  # truncated JPEG
    app = c.app
    old = app.state.max_upload_bytes
    app.state.max_upload_bytes = 10_000
    try:
        assert post(good).status_code == 413  # over the limit, refused by Content-Length
        assert post(good[:20_000]).status_code == 413
    finally:
        app.state.max_upload_bytes = old
    assert c.post("/similar").status_code == 422  # no file field
    assert c.post("/similar", files={"file": ("q.jpg", good)}, params={"k": 5000}).status_code == 422
    # uploads never land in a library root
    assert sum(len(files) for _, _, files in os.walk(env["root"])) == 19 + sum(
        len(files) for _, _, files in os.walk(env["settings"].quarantine_dir))


def test_groups_json_and_the_api_show_the_same_fields(env) -> None:
    """The API's group and member records extend `dupesift groups --json`'s: every field the command line shows is
    in the API's answer with the same value (camera_exif included), on the list and on the detail."""
    c = env["client"]
    core = c.app.state.index.groups()
    assert core and all("camera_exif" in m for g in core for m in g["members"])
    listed = {g["id"]: g for g in c.get("/groups", params={"limit": 200}).json()["groups"]}
    for g in core:
        for api_group in (listed[g["id"]], c.get(f"/groups/{g['id']}").json()):
            assert {k: api_group[k] for k in g if k != "members"} == {k: v for k, v in g.items() if k != "members"}
            api_members = {m["id"]: m for m in api_group["members"]}
            for m in g["members"]:
                assert {k: api_members[m["id"]][k] for k in m} == m


def test_json_and_web_answer_a_bad_upload_with_the_same_status(env) -> None:
    """One exception -> status table: a truncated JPEG is 400, a text file 415, on /similar and on /ui/search."""
    c = env["client"]
    good = env["sets"]["set0"][0].read_bytes()
    for data, status in ((good[: len(good) // 3], 400), (b"%PDF-1.4 not an image", 415), (b"", 400)):
        api = c.post("/similar", files={"file": ("x.jpg", data, "image/jpeg")})
        web = c.post("/ui/search", files={"file": ("x.jpg", data, "image/jpeg")})
        assert (api.status_code, web.status_code) == (status, status), (api.text, web.text)
        assert 'class="err"' in web.text


def test_upload_pixel_limit_is_lower_than_the_library_limit(env) -> None:
    """A 49 MP upload is under the 250 MP library limit but over DUPESIFT_UPLOAD_MAX_PIXELS (40 MP): 413."""
    c = env["client"]
    r = c.post("/similar", files={"file": ("big.png", png_header(7000, 7000), "image/png")})
    assert r.status_code == 413, r.text
    assert "40 MP" in r.json()["detail"] and "DUPESIFT_UPLOAD_MAX_PIXELS" in r.json()["detail"]
    r = c.post("/ui/search", files={"file": ("big.png", png_header(7000, 7000), "image/png")})
    assert r.status_code == 413 and "DUPESIFT_UPLOAD_MAX_PIXELS" in r.text


def test_upload_decodes_are_capped(env) -> None:
    """While DUPESIFT_UPLOAD_DECODES uploads are decoding, another waits upload_wait_s, then gets a 503."""
    c = env["client"]
    gate, st = c.app.state.upload_gate, env["settings"]
    good = env["sets"]["set0"][0].read_bytes()
    old_wait = st.upload_wait_s
    for _ in range(st.upload_decodes):
        c.portal.call(gate.acquire)  # the permits the running decodes would hold
    st.upload_wait_s = 0.2
    try:
        r = c.post("/similar", files={"file": ("q.jpg", good, "image/jpeg")})
        assert r.status_code == 503 and "too many uploads" in r.json()["detail"] and r.headers["retry-after"]
    finally:
        st.upload_wait_s = old_wait
        for _ in range(st.upload_decodes):
            c.portal.call(gate.release)
    assert c.post("/similar", files={"file": ("q.jpg", good, "image/jpeg")}).status_code == 200


def test_chunked_or_understated_upload_is_cut_off_at_the_limit(env) -> None:
    """A body without Content-Length (chunked), or longer than its Content-Length says, is counted as it
    streams in: 413 once past the limit, and the rest is never read (so never spooled to disk)."""
    import httpx

    c = env["client"]
    limit, chunk, chunks = 100_000, 64 * 1024, 160  # a 10 MB body against a 100 kB limit
    boundary = "dupesiftboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    sent = []

    async def body():
        yield head
        for _ in range(chunks):
            sent.append(chunk)
            yield b"\xff" * chunk

    async def post(headers: dict[str, str]) -> httpx.Response:
        sent.clear()
        transport = httpx.ASGITransport(app=c.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
            return await ac.post("/similar", content=body(), headers={
                "content-type": f"multipart/form-data; boundary={boundary}"} | headers)

    old = c.app.state.max_upload_bytes
    c.app.state.max_upload_bytes = limit
    try:
        for headers in ({}, {"content-length": "5000"}):
            r = c.portal.call(post, headers)
            assert r.status_code == 413 and "limit" in r.json()["detail"], (headers, r.text)
            assert sum(sent) < limit + 3 * chunk, f"{sum(sent)} bytes read after the limit ({headers})"
    finally:
        c.app.state.max_upload_bytes = old
    good = env["sets"]["set0"][0].read_bytes()
    assert c.post("/similar", files={"file": ("q.jpg", good, "image/jpeg")}).status_code == 200


# -- images ----------------------------------------------------------------------------------------
def test_thumbnail_and_file(env) -> None:
    c = env["client"]
    src = env["sets"]["set2"][0]
    img = c.post("/similar", files={"file": ("q.jpg", src.read_bytes())}, params={"k": 1}).json()["results"][0]
    r = c.get(f"/images/{img['id']}/thumbnail", params={"size": 128})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    cached = list((env["settings"].thumbnails_dir / "128").rglob("*.jpg"))
    assert len(cached) >= 1
    assert c.get(f"/images/{img['id']}/thumbnail", params={"size": 128}).content == r.content
    assert c.get(f"/images/{img['id']}/thumbnail", params={"size": 7}).status_code == 422
    assert c.get("/images/999999/thumbnail").status_code == 404
    f = c.get(f"/images/{img['id']}/file")
    assert f.status_code == 200 and f.content == src.read_bytes()
    assert c.get("/images/999999/file").status_code == 404
    assert c.get("/images/-1/file").status_code == 422


# -- ingest ----------------------------------------------------------------------------------------
def test_ingest_path_checks(env, tmp_path) -> None:
    c = env["client"]
    root = env["root"]
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(photo_files(1, offset=500)[0], outside / "x.jpg")
    cases = {
        str(outside): 403,
        str(root / ".." / "lib"): 403,  # '..' tricks, even if they resolve inside
        str(root / "set0" / ".." / ".." / "etc"): 403,
        "/etc/passwd": 403,
        str(root / "missing"): 404,
        "relative/path": 400,
    }
    link = root / "escape"
    link.symlink_to(outside, target_is_directory=True)
    try:
        cases[str(link)] = 403  # a symlink out of the root
        cases[str(link / "x.jpg")] = 403
        for path, status in cases.items():
            r = c.post("/ingest", json={"paths": [path]})
            assert r.status_code == status, (path, r.text)
            assert r.json()["detail"]
    finally:
        link.unlink()
    assert c.post("/ingest", json={"paths": []}).status_code == 422
    assert c.post("/ingest", json={}).status_code == 422
    assert c.post("/ingest", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


# -- resolve / restore -----------------------------------------------------------------------------
def test_resolve_errors(env) -> None:
    c = env["client"]
    g = group_of(c, env["sets"]["set2"][0])
    ids = [m["id"] for m in g["members"]]
    url = f"/groups/{g['id']}/resolve"
    assert c.post(url, json={"action": "explode", "keep": ids[:1]}).status_code == 422
    assert c.post(url, json={"keep": ids[:1]}).status_code == 422
    assert c.post(url, json={"action": "move_others", "keep": [999999]}).status_code == 400
    assert c.post(url, json={"action": "move_others", "keep": []}).status_code == 400
    assert c.post(url, json={"action": "move_others", "keep": ids}).status_code == 400
    assert c.post("/groups/999999/resolve", json={"action": "keep_all"}).status_code == 404
    assert c.post(f"/groups/{g['id']}/restore").status_code == 409  # nothing moved yet
    assert c.post("/groups/999999/restore").status_code == 404
    assert all(os.path.exists(m["path"]) for m in g["members"])


def test_move_restore_journalled_and_sticky(env) -> None:
    c = env["client"]
    g = group_of(c, env["sets"]["set1"][0])
    keep = g["keeper"]
    r = c.post(f"/groups/{g['id']}/resolve", json={"action": "move_others", "keep": [keep]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["moved"]) == 4
    q = env["settings"].quarantine_dir
    for mv in out["moved"]:
        assert not os.path.exists(mv["src"]) and os.path.exists(mv["dst"]) and mv["dst"].startswith(str(q))
    journal = [json.loads(x) for x in (q / ".journal" / f"{out['op']}.jsonl").read_text().splitlines()]
    events = [x["event"] for x in journal]
    assert events[0] == "begin" and events[-1] == "commit" and events.count("move") == events.count("moved") == 4
    assert events.index("move") < events.index("moved")  # intent before each move
    d = c.get(f"/groups/{g['id']}").json()
    assert d["resolution"] == "move_others" and sum(m["quarantined"] for m in d["members"]) == 4
    assert c.get(f"/images/{out['moved'][0]['image_id']}/file").status_code == 200
    assert all(x["id"] != g["id"] for x in c.get("/groups", params={"unresolved": True, "limit": 200}).json()["groups"])
    assert c.post(f"/groups/{g['id']}/resolve", json={"action": "move_others", "keep": [keep]}).status_code == 409
    # A rescan neither re-finds the moved files in the root nor forgets the decision.
    job = wait_job(c, c.post("/ingest", json={"paths": [str(env["root"] / "set1")]}).json()["job_id"])
    assert job["status"] == "done" and job["summary"]["removed"] == 0
    assert c.get(f"/groups/{g['id']}").json()["resolution"] == "move_others"
    r = c.post(f"/groups/{g['id']}/restore")
    assert r.status_code == 200, r.text
    for mv in out["moved"]:
        assert os.path.exists(mv["src"]) and not os.path.exists(mv["dst"])
    d = c.get(f"/groups/{g['id']}").json()
    assert d["resolution"] is None and not any(m["quarantined"] for m in d["members"])
    assert [h["kind"] for h in d["history"]] == ["resolve", "restore"]
    assert c.post(f"/groups/{g['id']}/restore").status_code == 409


def test_trash_then_restore(env) -> None:
    c = env["client"]
    g = group_of(c, env["sets"]["set2"][0])
    keep = [m["id"] for m in g["members"][:2]]
    out = c.post(f"/groups/{g['id']}/resolve", json={"action": "trash_others", "keep": keep}).json()
    assert len(out["moved"]) == 3 and all("/trash/" in mv["dst"] for mv in out["moved"])
    assert c.get("/stats").json()["resolved"].get("trash_others") == 1
    assert c.post(f"/groups/{g['id']}/restore").status_code == 200
    assert all(os.path.exists(m["path"]) for m in g["members"])


def test_keep_all_survives_reingest(env) -> None:
    c = env["client"]
    files = env["sets"]["set0"]
    g = group_of(c, files[0])
    r = c.post(f"/groups/{g['id']}/resolve", json={"action": "keep_all"})
    assert r.status_code == 200, r.text
    assert r.json()["groups_after"] == []
    assert c.get(f"/groups/{g['id']}").status_code == 404
    assert c.get("/stats").json()["not_duplicates"] == 10
    # Re-ingest with every file changed on disk (new mtime): all re-embedded and relinked.
    later = time.time() + 10
    for f in files:
        os.utime(f, (later, later))
    job = wait_job(c, c.post("/ingest", json={"paths": [str(env["root"])]}).json()["job_id"])
    assert job["status"] == "done" and job["summary"]["indexed"] == 5, job
    paths = {str(f) for f in files}
    for grp in c.get("/groups", params={"limit": 200}).json()["groups"]:
        assert len(paths & {m["path"] for m in grp["members"]}) <= 1
    # ... and they still are each other's nearest neighbours, just not grouped.
    hits = c.post("/similar", files={"file": ("q.jpg", files[0].read_bytes())}, params={"k": 5}).json()["results"]
    assert {h["path"] for h in hits} == paths


def test_job_failures_of_paths_with_like_wildcards(env) -> None:
    """A job's failures are its own paths' even when a folder name holds ``_`` or ``%`` (LIKE ... ESCAPE)."""
    c, root = env["client"], env["root"]
    for name in ("aXb", "a_b", "100%"):
        (root / name).mkdir()
        (root / name / "bad.jpg").write_text("not a photo")
    jobs = {}
    for name in ("aXb", "a_b", "100%"):  # aXb's failure is in the catalog before a_b's job runs
        r = c.post("/ingest", json={"paths": [str(root / name)]})
        assert r.status_code == 202, r.text
        jobs[name] = wait_job(c, r.json()["job_id"])
    for name, job in jobs.items():
        assert job["status"] == "done", job
        assert [f["path"] for f in job["failures"]] == [str(root / name / "bad.jpg")], (name, job["failures"])


def test_ingest_keeps_an_emptied_root_unless_told_to_prune_it(env) -> None:
    """POST /ingest has the CLI's safety: a folder that had photos and now lists none (an unmounted
    drive looks like that) keeps them, with a warning; ``prune_empty`` forgets them."""
    c, root = env["client"], env["root"]
    folder = root / "card"
    folder.mkdir()
    shutil.copy(photo_files(1, offset=990)[0], folder / "only.jpg")

    def ingest(**extra) -> dict:
        r = c.post("/ingest", json={"paths": [str(folder)], **extra})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "done", job
        return job

    assert ingest()["summary"]["indexed"] == 1
    (folder / "only.jpg").unlink()
    kept = ingest()
    assert kept["params"]["prune_empty"] is False
    assert kept["summary"]["removed"] == 0 and kept["summary"]["kept_unreadable"] == 1
    assert any("prune_empty" in w for w in kept["summary"]["warnings"])
    pruned = ingest(prune_empty=True)
    assert pruned["params"]["prune_empty"] is True and pruned["summary"]["removed"] == 1


# -- auth ------------------------------------------------------------------------------------------
def test_auth_on_non_loopback(tmp_path) -> None:
    with pytest.raises(DupesiftError, match="DUPESIFT_API_TOKEN"):
        create_app(Settings(data_dir=tmp_path / "d1"), host="0.0.0.0")
    app = create_app(Settings(data_dir=tmp_path / "d2", api_token="s3cret"), host="0.0.0.0")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 401
        assert c.get("/groups", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/ui/groups").status_code == 401
        assert c.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/ui/login").status_code == 200 and 'method="post"' in c.get("/ui/login").text
        assert c.post("/ui/login", data={"token": "nope"}).status_code == 401
        c.get("/ui/login", params={"token": "s3cret"})  # a token in the URL logs nobody in
        assert c.get("/ui/groups").status_code == 401
        r = c.post("/ui/login", data={"token": "s3cret"}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/ui/groups").status_code == 200  # the cookie now carries the token
    local = create_app(Settings(data_dir=tmp_path / "d3"), host="::1")
    assert local.state.auth_required is False


def test_web_routes_bound_ids_like_the_json_routes(env) -> None:
    """Ids past the catalog's 64-bit range never reach the database (it answered 500, an OverflowError): the JSON
    route refuses them (422), the web UI answers with its "not found" page."""
    c = env["client"]
    big = "99999999999999999999999"
    assert c.get(f"/groups/{big}").status_code == 422
    for method, url in (("GET", f"/ui/groups/{big}"), ("GET", f"/ui/groups/{2**63}"),
                        ("POST", f"/ui/groups/{big}/resolve"), ("POST", f"/ui/groups/{big}/restore")):
        r = c.request(method, url, data={"action": "keep_all"} if method == "POST" else None)
        assert r.status_code == 404 and "<h1>" in r.text, (url, r.status_code, r.text[:200])
    for ids in (big, f"1,{2**63}", "-5"):
        r = c.get("/ui/compare", params={"ids": ids})
        assert r.status_code == 404 and "no indexed photo" in r.text, (ids, r.status_code)

def test_group_page_names_the_photo_that_also_matches_another_group(tmp_path) -> None:
    """A collage of two photos, each beside its copy, ingested: the collage links to both photos and joins neither
    group, but its links stay stored, so both groups are held back from bulk review. Each group's page names its
    photos that the collage holds and ``GET /groups/{id}`` lists them in ``reaching_out``; the collage holds them
    beside another picture, not the other way round, so the page ticks the keeper alone and Enter moves the copy,
    leaving the collage where it is (``grouping.may_hold_another``)."""
    import random

    from PIL import Image as PILImage

    from bench.probes import collage
    from indexer.index import Index
    from tests.conftest import PHOTOS

    lib = tmp_path / "lib"
    lib.mkdir()
    one, two = (PILImage.open(PHOTOS / f"{n}.JPEG").convert("RGB") for n in ("n03255030_dumbbell", "n02361337_marmot"))
    for name, im in (("one", one), ("two", two)):
        im.save(lib / f"{name}.jpg", quality=90)
        im.resize((im.width * 3 // 5, im.height * 3 // 5)).save(lib / f"{name}_copy.jpg", quality=75)
    collage([one, two], random.Random(5)).save(lib / "collage.jpg", quality=85)
    settings = Settings(data_dir=tmp_path / "data", decode_workers=2)
    with Index(settings) as index:
        index.ingest([str(lib)])
    with TestClient(create_app(settings)) as c:
        groups = c.get("/groups").json()["groups"]
        assert len(groups) == 2 and all(g["look_only"] for g in groups), groups
        for g in groups:
            d = c.get(f"/groups/{g['id']}").json()
            name = {m["id"]: Path(m["path"]).name for m in d["members"]}
            assert "collage.jpg" not in name.values() and d["reaching_out"], d
            assert set(d["reaching_out"]) <= set(name) and d["may_hold_another"] == [] and d["also_keep"] == [], d
            page = c.get(f"/ui/groups/{g['id']}").text
            first = name[d["reaching_out"][0]]
            assert f'<span class="path" id="reaching-out">{first}</span>' in page and "held in a collage" in page
            for m in d["members"]:
                assert (f'value="{m["id"]}" checked' in page) == (m["id"] == d["keeper"]), m["id"]
            r = c.post(f"/ui/groups/{g['id']}/resolve", data={"action": "move_others", "keep": [d["keeper"]]})
            assert r.status_code == 200 and "moved" in r.text.lower(), r.text[:300]
        assert sorted(p.name for p in lib.iterdir()) == ["collage.jpg", "one.jpg", "two.jpg"]


def test_group_detail_names_the_one_link_between_two_parts(tmp_path) -> None:
    """A group of two photos each beside its copy, held together by one checked link (2-3): the group page and
    ``GET /groups/{id}`` mark that link as the only one between two parts, the page ticks one photo of each part
    to keep, and the group is held back from bulk review; a second link across (1-4) leaves no such link."""
    from sqlalchemy import insert

    from indexer.catalog.models import DupGroup, Image, ImageStatus, Pair
    from indexer.grouping import regroup

    settings = Settings(data_dir=tmp_path / "data", decode_workers=2)
    app = create_app(settings)
    with TestClient(app) as c:
        index = c.app.state.index
        with index.catalog.session() as s:
            s.execute(insert(Image), [{"id": i, "path": str(tmp_path / f"{i}.jpg"), "bytes": 1000 + i,
                                       "mtime": float(i), "width": 100, "height": 100, "status": ImageStatus.indexed,
                                       "linked": True, "sha256": f"{i:064d}"} for i in range(1, 5)])
            s.execute(insert(Pair), [{"a_id": a, "b_id": b, "similarity": sim, "kind": "verified", "cover": 0.8}
                                     for a, b, sim in ((1, 2, 0.99), (3, 4, 0.98), (2, 3, 0.7))])
            regroup(s, [1, 2, 3, 4], index.store.get)
            s.commit()
            gid = s.get(Image, 1).group_id
            assert s.get(DupGroup, gid).look_only is True
        d = c.get(f"/groups/{gid}").json()
        assert {(p["a"], p["b"]) for p in d["pairs"] if p["bridge"]} == {(2, 3)}, d["pairs"]
        page = c.get(f"/ui/groups/{gid}").text
        assert page.count("the only link between two parts of this group") == 1
        assert '<span class="path" id="bridge">2.jpg</span> and <span class="path">3.jpg</span>' in page
        keep = {m["id"] for m in d["members"] if m["is_keeper"]} | set(d["also_keep"])
        assert len(keep) == 2 and keep & {1, 2} and keep & {3, 4}, d  # one photo of each part ticked
        for m in d["members"]:
            assert (f'value="{m["id"]}" checked' in page) == (m["id"] in keep), m["id"]
        with index.catalog.session() as s:
            s.execute(insert(Pair), [{"a_id": 1, "b_id": 4, "similarity": 0.7, "kind": "verified", "cover": 0.8}])
            regroup(s, [1, 4], index.store.get)
            s.commit()
            assert s.get(DupGroup, gid).look_only is False
        d = c.get(f"/groups/{gid}").json()
        assert not any(p["bridge"] for p in d["pairs"]) and d["also_keep"] == []
