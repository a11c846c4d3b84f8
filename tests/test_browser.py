"""A real browser (Debian's Chromium driven by Playwright; no browser download) against a server on
127.0.0.1: groups page, a group, resolve + restore, search by upload, ingest with live progress.
Screenshots land in $DUPESIFT_TEST_ARTIFACTS (default var/test-artifacts/browser)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from api.main import create_app
from indexer.config import Settings
from tests.conftest import REPO, mild_copies, photo_files, served_app

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DUPESIFT_TEST_ARTIFACTS", REPO / "var" / "test-artifacts")) / "browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    root = base / "lib"
    root.mkdir()
    for n, src in enumerate(photo_files(2, offset=1000 - 40)):
        shutil.copy(src, root / f"o{n}.jpg")
        mild_copies(src, root, f"o{n}")
    shutil.copy(photo_files(1, offset=990)[0], root / "single.jpg")
    app = create_app(Settings(data_dir=base / "data", decode_workers=1, roots=str(root)), host="127.0.0.1")
    with served_app(app) as base_url:
        yield base_url, root


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    sync_playwright = sync_api.sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        external = []
        pg.on("request", lambda r: external.append(r.url) if not r.url.startswith(server[0]) else None)
        yield pg
        browser.close()
        assert not external, f"the UI fetched outside the server: {external}"


def test_ingest_groups_resolve_search(server, page) -> None:
    base, root = server
    # Ingest page: start an ingest of the root and watch it finish.
    page.goto(f"{base}/ui/ingest")
    page.fill("#path", str(root))
    page.click("#start")
    page.wait_for_selector('[data-status="done"]', timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "1-ingest.png"), full_page=True)
    assert "Done: 11 indexed, 0 unchanged, 2 groups" in page.inner_text("#job")

    # Groups page: two groups with thumbnails.
    page.goto(f"{base}/ui/groups")
    assert page.locator("[data-group]").count() == 2
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(ARTIFACTS / "2-groups.png"), full_page=True)

    # A group: five photos, a keeper; move the others to quarantine, then restore.
    page.locator("[data-group]").first.click()
    page.wait_for_selector(".keeper-badge")
    assert page.locator(".member[data-id]").count() == 5
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(ARTIFACTS / "3-group.png"), full_page=True)
    page.uncheck("#advance")  # stay on this group to see the result
    page.click("#move-others")
    page.wait_for_selector("#done")
    assert "moved 4 copies" in page.inner_text("#done")
    assert page.locator(".badge.q").count() == 4
    page.screenshot(path=str(ARTIFACTS / "4-resolved.png"), full_page=True)
    assert sum(1 for f in root.iterdir() if f.is_file()) == 7
    page.click("#restore")
    page.wait_for_selector("#move-others")
    assert sum(1 for f in root.iterdir() if f.is_file()) == 11

    # Compare at full size.
    page.locator(".member:not(.keeper) a[href^='/ui/compare']").first.click()
    page.wait_for_selector("figure img")
    assert page.locator("figure").count() == 2

    # Search by upload.
    page.goto(f"{base}/ui/search")
    page.set_input_files("#file", str(root / "o0_bright.png"))
    page.wait_for_selector(".result")
    assert page.locator(".result .badge").count() == 5
    assert float(page.locator(".result .score").first.inner_text()) > 0.999
    page.screenshot(path=str(ARTIFACTS / "5-search.png"), full_page=True)
