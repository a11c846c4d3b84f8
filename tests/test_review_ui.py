"""Review at scale in a real browser (Debian's Chromium driven by Playwright; no browser download) against a
server on 127.0.0.1 over a library of 22 duplicate groups: errors as pages, offline docs, undo of every
decision, the quarantine, bulk review, keyboard review and the compare view.
Screenshots land in $DUPESIFT_TEST_ARTIFACTS (default var/test-artifacts)/review."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from api.main import create_app
from indexer.config import Settings
from tests.conftest import REPO, photo_files, served_app

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DUPESIFT_TEST_ARTIFACTS", REPO / "var" / "test-artifacts")) / "review"
GROUPS = 22
app_of: dict = {}  # server url -> its app (in this process: the tests read its index directly)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: apt-get install -y chromium"),
]


def _library(root: Path) -> None:
    """GROUPS photos, each with a re-saved and a half-size copy in another folder, and two photos alone."""
    for n, src in enumerate(photo_files(GROUPS + 2, offset=600)):
        folder = root / ("a" if n < GROUPS // 2 else "b")
        copies = root / "copies" / f"{n:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / f"p{n:02d}.jpg")
        if n >= GROUPS:
            continue
        copies.mkdir(parents=True)
        im = Image.open(src).convert("RGB")
        im.save(copies / f"p{n:02d}_resaved.jpg", quality=70)
        im.resize((im.width // 2, im.height // 2)).save(copies / f"p{n:02d}_small.jpg", quality=90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    root = base / "lib"
    _library(root)
    settings = Settings(data_dir=base / "data", decode_workers=1, roots=str(root))
    app = create_app(settings, host="127.0.0.1")
    with served_app(app) as url:
        app.state.index.ingest([str(root)])
        app_of[url] = app
        yield url, root, settings


@pytest.fixture(scope="module")
def browser(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    """A fresh page; every response it gets must come from the server (no CDN, no outside site)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = ctx.new_page()
    outside = []
    pg.on("response", lambda r: outside.append(r.url) if not r.url.startswith((server[0], "data:", "blob:")) else None)
    yield pg
    ctx.close()
    assert not outside, f"the UI fetched outside the server: {outside}"


def _groups(url: str, **params) -> list[dict]:
    return httpx.get(f"{url}/groups", params={"limit": 200, **params}).json()["groups"]


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _shot(pg, name: str) -> None:
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# -- 1. every error is a page; offline docs -------------------------------------------------------
@pytest.mark.parametrize("path,status", [
    ("/ui/groups?sort=bogus", 400), ("/ui/groups/abc", 404), ("/ui/groups?cursor=zzz", 400),
    ("/ui/compare?ids=999999", 404), ("/ui/compare?ids=x", 400), ("/ui/groups/999999", 404), ("/ui/nothing", 404),
    ("/ui/groups?limit=0", 400), ("/ui/groups/99999999999999999999", 404),
    ("/ui/compare?ids=1,99999999999999999999", 404), ("/ui/groups/1?sort=x", 400)])
def test_every_ui_error_is_a_page(server, page, path, status) -> None:
    r = page.goto(server[0] + path)
    assert r.status == status
    assert page.locator("h1").count() == 1 and page.locator("nav.top").count() == 1  # a page, not JSON
    assert page.locator("#error[role=alert]").inner_text().strip()
    assert not page.inner_text("body").lstrip().startswith("{")


def test_an_error_in_the_group_view_keeps_the_group(server, page) -> None:
    url, _root, _ = server
    gid = _groups(url)[0]["id"]
    page.goto(f"{url}/ui/groups/{gid}")
    page.uncheck("#advance")
    for box in page.locator("input[name=keep]").all():
        box.uncheck()
    page.click("#move-others")
    page.wait_for_selector("#messages #error")
    assert "keep" in page.inner_text("#messages #error")
    assert page.locator(".member[data-id]").count() == 3 and page.locator("#move-others").is_visible()
    _shot(page, "inline-error")
    page.locator("input[name=keep]").first.check()  # the user fixes it without a reload
    page.click("#move-others")
    page.wait_for_selector("#done")
    page.click("#undo")
    page.wait_for_selector("#move-others")


