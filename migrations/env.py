"""Alembic environment: the URL comes from the caller (indexer.catalog.migrate) or from settings."""
from __future__ import annotations

from alembic import context

from indexer.catalog.db import make_engine
from indexer.catalog.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from indexer.config import get_settings

    url = get_settings().sqlalchemy_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, compare_type=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
