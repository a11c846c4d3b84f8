"""The catalog's alembic migrations on SQLite and PostgreSQL, and `dupesift db upgrade`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect, text

from indexer.catalog import Catalog, migrate

TABLES = {"images", "pairs", "dup_groups", "roots", "jobs", "meta", "not_duplicates", "alembic_version"}


def _insert_image(conn, image_id: int, path: str, **columns) -> None:
    """An ``images`` row as an older revision's catalog holds it (raw SQL: the models are the newest schema)."""
    row = {"id": image_id, "path": path, "bytes": 10, "mtime": 1.0, "status": "indexed", "linked": 1,
           "first_seen_at": "2026-01-01", "camera_exif": 0, "decode_crashes": 0, **columns}
    conn.execute(text(f"INSERT INTO images ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"), row)


def test_sqlite_migrations(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    migrate(url)  # idempotent
    cat = Catalog(url)
    assert TABLES <= set(inspect(cat.engine).get_table_names())
    cat.dispose()


def test_postgres_migrations(pg_url) -> None:
    migrate(pg_url)
    cat = Catalog(pg_url)
    assert TABLES <= set(inspect(cat.engine).get_table_names())
    cat.set_meta("k", "v")
    assert cat.get_meta("k") == "v"
    cat.dispose()


def test_db_upgrade_command(tmp_path) -> None:
    env = dict(os.environ, DUPESIFT_DATA_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "dupesift", "db", "upgrade"], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "catalog.sqlite3").exists()


