"""Thumbnails of huge, tiny files do not multiply the server's memory (issue 28, item 9): a real server,
three concurrent thumbnails of three 64 MP PNGs (a few hundred KB each on disk)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import select

from indexer.catalog.models import Image as ImageRow
from indexer.config import Settings
from indexer.index import Index
from tests.conftest import stop_process_group
from tests.test_server_hardening import _start

SIDE = 8000  # 64 MP: 192 MB decoded as RGB


def _rss_mb(pid: int) -> float:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def _peak_during(pid: int, fn) -> float:
    """The server's highest resident memory (MB above its level before) while ``fn`` runs."""
    base, peak, done = _rss_mb(pid), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb(pid))
            time.sleep(0.01)

    t = threading.Thread(target=sample)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return peak[0] - base


def test_concurrent_huge_thumbnails_decode_one_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    for k in range(3):
        a = np.full((SIDE, SIDE, 3), 40 * k, np.uint8)
        a[k * 100: k * 100 + 400, 200:900] = (200, 30 * k, 90)
        Image.fromarray(a).save(root / f"huge{k}.png", compress_level=1)
    data = tmp_path / "data"
    with Index(Settings(data_dir=data, decode_workers=1)) as index:
        assert index.ingest([str(root)]).indexed == 3
        with index.catalog.session() as s:
            ids = list(s.scalars(select(ImageRow.id).order_by(ImageRow.path)))
    # a fixed mmap threshold makes glibc hand every large block back at once, so that resident memory is the
    # memory in use (else each worker thread's arena keeps its high-water mark)
    p, url = _start(data, root, env={"MALLOC_MMAP_THRESHOLD_": str(1024 * 1024)})
    try:

        def one(iid: int, size: int) -> int:
            return httpx.get(f"{url}/images/{iid}/thumbnail", params={"size": size}, timeout=120).status_code

        single = _peak_during(p.pid, lambda: one(ids[0], 64))
        with ThreadPoolExecutor(3) as ex:
            burst = _peak_during(p.pid, lambda: list(ex.map(one, ids, [128] * 3)))
        codes = [one(i, 128) for i in ids]
    finally:
        stop_process_group(p)
    assert codes == [200] * 3
    assert single > 100, single  # one decode holds the full picture
    assert burst < 1.6 * single, (single, burst)  # three at once would hold three
