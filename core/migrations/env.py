"""Alembic environment: runs on the connection core.db hands over (or DATABASE_URL / embedded)."""
from alembic import context

from core.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # `alembic` command line: use the app's own database
        from core.config import get_settings
        from core.db import database_url, make_engine

        engine = make_engine(database_url(get_settings()))
        with engine.begin() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