def _drift(url: str) -> list:
    """What alembic autogenerate would still change: the models and the migrations must agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from indexer.catalog.models import Base

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_models_match_migrations_on_sqlite_and_postgres(tmp_path, pg_url) -> None:
    for url in (f"sqlite:///{tmp_path / 'c.db'}", pg_url):
        migrate(url)
        assert _drift(url) == [], url


def test_upgrade_from_0001_keeps_rows(pg_url) -> None:
    from sqlalchemy import create_engine, text

    migrate(pg_url, "0001")
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO images (id, path, bytes, mtime, status, linked, first_seen_at) "
                          "VALUES (1, '/x.jpg', 10, 1.0, 'indexed', true, now())"))
    migrate(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT path, camera_exif FROM images")).all() == [("/x.jpg", False)]
        idx = {i["name"] for i in inspect(conn).get_indexes("dup_groups")}
    engine.dispose()
    assert {"ix_dup_groups_size_id", "ix_dup_groups_reclaimable_bytes_id"} <= idx


def test_upgrade_to_0006_keeps_paths_with_a_replacement_character(tmp_path) -> None:
    """A path stored before 0006 that holds U+FFFD reads back unchanged through the lossless path column."""
    from sqlalchemy import create_engine, select

    from indexer.catalog.models import Image

    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url, "0004")
    odd = "/lib/x\ufffdAB.jpg"  # would read as a byte 0xAB under the new form without the migration
    engine = create_engine(url)
    with engine.begin() as conn:
        _insert_image(conn, 1, odd)
    engine.dispose()
    cat = Catalog(url)
    with cat.session() as s:
        assert s.scalar(select(Image.path)) == odd
        assert s.scalar(select(Image.id).where(Image.path == odd)) == 1
    cat.dispose()


def test_upgrade_to_0011_marks_groups_held_only_by_look_alike_links(tmp_path) -> None:
    """Groups stored before 0011 get ``look_only`` from their stored pairs: a group whose photo 3 joins only
    through a `pixels` link is look-only (bulk review holds it back); one held by verified links is not."""
    from sqlalchemy import create_engine, select, text

    from indexer.catalog.models import DupGroup

    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url, "0010")
    engine = create_engine(url)
    with engine.begin() as conn:
        for gid in (1, 2):
            conn.execute(text("INSERT INTO dup_groups (id, size, max_distance, total_bytes, reclaimable_bytes, "
                              "updated_at) VALUES (:g, 3, 0.1, 30, 20, '2026-01-01')"), {"g": gid})
        for i in range(1, 7):
            _insert_image(conn, i, f"/lib/{i}.jpg", group_id=1 if i <= 3 else 2)
        for a, b, kind in ((1, 2, "verified"), (2, 3, "pixels"), (4, 5, "verified"), (5, 6, "framed"), (4, 6, "visual")):
            conn.execute(text("INSERT INTO pairs (a_id, b_id, similarity, kind) VALUES (:a, :b, 0.9, :k)"),
                         {"a": a, "b": b, "k": kind})
    engine.dispose()
    cat = Catalog(url)
    with cat.session() as s:
        assert dict(s.execute(select(DupGroup.id, DupGroup.look_only)).all()) == {1: True, 2: False}
    cat.dispose()


def test_upgrade_to_0012_learns_each_kept_features_version_when_first_needed(tmp_path) -> None:
    """Features kept before 0012 have no recorded version: the link step reads it from the packed features the
    first time (and the page flag with it), so a row of the current version is used as is and one of an older
    version is computed again (``featurestore.stale``), never read as current (``featurestore.pages``)."""
    from PIL import Image as PILImage
    from sqlalchemy import create_engine, select, text

    from indexer import features, featurestore
    from indexer.catalog.models import Features
    from tests.conftest import PHOTOS, packed_as

    photo = features.pack(features.extract(PILImage.open(next(iter(sorted(PHOTOS.glob("*.JPEG"))))).convert("RGB")))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url, "0011")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, data in ((1, photo), (2, packed_as(photo, features.VERSION - 1))):
            _insert_image(conn, i, f"/lib/{i}.jpg", sha256="h")
            conn.execute(text("INSERT INTO features (image_id, sha256, data, page) VALUES (:i, 'h', :d, 1)"),
                         {"i": i, "d": data})  # a stale page flag: the photo is no page
    engine.dispose()
    cat = Catalog(url)
    with cat.session() as s:
        assert dict(s.execute(select(Features.image_id, Features.version)).all()) == {1: None, 2: None}
        assert featurestore.pages(s, [1, 2]) == set()  # a flag of unknown version is not read as current
        assert featurestore.stale(s, [1, 2]) == {2}
    with cat.session() as s:
        rows = {i: (v, p) for i, v, p in s.execute(select(Features.image_id, Features.version, Features.page))}
        assert rows == {1: (features.VERSION, False), 2: (features.VERSION - 1, False)}  # flags read from the blobs
        assert featurestore.stale(s, [1, 2, 3]) == {2, 3}  # 3: no features kept at all
    cat.dispose()


def test_upgrade_to_0015_holds_back_groups_larger_than_a_bulk_decision(tmp_path) -> None:
    """Groups stored before 0015 with more than ``grouping.MAX_BULK`` photos are held back from bulk review; a
    group of that many stays as it was."""
    from sqlalchemy import create_engine, select, text

    from indexer.catalog.models import DupGroup
    from indexer.grouping import MAX_BULK

    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url, "0014")
    engine = create_engine(url)
    with engine.begin() as conn:
        for gid, size in ((1, MAX_BULK), (2, MAX_BULK + 1)):
            conn.execute(text("INSERT INTO dup_groups (id, size, max_distance, total_bytes, reclaimable_bytes, "
                              "updated_at, look_only) VALUES (:g, :n, 0.1, 30, 20, '2026-01-01', 0)"),
                         {"g": gid, "n": size})
    engine.dispose()
    cat = Catalog(url)
    with cat.session() as s:
        assert dict(s.execute(select(DupGroup.id, DupGroup.look_only)).all()) == {1: False, 2: True}
    cat.dispose()


def _offered_groups(url: str, groups: dict[int, list[int]], links: list[tuple[int, int, str, float | None]]) -> None:
    """Store groups offered to bulk review (group id -> image ids) and pairs (a, b, kind, cover) at the database's
    present revision."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        for gid, ids in groups.items():
            conn.execute(text("INSERT INTO dup_groups (id, size, max_distance, total_bytes, reclaimable_bytes, "
                              "updated_at, look_only) VALUES (:g, :n, 0.1, 30, 20, '2026-01-01', :no)"),
                         {"g": gid, "n": len(ids), "no": False})
            for i in ids:
                _insert_image(conn, i, f"/lib/{i}.jpg", group_id=gid, linked=True, camera_exif=False)
        for a, b, kind, cover in links:
            conn.execute(text("INSERT INTO pairs (a_id, b_id, similarity, kind, cover) VALUES (:a, :b, 0.9, :k, :c)"),
                         {"a": a, "b": b, "k": kind, "c": cover})
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_to_0017_holds_back_offered_groups_that_hang_on_one_link(tmp_path, request, backend) -> None:
    """A group stored before 0017 and offered to bulk review whose checked links hang on one link between two
    parts of two photos each is held back; one with a second link across, or whose bridge joins a single photo,
    stays offered."""
    from sqlalchemy import select

    from indexer.catalog.models import DupGroup

    url = f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    migrate(url, "0016")
    groups = {1: [1, 2, 3, 4], 2: [5, 6, 7, 8], 3: [9, 10, 11]}
    links = [(1, 2, "verified", 0.9), (3, 4, "verified", 0.9), (2, 3, "verified", 0.6), (1, 4, "pixels", None),
             (5, 6, "verified", 0.9), (7, 8, "exact", None), (6, 7, "verified", 0.6), (5, 8, "verified", 0.8),
             (9, 10, "verified", 0.9), (10, 11, "verified", 0.9)]
    _offered_groups(url, groups, links)
    cat = Catalog(url)
    with cat.session() as s:
        assert dict(s.execute(select(DupGroup.id, DupGroup.look_only)).all()) == {1: True, 2: False, 3: False}
    cat.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_to_0018_holds_back_offered_groups_with_a_checked_link_outside(tmp_path, request, backend) -> None:
    """Groups stored before 0018 and offered to bulk review are held back when one of their photos has a checked
    link to a photo outside them (a collage in one group linked to a photo of another: both groups); a look-alike
    link outside, or a checked one on a small part, leaves a group offered."""
    from sqlalchemy import select

    from indexer.catalog.models import DupGroup

    url = f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    migrate(url, "0017")
    groups = {1: [1, 2, 3], 2: [4, 5], 3: [6, 7], 4: [8, 9]}
    links = [(1, 2, "verified", 0.9), (1, 3, "verified", 0.9), (4, 5, "verified", 0.9), (3, 4, "verified", 0.7),
             (6, 7, "verified", 0.9), (8, 9, "verified", 0.9), (7, 8, "visual", None), (6, 9, "verified", 0.2)]
    _offered_groups(url, groups, links)
    cat = Catalog(url)
    with cat.session() as s:
        assert dict(s.execute(select(DupGroup.id, DupGroup.look_only)).all()) == {1: True, 2: True, 3: False, 4: False}
    cat.dispose()


def test_upgrade_to_0016_keeps_stored_pairs_with_no_count_of_moved_cells(tmp_path) -> None:
    """Pairs stored before 0016 keep their evidence and read as nothing moved (``Pair.shifted`` NULL), so their
    groups stay as they were until a relink counts the cells."""
    from sqlalchemy import create_engine, select, text

    from indexer.catalog.models import Pair
    from indexer.grouping import two_frames

    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url, "0015")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i in (1, 2):
            _insert_image(conn, i, f"/lib/{i}.jpg")
        conn.execute(text("INSERT INTO pairs (a_id, b_id, similarity, kind, inliers, agreement, cover) "
                          "VALUES (1, 2, 0.9, 'verified', 80, 0.9, 0.8)"))
    engine.dispose()
    cat = Catalog(url)
    with cat.session() as s:
        p = s.scalars(select(Pair)).one()
        assert (p.kind, p.inliers, p.cover, p.shifted) == ("verified", 80, 0.8, None) and not two_frames(p.shifted)
    cat.dispose()
