"""The catalog's alembic migrations on SQLite and PostgreSQL, and `dupesift db upgrade`."""
from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import inspect

from indexer.catalog import Catalog, migrate

TABLES = {"images", "pairs", "dup_groups", "roots", "jobs", "meta", "not_duplicates", "alembic_version"}


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
    r = subprocess.run([sys.executable, "-m", "indexer.cli", "db", "upgrade"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "catalog.sqlite3").exists()
