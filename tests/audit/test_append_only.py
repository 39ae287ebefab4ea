"""The database itself refuses to change or delete audit entries (migration 0011's triggers),
on PostgreSQL and on SQLite, whatever SQL is sent: the ORM's refusal is not the only guard.

Until migration 0011 switches them on (``ENFORCE_APPEND_ONLY_IN_DATABASE``), the fixture below
installs the migration's own triggers inside the test's transaction, which is rolled back.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.audit.append_only import audit_log_unlocked, audit_triggers
from app.audit.services import record
from app.extensions import db
from tests.databases import BACKEND
from tests.factories import UserFactory

MIGRATION = Path(__file__).resolve().parents[2] / "migrations" / "versions" / "0011_treasury_operations.py"


def _migration():
    spec = importlib.util.spec_from_file_location("migration_0011", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def guarded(app_ctx: Flask) -> Iterator[dict]:
    """An audit entry by a person, with the append-only triggers in place."""
    connection = db.session.connection()
    if not audit_triggers(connection):
        _migration().create_append_only_triggers(lambda sql: connection.execute(text(sql)), connection.dialect.name)
    actor = UserFactory()
    entry = record(
        "staff.grant", agency_id=None, subject="someone@example.org", details={"role": "view"}, actor_user_id=actor.id
    )
    db.session.commit()
    yield {"entry_id": entry.id, "actor_id": actor.id}


def _refused(sql: str, **params: object) -> None:
    """The statement fails in the database, and takes nothing with it (its savepoint is rolled back)."""
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(text(sql), params)


def _row(entry_id: int) -> tuple:
    return db.session.execute(
        text("SELECT subject, actor_user_id FROM audit_entries WHERE id = :id"), {"id": entry_id}
    ).one()


def test_the_triggers_are_on_the_audit_table(guarded: dict) -> None:
    names = set(audit_triggers(db.session.connection()))
    if BACKEND == "postgresql":
        assert names == {"audit_entries_append_only", "audit_entries_no_truncate"}
    else:
        assert names == {"audit_entries_no_update", "audit_entries_no_delete"}


def test_a_raw_update_is_refused(guarded: dict) -> None:
    _refused("UPDATE audit_entries SET subject = 'forged' WHERE id = :id", id=guarded["entry_id"])
    _refused("UPDATE audit_entries SET details = '{}'")
    assert _row(guarded["entry_id"]) == ("someone@example.org", guarded["actor_id"])


def test_a_raw_delete_is_refused(guarded: dict) -> None:
    _refused("DELETE FROM audit_entries WHERE id = :id", id=guarded["entry_id"])
    _refused("DELETE FROM audit_entries")
    assert db.session.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 1


@pytest.mark.skipif(BACKEND != "postgresql", reason="SQLite has no TRUNCATE")
def test_truncate_is_refused_on_postgresql(guarded: dict) -> None:
    _refused("TRUNCATE audit_entries")
    assert db.session.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 1


def test_hiding_a_change_in_the_actors_erasure_is_refused(guarded: dict) -> None:
    _refused("UPDATE audit_entries SET actor_user_id = NULL, subject = 'forged' WHERE id = :id", id=guarded["entry_id"])
    _refused(
        "UPDATE audit_entries SET actor_user_id = :other WHERE id = :id",
        other=guarded["actor_id"] + 1,
        id=guarded["entry_id"],
    )
    assert _row(guarded["entry_id"]) == ("someone@example.org", guarded["actor_id"])


def test_deleting_an_actors_account_row_keeps_the_entry_without_the_name(guarded: dict) -> None:
    # The foreign key's ON DELETE SET NULL is the one update the triggers let through.
    db.session.execute(text("DELETE FROM users WHERE id = :id"), {"id": guarded["actor_id"]})
    assert _row(guarded["entry_id"]) == ("someone@example.org", None)


def test_the_log_can_be_emptied_only_inside_audit_log_unlocked(guarded: dict) -> None:
    connection = db.session.connection()
    before = set(audit_triggers(connection))
    with audit_log_unlocked(connection):
        connection.execute(text("DELETE FROM audit_entries"))  # how a test database is emptied
    assert db.session.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 0
    assert set(audit_triggers(connection)) == before
    db.session.expunge_all()  # SQLite may give the next entry the deleted one's id
    record("staff.grant", agency_id=None, subject="later@example.org")
    db.session.flush()
    _refused("DELETE FROM audit_entries")  # the guard is back
