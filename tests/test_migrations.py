"""The Alembic history builds exactly the models' schema, and unwinds to nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import app.models  # noqa: F401 - every table on the metadata
from app import migrate
from app.db import Base, make_engine
from tests.conftest import BACKEND
from tests.databases import fresh_postgres_database, fresh_sqlite_database, postgres_server


@pytest.fixture()
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A brand-new empty database of the backend under test."""
    if BACKEND == "postgresql":
        with postgres_server() as server, fresh_postgres_database(server, "migrations") as url:
            yield url
    else:
        with fresh_sqlite_database(tmp_path, "migrations") as url:
            yield url


def test_upgrade_head_matches_models_and_downgrade_base_empties(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrate.upgrade(empty_database_url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == [], f"models and migrations differ: {differences}"
        tables = set(inspect(engine).get_table_names())
        assert {"agencies", "debts", "installments", "payments", "payment_lines", "quotes"} <= tables

        migrate.downgrade(empty_database_url, "base")
        engine.dispose()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        migrate.upgrade(empty_database_url)  # and back up again, cleanly
        assert "debts" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