def test_no_page_references_an_outside_url(server, page) -> None:
    url, _, _ = server
    gid = _groups(url)[0]["id"]
    members = httpx.get(f"{url}/groups/{gid}").json()["members"]
    pages = ["/ui/groups", f"/ui/groups/{gid}", f"/ui/compare?ids={members[0]['id']},{members[1]['id']}",
             "/ui/quarantine", "/ui/quarantine/empty", "/ui/bulk", "/ui/search", "/ui/ingest", "/docs", "/redoc",
             "/ui/groups/abc"]
    outside = re.compile(r"""(src|href|action)=["']?(https?:)?//""")
    for path in pages:
        served = httpx.get(url + path).text  # what the server sends names nothing outside, not even a link
        assert not outside.search(served), path
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        # once scripts ran, nothing on the page loads from outside (ReDoc's script adds a plain link to its site)
        loads = page.evaluate("""() => [...document.querySelectorAll('[src], link[href], [srcset]')]
                                 .map(e => e.src || e.href || e.srcset)""")
        assert not [u for u in loads if not u.startswith((url, "data:", "blob:"))], path
    page.goto(f"{url}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # the UI rendered from the package's assets
    _shot(page, "docs")
    page.goto(f"{url}/redoc")
    page.wait_for_selector("text=/groups", timeout=30_000)


# -- 2. undo for every action; the quarantine ----------------------------------------------------
def test_keep_all_then_undo(server, page) -> None:
    url, _, _ = server
    g = _groups(url, unresolved=True)[0]
    page.goto(f"{url}/ui/groups/{g['id']}")
    page.uncheck("#advance")
    page.click("#keep-all")
    page.wait_for_selector("#done")
    assert "kept all" in page.inner_text("#done") and page.locator("#gone").count() == 1
    assert httpx.get(f"{url}/groups/{g['id']}").status_code == 404
    page.goto(f"{url}/ui/groups/{g['id']}")  # the group's address says what happened and offers the undo
    assert "kept all" in page.inner_text("#gone")
    _shot(page, "kept-all")
    page.click("#undo")
    page.wait_for_selector("#move-others")
    assert page.url.endswith(f"/ui/groups/{g['id']}") and page.locator(".member[data-id]").count() == 3
    # the JSON API undoes it as well
    r = httpx.post(f"{url}/groups/{g['id']}/resolve", json={"action": "keep_all"})
    assert r.status_code == 200
    assert httpx.post(f"{url}/groups/{g['id']}/restore").status_code == 200
    assert httpx.get(f"{url}/groups/{g['id']}").json()["size"] == 3


def test_quarantine_restore_a_file_and_empty(server, page) -> None:
    url, root, _settings = server
    g = _groups(url, unresolved=True)[-1]
    before = _files(root)
    out = httpx.post(f"{url}/groups/{g['id']}/resolve", json={"action": "move_others", "keep": [g["keeper"]]}).json()
    moved = {m["image_id"]: m for m in out["moved"]}
    assert len(moved) == 2
    page.goto(f"{url}/ui/quarantine")
    assert "2 file(s)" in page.inner_text("#summary")
    rows = page.locator(f'section[data-group="{g["id"]}"] tr[data-id]')
    assert rows.count() == 2
    first = next(iter(moved.values()))
    assert str(Path(first["src"]).parent) in page.inner_text(f'tr[data-id="{first["image_id"]}"]')  # from where
    _shot(page, "quarantine")
    page.locator(f'tr[data-id="{first["image_id"]}"] .restore-file').click()
    page.wait_for_selector("#restored")
    assert Path(first["src"]).exists() and "1 file(s)" in page.inner_text("#summary")
    gone = next(m for m in moved.values() if m is not first)
    size = Path(gone["dst"]).stat().st_size
    page.click("#empty-link")
    assert "for good" in page.inner_text("#warning")  # the confirmation step; nothing deleted yet
    assert Path(gone["dst"]).exists()
    _shot(page, "empty-confirm")
    page.click("#confirm-empty")
    page.wait_for_selector("#emptied")
    assert "Deleted 1 file(s)" in page.inner_text("#emptied")
    assert f"{size / 1024:.1f} KB freed" in page.inner_text("#emptied")
    assert not Path(gone["dst"]).exists() and page.locator("#empty").count() == 1
    assert _files(root) == before - {Path(gone["src"]).relative_to(root).as_posix()}
    assert httpx.get(f"{url}/groups/{g['id']}").json()["size"] == 2  # the deleted copy is forgotten


# -- 3. bulk review ------------------------------------------------------------------------------
def test_bulk_apply_and_undo(server, page) -> None:
    url, root, settings = server
    before = _files(root)
    n = len(_groups(url, unresolved=True))
    assert n >= 20
    page.goto(f"{url}/ui/groups?folder={root / 'a'}")
    assert "these 11 unresolved groups" in page.inner_text("#bulk-offer")  # the offer follows the filter
    page.goto(f"{url}/ui/groups?unresolved=true")
    page.click("#bulk-link")
    plan = page.inner_text("#plan")
    assert f"{n} unresolved group(s)" in plan and f"other {2 * n} copies" in plan
    assert str(settings.quarantine_dir) in plan and "Undo" in page.inner_text("main")
    page.click("summary")
    assert page.locator("#bulk-groups tr").count() == n + 1 and ".jpg" in page.inner_text("#bulk-groups")
    assert _files(root) == before  # nothing moved before the confirmation
    _shot(page, "bulk-confirm")
    page.click("#apply-bulk")
    page.wait_for_selector("#bulk-result")
    assert f"{2 * n} copies of {n} group(s) moved" in page.inner_text("#bulk-result")
    assert len(before - _files(root)) == 2 * n and _groups(url, unresolved=True) == []
    _shot(page, "bulk-done")
    page.click("#undo-bulk")
    page.wait_for_selector("#bulk-result")
    assert "back where they were" in page.inner_text("#bulk-result")
    assert _files(root) == before and len(_groups(url, unresolved=True)) == n


# -- 4. keyboard review --------------------------------------------------------------------------
def test_keyboard_review_of_three_groups(server, page) -> None:
    url, root, _ = server
    before = _files(root)
    page.goto(f"{url}/ui/groups?unresolved=true")
    page.locator("[data-group]").first.click()
    page.wait_for_selector(".keeper-badge")
    page.wait_for_selector("html[data-keys=ready]", state="attached")
    page.keyboard.press("?")
    assert page.locator("#keys").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys").is_visible()
    start = page.url
    page.keyboard.press("ArrowRight")
    page.wait_for_url(lambda u: u != start)
    page.wait_for_selector("html[data-keys=ready]", state="attached")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(start)
    page.wait_for_selector(".keeper-badge")
    page.wait_for_selector("html[data-keys=ready]", state="attached")
    page.keyboard.press("2")  # tick the second photo, untick it again
    assert page.locator('.member[data-key="2"] input[name=keep]').is_checked()
    page.keyboard.press("2")
    assert not page.locator('.member[data-key="2"] input[name=keep]').is_checked()
    decided = []
    for _ in range(3):
        gid = int(re.search(r"/ui/groups/(\d+)", page.url).group(1))
        decided.append(gid)
        page.keyboard.press("Enter")  # keep the suggested keeper, move the rest; on to the next group
        page.wait_for_url(re.compile(rf"sort=reclaimable&after={gid}$"))
        page.wait_for_selector(".keeper-badge")
        page.wait_for_selector("html[data-keys=ready]", state="attached")
        assert f"Group {gid}: moved 2 copies" in page.inner_text("#after")
    _shot(page, "keyboard-after")
    assert len(before - _files(root)) == 6
    page.keyboard.press("u")  # undo the last decision: back to that group, its files restored
    page.wait_for_url(re.compile(rf"/ui/groups/{decided[-1]}$"))
    page.wait_for_selector("#move-others")
    assert len(before - _files(root)) == 4
    for gid in decided[:2]:
        assert httpx.post(f"{url}/groups/{gid}/restore").status_code == 200
    assert _files(root) == before


# -- 5. compare ----------------------------------------------------------------------------------
def test_compare_fits_the_screen_and_says_why(server, page) -> None:
    url, _, _ = server
    g = _groups(url)[0]
    ids = ",".join(str(m["id"]) for m in g["members"])
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{url}/ui/compare?ids={ids}")
        assert page.title() == "Compare · dupesift"  # the zoom script sits in the page, not in its title
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        _shot(page, f"compare-{width}")
    page.locator("#compare img").first.click(position={"x": 10, "y": 10})  # synced zoom
    scales = page.locator("#compare img").evaluate_all("els => els.map(e => e.style.transform)")
    assert scales == ["scale(2)"] * 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#attrs tr.differs").count() >= 2  # file size and name differ at least
    assert "look-alike score" in page.inner_text("#evidence")
    assert page.locator("#compare figure form button").count() == 3  # keep this one


# -- 6. search with a phone's 48 MP photo ---------------------------------------------------------
def test_search_with_a_48_megapixel_photo(server, page, tmp_path) -> None:
    """A 8000x6000 JPEG (over the 40 MP upload limit as the camera wrote it) decodes at 1/8 scale: searched."""
    url, root, settings = server
    big = tmp_path / "phone.jpg"
    Image.open(root / "a" / "p00.jpg").convert("RGB").resize((8000, 6000), Image.Resampling.BILINEAR).save(
        big, quality=85)
    assert 8000 * 6000 > settings.upload_max_pixels
    page.goto(f"{url}/ui/search")
    page.set_input_files("#file", str(big))
    page.wait_for_selector(".result, #messages #error", timeout=60_000)
    assert page.locator("#messages #error").count() == 0, page.inner_text("#messages")
    first = page.locator(".result").first
    assert "p00" in first.inner_text() and first.locator(".badge").count() == 1
    _shot(page, "search-48mp")
    # a 48 MP PNG decodes at full size: still refused, with the reason
    png = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(png)
    r = httpx.post(f"{url}/similar", files={"file": ("big.png", png.read_bytes(), "image/png")})
    assert r.status_code == 413 and "decodes to 48 MP" in r.json()["detail"]


# -- 6. job phases -------------------------------------------------------------------------------
def test_job_phases_on_the_row_while_it_runs_and_on_the_ingest_page(server, page) -> None:
    url, root, _ = server
    index = app_of[url].state.index
    seen: list[tuple[str, dict]] = []

    class Spy:
        """A terminal-like progress: at each step's start, read what the job row says."""

        def start(self, total: int, description: str) -> None:
            with index.catalog.session() as s:
                from indexer.catalog.models import Job

                job = s.query(Job).order_by(Job.created_at.desc()).first()
                seen.append((description, job.phases))

        def advance(self, done: int, failed: int) -> None:
            pass

    (root / "a" / "new.jpg").write_bytes(photo_files(1, offset=700)[0].read_bytes())
    index.ingest([str(root)], progress=Spy())
    assert seen[0][0] == "indexing" and seen[0][1]["current"] == "embed"
    assert [s["state"] for s in seen[0][1]["steps"]] == ["done", "running", "waiting", "waiting"]
    assert seen[0][1]["steps"][1]["total"] == 1
    (root / "a" / "new.jpg").unlink()

    page.goto(f"{url}/ui/ingest")
    rows = page.locator("#jobs tr").count()
    page.click("#start")
    page.wait_for_selector('[data-status="done"]', timeout=120_000)
    assert page.locator('ol.phases li[data-state="done"]').count() == 4
    assert "unchanged" in page.inner_text("#job")
    page.wait_for_function(f"document.querySelectorAll('#jobs tr').length > {rows}", timeout=10_000)  # live list
    _shot(page, "ingest-phases")
    job_id = page.locator("[data-status=done]").get_attribute("id").removeprefix("job-")
    job = httpx.get(f"{url}/jobs/{job_id}").json()
    phases = job["phases"]
    assert phases["current"] is None and [s["name"] for s in phases["steps"]] == ["scan", "embed", "link", "finish"]
    assert phases["steps"][0]["done"] == job["summary"]["seen"] >= 3 * GROUPS  # photos the scan saw


# -- 5. triage -----------------------------------------------------------------------------------
def test_large_group_shows_the_keeper_first_and_loads_the_rest_on_request(server, page, monkeypatch) -> None:
    from api import review

    url, _, _ = server
    monkeypatch.setattr(review, "MEMBERS_SHOWN", 2)  # the server runs in this process: a 3-photo group is "large"
    g = _groups(url, unresolved=True)[0]
    page.goto(f"{url}/ui/groups/{g['id']}")
    cards = page.locator(".member[data-id]")
    assert cards.count() == 2 and int(cards.first.get_attribute("data-id")) == g["keeper"]
    assert "keeper" in cards.first.get_attribute("class")
    page.locator('.member[data-key="2"] input[name=keep]').check()
    page.click("#more-members button")
    page.wait_for_function("document.querySelectorAll('.member[data-id]').length === 3")
    assert page.locator('.member[data-key="2"] input[name=keep]').is_checked()  # ticks survive "show more"
    assert page.locator(".actions").evaluate("e => getComputedStyle(e).position") == "sticky"


def test_sort_by_weakest_link_pages_and_filters_by_folder(server, page) -> None:
    url, root, _ = server
    page.goto(f"{url}/ui/groups?sort=spread&limit=5")
    first = [page.locator(".card .meta").nth(i).inner_text() for i in range(5)]
    scores = [float(re.search(r"least alike pair: ([0-9.]+)", t).group(1)) for t in first]
    assert scores == sorted(scores)  # the weakest link first
    ids = set(page.locator("[data-group]").evaluate_all("els => els.map(e => e.dataset.group)"))
    page.click("#next")
    page.wait_for_url(re.compile("cursor="))  # click returns once the next page starts loading, not when it is parsed
    more = set(page.locator("[data-group]").evaluate_all("els => els.map(e => e.dataset.group)"))
    assert len(more) == 5 and not ids & more
    page.goto(f"{url}/ui/groups")
    page.fill("#folder", str(root / "b"))
    page.click("#apply-filters")
    page.wait_for_url(re.compile("folder="))
    assert page.locator("[data-group]").count() == GROUPS - GROUPS // 2
    _shot(page, "groups-filtered")


# -- 7. accessibility ----------------------------------------------------------------------------
def test_axe_finds_no_critical_or_serious_violation_on_any_page(server, page) -> None:
    """axe-core (bundled with axe-playwright-python) on every page, in the states a review goes through."""
    axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright", reason="pip install axe-playwright-python")
    axe = axe_sync.Axe()
    url, root, _ = server
    g = _groups(url, unresolved=True)[0]
    ids = ",".join(str(m["id"]) for m in g["members"])
    found: dict[str, list] = {}

    def check(name: str) -> None:
        page.wait_for_load_state("networkidle")
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]])
               for v in axe.run(page).response["violations"] if v["impact"] in ("critical", "serious")]
        if bad:
            found[name] = bad

    for path in ("/ui/groups", f"/ui/groups/{g['id']}", f"/ui/compare?ids={ids}", "/ui/bulk", "/ui/search",
                 "/ui/ingest", "/ui/groups/abc", "/ui/quarantine"):
        page.goto(url + path)
        check(path)
    page.goto(f"{url}/ui/search")
    page.set_input_files("#file", str(root / "a" / "p01.jpg"))
    page.wait_for_selector(".result")
    check("search results")
    page.goto(f"{url}/ui/groups/{g['id']}")
    page.uncheck("#advance")
    for box in page.locator("input[name=keep]").all():
        box.uncheck()
    page.click("#move-others")
    page.wait_for_selector("#messages #error")
    check("inline error")
    page.keyboard.press("?")
    check("keys dialog")
    page.keyboard.press("Escape")
    page.locator("input[name=keep]").first.check()
    page.click("#move-others")
    page.wait_for_selector("#done")
    check("decided")
    page.goto(f"{url}/ui/quarantine")
    check("quarantine with files")
    page.click("#empty-link")
    check("empty confirmation")
    assert httpx.post(f"{url}/groups/{g['id']}/restore").status_code == 200
    assert not found, found
    page.goto(f"{url}/ui/groups/{g['id']}")
    names = page.locator("input[name=keep]").evaluate_all(  # each keep box is named after its photo
        "els => els.map(e => e.labels[0].textContent.replace(/\\s+/g, ' ').trim())")
    assert all(re.fullmatch(r"keep \S+\.(jpg|jpeg|png|webp)", n) for n in names), names
