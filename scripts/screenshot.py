"""The README's screenshot of the review page (docs/review-page.png), made from photos anyone may use.

Builds a small library from the sample photos scikit-image ships in its wheel (public domain or CC0, see
``skimage.data``; ``pip install scikit-image``) with edited copies of two of them, ingests it, serves it and
captures the page of the cat's group in Chromium (/usr/bin/chromium, through Playwright). Nothing is
downloaded and no photo of ../shared is used.

    .venv/bin/python scripts/screenshot.py [--out docs/review-page.png] [--work var/screenshot]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
SINGLES = ("astronaut.png", "rocket.jpg", "hubble_deep_field.jpg", "motorcycle_left.png")
COPIED = {"chelsea.png": "cat", "coffee.png": "coffee"}  # sample photo -> stem of its copies
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_BYTES = 300 * 1024


def sample(name: str) -> Image.Image:
    import skimage.data

    return Image.open(Path(skimage.data.__file__).parent / name).convert("RGB")


def build_library(root: Path) -> None:
    """Each sample photo as a camera would leave it (JPEG), and four edited copies of the two in ``COPIED``."""
    root.mkdir(parents=True)
    for name in SINGLES:
        sample(name).save(root / f"{Path(name).stem}.jpg", "JPEG", quality=92)
    for name, stem in COPIED.items():
        im = sample(name)
        w, h = im.size
        folder = root / stem
        folder.mkdir()
        im.save(folder / f"{stem}.jpg", "JPEG", quality=92)
        im.resize((w // 2, h // 2), Image.LANCZOS).save(folder / f"{stem}-small.jpg", "JPEG", quality=85)
        ImageEnhance.Brightness(im).enhance(1.3).save(folder / f"{stem}-bright.jpg", "JPEG", quality=85)
        im.crop((w // 12, h // 12, w - w // 12, h - h // 12)).save(folder / f"{stem}-crop.png", "PNG")
        im.save(folder / f"{stem}-resaved.webp", "WEBP", quality=60)


def dupesift(data: Path, *args: str, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dupesift", "--data-dir", str(data), *args]
    if kw.pop("background", False):
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **kw)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def capture(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url, wait_until="networkidle")
        page.screenshot(path=str(out))
        browser.close()


def shrink(path: Path) -> None:
    """A 256-colour PNG: the page is mostly flat colour and text, and the thumbnails stay recognisable."""
    im = Image.open(path).convert("RGB")
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "review-page.png")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "screenshot")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    library, data = a.work / "Pictures", a.work / "data"
    build_library(library)
    dupesift(data, "ingest", str(library))
    groups = json.loads(dupesift(data, "groups", "--json").stdout)["groups"]
    shown = next((g for g in groups if any("/cat/" in m["path"] for m in g["members"])), None)
    if shown is None:
        raise SystemExit(f"the cat's copies were not grouped ({len(groups)} groups): nothing to show")
    port = free_port()
    server = dupesift(data, "serve", "--port", str(port), background=True, start_new_session=True,
                      env={**os.environ, "DUPESIFT_ROOTS": str(library)})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        capture(f"{base}/ui/groups/{shown['id']}", a.out)
    finally:
        server.terminate()
        server.wait(30)
    shrink(a.out)
    size = a.out.stat().st_size
    print(f"{a.out}: {size // 1024} KB, group {shown['id']} of {len(groups)} ({shown['size']} photos)")
    return 0 if size <= MAX_BYTES else 1


if __name__ == "__main__":
    raise SystemExit(main())
