"""The database's own guard on the audit log, and the one sanctioned way to lift it.

Migration 0011 puts triggers on ``audit_entries`` that refuse UPDATE and DELETE. Emptying a test
database, or a retention purge an operator runs by hand, lifts them for one transaction only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection

AUDIT_TABLE = "audit_entries"


def audit_triggers(connection: Connection) -> list[str]:
    """The names of the user triggers on the audit table (none before migration 0011 switches them on)."""
    if connection.dialect.name == "postgresql":
        statement = text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal ORDER BY tgname"
        )
    else:
        statement = text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table ORDER BY name")
    return list(connection.execute(statement, {"table": AUDIT_TABLE}).scalars())


@contextmanager
def audit_log_unlocked(connection: Connection) -> Iterator[None]:
    """Lift the append-only triggers inside the caller's transaction; they are back at its end.

    Never for the application: for emptying test databases and for a purge run by an operator.
    If the block raises, the caller's transaction must be rolled back, which restores the
    triggers (DDL is transactional on both PostgreSQL and SQLite).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER USER"))
        yield
        connection.execute(text(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER USER"))
        return
    saved = connection.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table ORDER BY name"),
        {"table": AUDIT_TABLE},
    ).all()
    for name, _sql in saved:
        connection.execute(text(f'DROP TRIGGER "{name}"'))
    yield
    for _name, sql in saved:
        connection.execute(text(sql))
