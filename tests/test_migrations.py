"""The Alembic history builds exactly the models' schema, unwinds to nothing, and ships in the wheel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import app.models  # noqa: F401 - every table on the metadata
from app import migrate
from app.db import Base, make_engine
from tests.databases import BACKEND, fresh_postgres_database, fresh_sqlite_database, postgres_server

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from app.migrate import alembic_config

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
            assert (
                connection.execute(text("SELECT principal_minor FROM debts WHERE external_id = 'X-1'")).scalar()
                == 12000
            )
    finally:
        engine.dispose()


def _run(command: list[str], **options: object) -> None:
    """Run a command; fail with its output if it does not succeed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **options)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(command[:6])} ... failed:\n{result.stdout}\n{result.stderr}"


def test_a_wheel_installed_elsewhere_migrates_a_database(tmp_path: Path) -> None:
    """A non-editable install carries its migrations: no checkout, no alembic.ini, another directory."""
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path / "source"
    for folder in ("app", "erp_connectors", "migrations"):
        shutil.copytree(PROJECT_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / file, source / file)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(source)])

    (wheel,) = (tmp_path / "dist").glob("civicpay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"migrations/env.py", "migrations/script.py.mako"} <= names
    assert any(re.fullmatch(r"migrations/versions/0001_\w+\.py", name) for name in names)

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "installed.sqlite3"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import app, migrations\n"
        "from app import migrate\n"
        "for module in (app, migrations):\n"
        "    assert module.__file__.startswith(sys.argv[1]), module.__file__\n"
        "migrate.upgrade(sys.argv[2])\n"
    )
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    _run([sys.executable, "-c", script, str(site), f"sqlite:///{database}"], cwd=elsewhere, env=environment)

    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert {"debts", "payments", "outbox_messages"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
