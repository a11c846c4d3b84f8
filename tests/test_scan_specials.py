"""Links and special files in a library are skipped with a reason, never silently (issue 28, also seen)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from indexer.config import Settings
from indexer.index import Index
from tests.conftest import photo_files


def test_links_loops_and_fifos_are_counted_as_ignored_with_their_reason(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(photo_files(1, offset=650)[0], root / "a.jpg")
    (root / "loop1.jpg").symlink_to(root / "loop2.jpg")
    (root / "loop2.jpg").symlink_to(root / "loop1.jpg")
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (root / "alias.jpg").symlink_to(root / "a.jpg")
    (root / "folder-link").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "pipe.jpg")
    (root / "notes.txt").write_text("not a photo")
    with Index(Settings(data_dir=tmp_path / "data", decode_workers=1)) as index:
        s = index.ingest([str(root)])
    assert s.seen == 1 and s.indexed == 1 and not s.failed
    assert s.ignored == 7
    assert s.ignored_why == {"symbolic link loop": 2, "broken symbolic link": 1, "symbolic link (not followed)": 2,
                             "FIFO (named pipe)": 1, "not an image file name": 1}
