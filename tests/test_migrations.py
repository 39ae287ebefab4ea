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
from tests.databases import BACKEND, fresh_postgres_database, fresh_sqlite_database, postgres_server


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


def test_upgrade_keeps_existing_data(empty_database_url: str) -> None:
    """Each revision applies to a database that already holds rows (SQLite rebuilds tables)."""
    from sqlalchemy import text

    from app.migrate import alembic_config
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(empty_database_url))
    revisions = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    engine = make_engine(empty_database_url)
    try:
        migrate.upgrade(empty_database_url, revisions[0])
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO agencies (code, name_el, name_en, currency, timezone, country,"
                    " online_categories, surcharge_policy, installments_in_order, connector, created_at)"
                    " VALUES ('town', 'Δήμος', 'Town', 'EUR', 'Europe/Athens', 'GR', '[]', '{}', true, '{}',"
                    " CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(text("INSERT INTO debtors (country, tax_id, name) VALUES ('GR', '147382606', 'M')"))
            connection.execute(
                text(
                    "INSERT INTO debts (agency_id, external_id, debtor_id, category, kind, description, currency,"
                    " principal_minor, paid_minor, due_date, rf_reference, status, synced_at)"
                    " VALUES (1, 'X-1', 1, 'certified', 'property_fee', 'Fee', 'EUR', 12000, 0, '2026-01-31',"
                    " 'RF18539007547034', 'open', CURRENT_TIMESTAMP)"
                )
            )
        for revision in revisions[1:]:
            command.upgrade(alembic_config(empty_database_url), revision)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT principal_minor FROM debts WHERE external_id = 'X-1'")).scalar() == 12000
    finally:
        engine.dispose()
