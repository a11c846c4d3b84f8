"""The web UI through TestClient: every page renders real data; htmx fragments for the actions."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from indexer.config import Settings
from tests.conftest import mild_copies, photo_files

TEMPLATES = Path(__file__).resolve().parents[1] / "api" / "templates"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    root = base / "lib"
    root.mkdir()
    for n, src in enumerate(photo_files(2, offset=900)):
        shutil.copy(src, root / f"o{n}.jpg")
        mild_copies(src, root, f"o{n}")
    shutil.copy(photo_files(1, offset=950)[0], root / "single.jpg")
    app = create_app(Settings(data_dir=base / "data", decode_workers=1, roots=str(root)))
    with TestClient(app) as c:
        app.state.index.ingest([str(root)])
        yield c, root


def test_no_cdn_and_htmx_vendored(web) -> None:
    c, _ = web
    for t in TEMPLATES.glob("*.html"):
        assert not re.search(r"""(src|href)=["']https?://""", t.read_text()), t.name
    r = c.get("/static/htmx.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:200]


def test_groups_page(web) -> None:
    c, _ = web
    assert c.get("/", follow_redirects=False).headers["location"] == "/ui/groups"
    html = c.get("/ui/groups").text
    assert "2 groups (2 unresolved)" in html and html.count('data-group="') == 2
    assert '/static/htmx.min.js' in html and "reclaimable" in html
    one = c.get("/ui/groups", params={"limit": 1, "sort": "size"}).text
    assert one.count('data-group="') == 1 and 'id="next"' in one
    nxt = re.search(r'id="next" href="([^"]+)"', one).group(1).replace("&amp;", "&")
    two = c.get(nxt).text
    assert two.count('data-group="') == 1 and 'id="next"' not in two and "first page" in two
    assert c.get("/ui/groups", params={"cursor": "bad"}).status_code == 400
    assert c.get("/ui/groups", params={"unresolved": "true"}).status_code == 200


def test_group_page_resolve_restore_fragments(web) -> None:
    c, _ = web
    gid = c.get("/groups").json()["groups"][0]["id"]
    html = c.get(f"/ui/groups/{gid}").text
    assert html.count('<div class="member') - html.count('class="members"') == 5 and "keeper-badge" in html and "suggested keeper" in html
    assert f'hx-post="/ui/groups/{gid}/resolve"' in html and "/ui/compare?ids=" in html
    keeper = c.get(f"/groups/{gid}").json()["keeper"]
    r = c.post(f"/ui/groups/{gid}/resolve", data={"action": "move_others", "keep": [str(keeper)]})
    assert r.status_code == 200 and 'id="done"' in r.text and "moved 4 copies" in r.text and 'id="restore"' in r.text
    r = c.post(f"/ui/groups/{gid}/restore")
    assert r.status_code == 200 and "undone: 4 file(s) back" in r.text and 'id="move-others"' in r.text
    bad = c.post(f"/ui/groups/{gid}/resolve", data={"action": "move_others"})
    assert bad.status_code == 400 and 'class="err"' in bad.text
    assert c.get("/ui/groups/999999").status_code == 404
    cmp = c.get("/ui/compare", params={"ids": f"{keeper},{keeper + 1}"}).text
    assert cmp.count("<figure ") == 2
    assert c.get("/ui/compare", params={"ids": "x,y"}).status_code == 400


def test_search_page_and_upload(web) -> None:
    c, root = web
    assert 'id="drop"' in c.get("/ui/search").text
    r = c.post("/ui/search", files={"file": ("q.jpg", (root / "o1.jpg").read_bytes(), "image/jpeg")})
    assert r.status_code == 200 and r.text.count('class="card result"') >= 5 and "duplicate" in r.text
    assert c.post("/ui/search", files={"file": ("q.txt", b"hello", "text/plain")}).status_code == 415


def test_ingest_page_and_job_progress(web) -> None:
    c, root = web
    page = c.get("/ui/ingest").text
    assert str(root) in page and 'id="ingest-form"' in page
    r = c.post("/ui/ingest", data={"path": str(root)})
    assert r.status_code == 200 and "Ingest of " in r.text
    job_id = re.search(r'id="job-([0-9a-f-]+)"', r.text).group(1)
    deadline = time.time() + 120
    while time.time() < deadline:
        frag = c.get(f"/ui/jobs/{job_id}").text
        if 'data-status="done"' in frag:
            break
        assert 'hx-trigger="every 1s"' in frag  # keeps polling while running
        time.sleep(0.3)
    assert 'data-status="done"' in frag and "hx-trigger" not in frag
    assert c.post("/ui/ingest", data={"path": "/etc"}).status_code == 403
    assert c.get("/ui/jobs/nope").status_code == 404


def test_cross_site_form_posts_are_refused(web) -> None:
    """A loopback server takes no token, so a page on another site must not be able to post the forms:
    Origin (or Referer) has to be this server. Same-origin posts and clients that send neither still work."""
    c, root = web
    groups = c.get("/groups").json()["groups"]
    gid = groups[0]["id"]
    jobs_before = len(c.get("/jobs").json()["jobs"])
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page.html"}, {"Origin": "http://testserver.evil.example"}):
        r = c.post(f"/ui/groups/{gid}/resolve", data={"action": "keep_all"}, headers=headers)
        assert r.status_code == 403 and "cross-site" in r.text and "<h1>" in r.text, (headers, r.text)  # a page
        assert c.post(f"/ui/groups/{gid}/restore", headers=headers).status_code == 403
        assert c.post("/ui/ingest", data={"path": str(root)}, headers=headers).status_code == 403
        assert c.post(f"/groups/{gid}/resolve", json={"action": "keep_all"}, headers=headers).status_code == 403
    assert c.get(f"/groups/{gid}").json()["resolution"] is None  # nothing was decided
    assert c.get("/groups").json()["groups"] == groups and len(c.get("/jobs").json()["jobs"]) == jobs_before
    # this server's own pages (Origin and Referer both ours) get through to the handler
    own = {"Origin": "http://testserver", "Referer": "http://testserver/ui/groups/1"}
    bad = c.post(f"/ui/groups/{gid}/resolve", data={"action": "move_others"}, headers=own)
    assert bad.status_code == 400 and 'class="err"' in bad.text
    assert c.get("/ui/groups", headers={"Origin": "http://evil.example"}).status_code == 200  # reads are not refused
