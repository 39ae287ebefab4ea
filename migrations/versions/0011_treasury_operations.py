"""Treasury operations: dismissed quarantine records, platform administrators, append-only audit trigger.

* ``quarantined_records`` gets ``dismissed_reason`` (what the person who dismissed it wrote) and
  ``resolved_by_id`` (who retried or dismissed it from the treasury).
* ``audit_entries`` gets an index on (at, id) for the platform's audit page (every agency,
  newest first, by keyset), and triggers that refuse UPDATE and DELETE (and TRUNCATE on
  PostgreSQL) in the database itself, below the ORM's own refusal. The one update let through is
  the one a foreign key makes when an actor's account row is deleted (``actor_user_id`` set null,
  every other column the same): the entry stays, without a name.
  The triggers are created while ``ENFORCE_APPEND_ONLY_IN_DATABASE`` is on (it is).
* Platform administrators already have their flag (``users.is_platform_admin``, revision 0006).

SQLite keeps triggers with their table: a later batch migration that rebuilds ``audit_entries``
(copy, drop, rename) drops them, and must create them again (``_create_sqlite_triggers``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 04:05:00
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: Whether upgrade() creates the triggers. tests/conftest.py's ``empty_all_tables`` (the teardown of
#: committed_db and browser tests, which DELETEs every table) lifts them for its own transaction
#: with ``app.audit.append_only.audit_log_unlocked``; tests/audit/test_append_only.py covers both.
ENFORCE_APPEND_ONLY_IN_DATABASE = True

_COLUMNS_KEPT_ON_ERASURE = ("id", "at", "agency_id", "action", "subject", "details", "ip_address")

_POSTGRES_FUNCTION = """
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.actor_user_id IS NOT NULL AND NEW.actor_user_id IS NULL
       AND (NEW.id, NEW.at, NEW.agency_id, NEW.action, NEW.subject, NEW.details::text, NEW.ip_address)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.at, OLD.agency_id, OLD.action, OLD.subject, OLD.details::text, OLD.ip_address)
    THEN
        -- The actor's account row was deleted (ON DELETE SET NULL): the entry stays, anonymous.
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
        USING HINT = 'The audit log is written once; its entries are never changed or deleted.';
END;
$$
"""


def _create_sqlite_triggers(execute: Callable[[str], object]) -> None:
    unchanged = " AND ".join(f"NEW.{column} IS OLD.{column}" for column in _COLUMNS_KEPT_ON_ERASURE)
    execute(
        "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
        f"WHEN NOT (OLD.actor_user_id IS NOT NULL AND NEW.actor_user_id IS NULL AND {unchanged}) "
        "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: UPDATE refused'); END"
    )
    execute(
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
        "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: DELETE refused'); END"
    )


def upgrade() -> None:
    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dismissed_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_quarantined_records_resolved_by_id_users"),
            "users",
            ["resolved_by_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_at_id", ["at", "id"], unique=False)

    if ENFORCE_APPEND_ONLY_IN_DATABASE:
        create_append_only_triggers(op.execute, op.get_bind().dialect.name)


def create_append_only_triggers(execute: Callable[[str], object], dialect: str) -> None:
    """The triggers that refuse changing or deleting audit entries (tests run them on a connection)."""
    if dialect == "postgresql":
        execute(_POSTGRES_FUNCTION)
        execute(
            "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        execute(
            "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()"
        )
    elif dialect == "sqlite":
        _create_sqlite_triggers(execute)


def drop_append_only_triggers() -> None:
    """Remove the triggers, if there are any."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")


def downgrade() -> None:
    drop_append_only_triggers()

    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_at_id")

    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_quarantined_records_resolved_by_id_users"), type_="foreignkey")
        batch_op.drop_column("resolved_by_id")
        batch_op.drop_column("dismissed_reason")
