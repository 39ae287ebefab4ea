"""The sync engine's set-based writes on PostgreSQL: COPY for new debts, one statement per batch for the rest.

These functions know SQL, not the sync's rules: ``sorting`` decides what each record becomes and
hands over plain rows. Everything runs on the session's own connection, inside the batch's
transaction, so a batch still commits or vanishes as one.

Statements look rows up by arrays (``= ANY(array)``, ``unnest``) rather than by joining a staging
table: an array parameter always plans as index look-ups, whereas a join against a temporary
table without statistics may plan as a scan of every debt, once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from app.extensions import db

#: Columns of ``debts`` that a new debt is copied with, in COPY order.
DEBT_COLUMNS = (
    "id", "agency_id", "external_id", "debtor_id", "category", "kind", "description", "currency",
    "principal_minor", "paid_minor", "due_date", "rf_reference", "status", "vehicle_plate",
    "contact_email", "contact_phone", "synced_at", "content_hash", "closed_reason", "closed_at",
)  # fmt: skip
INSTALLMENT_COLUMNS = ("debt_id", "number", "due_date", "amount_minor", "paid_minor", "status")


def naive_utc(moment: datetime) -> datetime:
    """A timestamp as UTCDateTime stores it (naive UTC), for statements that bypass the ORM."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def cursor() -> psycopg.Cursor[Any]:
    """A psycopg cursor on the session's connection, inside its current transaction."""
    return db.session.connection().connection.driver_connection.cursor()


def known_debts(cur: psycopg.Cursor[Any], agency_id: int, external_ids: list[str]) -> list[tuple[Any, ...]]:
    """(external_id, id, content_hash, closed_reason) of the agency's debts with these external ids."""
    cur.execute(
        "SELECT external_id, id, content_hash, closed_reason FROM debts"
        " WHERE agency_id = %s AND external_id = ANY(%b::text[])",
        (agency_id, external_ids),
    )
    return cur.fetchall()


def reference_owners(cur: psycopg.Cursor[Any], agency_id: int, references: list[str]) -> dict[str, str]:
    """External id of the agency's debt that carries each of these RF references, where one does."""
    cur.execute(
        "SELECT rf_reference, external_id FROM debts WHERE agency_id = %s AND rf_reference = ANY(%b::text[])",
        (agency_id, references),
    )
    return dict(cur.fetchall())


#: Columns of ``debtors`` that a new debtor is copied with, in COPY order.
DEBTOR_COLUMNS = ("id", "country", "tax_id", "name")


def known_debtors(cur: psycopg.Cursor[Any], keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    """The (id, name) of each of these (country, tax id) debtors that exists."""
    keys = list(keys)
    found: dict[tuple[str, str], tuple[int, str]] = {}
    # One query per country with a plain ANY on the tax ids: PostgreSQL does not use the
    # (country, tax_id) index for a row-value IN and would scan every debtor of the country.
    for country in {country for country, _ in keys}:
        cur.execute(
            "SELECT country, tax_id, id, name FROM debtors WHERE country = %s AND tax_id = ANY(%b::text[])",
            (country, [tax_id for key_country, tax_id in keys if key_country == country]),
        )
        for row_country, tax_id, debtor_id, name in cur:
            found[(row_country, tax_id)] = (debtor_id, name)
    return found


def rename_debtors(cur: psycopg.Cursor[Any], renamed: list[tuple[int, str]]) -> None:
    """Give these debtors (id, name) the name their ERP now uses."""
    cur.execute(
        "UPDATE debtors SET name = renamed.name FROM unnest(%b::int[], %b::text[]) AS renamed(id, name)"
        " WHERE debtors.id = renamed.id",
        ([debtor_id for debtor_id, _ in renamed], [name for _, name in renamed]),
    )


def debtor_ids(cur: psycopg.Cursor[Any], names: dict[tuple[str, str], str]) -> dict[tuple[str, str], int]:
    """Ids of these (country, tax id) debtors, creating the missing ones and renaming the others."""
    found = known_debtors(cur, names)
    missing = [key for key in names if key not in found]
    if missing and not _copy_new_debtors(cur, missing, names, found):
        # Another agency's sync created some of them meanwhile (the COPY met its rows): take
        # theirs and insert the rest, one row at a time as far as conflicts go.
        cur.execute(
            "INSERT INTO debtors (country, tax_id, name)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])"
            " ON CONFLICT (country, tax_id) DO NOTHING RETURNING country, tax_id, id, name",
            ([key[0] for key in missing], [key[1] for key in missing], [names[key] for key in missing]),
        )
        for row_country, tax_id, debtor_id, name in cur.fetchall():
            found[(row_country, tax_id)] = (debtor_id, name)
        raced = [key for key in missing if key not in found]
        if raced:
            return debtor_ids(cur, names)
    renamed = [(debtor_id, names[key]) for key, (debtor_id, name) in found.items() if name != names[key]]
    if renamed:
        rename_debtors(cur, renamed)
    return {key: debtor_id for key, (debtor_id, _) in found.items()}


def _copy_new_debtors(
    cur: psycopg.Cursor[Any],
    missing: list[tuple[str, str]],
    names: dict[tuple[str, str], str],
    found: dict[tuple[str, str], tuple[int, str]],
) -> bool:
    """COPY debtors nobody has yet, with ids drawn beforehand; False if one appeared meanwhile.

    A COPY costs about half an INSERT ... ON CONFLICT per row. It runs under a savepoint, so a
    debtor that another sync created since the look-up fails only the COPY, not the batch.
    """
    ids = reserve_ids(cur, "debtors", len(missing))
    try:
        with cur.connection.transaction():
            copy_rows(cur, "debtors", DEBTOR_COLUMNS,
                      [(debtor_id, key[0], key[1], names[key]) for debtor_id, key in zip(ids, missing, strict=True)])  # fmt: skip
    except psycopg.errors.UniqueViolation:
        return False
    for debtor_id, key in zip(ids, missing, strict=True):
        found[key] = (debtor_id, names[key])
    return True


def reserve_ids(cur: psycopg.Cursor[Any], table: str, count: int) -> list[int]:
    """Draw ``count`` ids from the table's id sequence, ascending, so new rows can be copied with their ids.

    The sequence's name is looked up once per statement (a sub-select), not once per id.
    """
    cur.execute(
        "SELECT array_agg(nextval((SELECT pg_get_serial_sequence(%s, 'id'))::regclass)) FROM generate_series(1, %s)",
        (table, count),
    )
    return sorted(cur.fetchone()[0])


#: COPY's text format: a backslash, tab, newline or carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
#: How COPY's text format writes NULL.
COPY_NULL = "\\N"


def copy_text(value: str | None) -> str:
    """A text value as a field of COPY's text format (NULL as ``\\N``)."""
    if value is None:
        return COPY_NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def copy_payload(cur: psycopg.Cursor[Any], table: str, columns: Sequence[str], payload: str) -> None:
    """COPY rows already written in COPY's text format (one line each) into a table, in one go."""
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(payload.encode(cur.connection.info.encoding))


def copy_rows(cur: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows into a table (timestamps as naive UTC, as UTCDateTime stores them)."""
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def lock_debts(cur: psycopg.Cursor[Any], debt_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Lock debts about to be merged; by id: (status, closed_reason, closed_at, review_reason, paid_minor, held).

    ``held`` says whether an online payment holds the debt or one of its installments right now.
    """
    cur.execute(
        "SELECT id, status, closed_reason, closed_at, review_reason, paid_minor,"
        " pending_payment_id IS NOT NULL OR EXISTS ("
        "   SELECT 1 FROM installments WHERE installments.debt_id = debts.id"
        "   AND installments.pending_payment_id IS NOT NULL)"
        " FROM debts WHERE id = ANY(%b::int[]) ORDER BY id FOR UPDATE",
        (debt_ids,),
    )
    return {row[0]: row[1:] for row in cur.fetchall()}


#: Columns an update of a debt sets, in the order of update_debts' rows (after the id).
UPDATED_COLUMNS = (
    ("debtor_id", "int"), ("category", "text"), ("kind", "text"), ("description", "text"),
    ("currency", "text"), ("principal_minor", "int"), ("paid_minor", "int"), ("due_date", "date"),
    ("rf_reference", "text"), ("status", "text"), ("vehicle_plate", "text"), ("contact_email", "text"),
    ("contact_phone", "text"), ("synced_at", "timestamp"), ("content_hash", "text"),
    ("closed_reason", "text"), ("closed_at", "timestamp"), ("review_reason", "text"),
)  # fmt: skip


def update_debts(cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> None:
    """Write merged debts: each row is (id, *values in UPDATED_COLUMNS order)."""
    columns = list(zip(*rows, strict=True))
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in (("id", "int"), *UPDATED_COLUMNS))
    names = ", ".join(name for name, _ in UPDATED_COLUMNS)
    assignments = ", ".join(f"{name} = merged.{name}" for name, _ in UPDATED_COLUMNS)
    cur.execute(
        f"UPDATE debts SET {assignments} FROM unnest({arrays}) AS merged(id, {names}) WHERE debts.id = merged.id",
        [list(column) for column in columns],
    )


def merge_installments(cur: psycopg.Cursor[Any], rows: list[tuple[int, int, date, int, int, str]]) -> None:
    """Insert or merge installments of existing debts; rows as INSTALLMENT_COLUMNS.

    An existing installment takes the ERP's dates and amounts, keeps the larger paid amount
    (online payments the ERP has not heard of yet stay), and becomes paid once fully paid.
    """
    columns = list(zip(*rows, strict=True))
    cur.execute(
        "INSERT INTO installments (debt_id, number, due_date, amount_minor, paid_minor, status)"
        " SELECT * FROM unnest(%b::int[], %b::int[], %b::date[], %b::int[], %b::int[], %b::text[])"
        " ON CONFLICT (debt_id, number) DO UPDATE SET"
        "   due_date = excluded.due_date, amount_minor = excluded.amount_minor,"
        "   paid_minor = LEAST(GREATEST(installments.paid_minor, excluded.paid_minor), excluded.amount_minor),"
        "   status = CASE WHEN GREATEST(installments.paid_minor, excluded.paid_minor) >= excluded.amount_minor"
        "     THEN 'paid' ELSE installments.status END",
        [list(column) for column in columns],
    )


def set_content_hashes(cur: psycopg.Cursor[Any], pairs: list[tuple[int, str]]) -> None:
    """Store new content hashes of debts whose content did not change (only the hash's form did)."""
    cur.execute(
        "UPDATE debts SET content_hash = rehashed.content_hash"
        " FROM unnest(%b::int[], %b::text[]) AS rehashed(id, content_hash) WHERE debts.id = rehashed.id",
        ([debt_id for debt_id, _ in pairs], [digest for _, digest in pairs]),
    )


def close_vanished(
    cur: psycopg.Cursor[Any], agency_id: int, seen: bytes, now: datetime, flag_reason: str
) -> tuple[int, int]:
    """Close the agency's open debts whose id is not marked in ``seen`` (one byte per debt id).

    Debts an online payment holds are flagged with ``flag_reason`` instead. Returns (closed, flagged).
    One scan of the agency's open debts finds the vanished ones (usually none); the two updates
    then touch those alone and test their status and hold again, so a payment that holds a debt
    between the scan and the update still keeps it open. The scan runs without JIT: PostgreSQL compiles
    a query this large (by its estimate) before running it, which took 100 ms, five times the
    scan itself at 100k debts, for a query run once.
    """
    # CASE, not OR: SQL does not promise to test the bound before get_byte reads past the end.
    not_seen = "CASE WHEN debts.id < %(size)s THEN get_byte(%(seen)s, debts.id) = 0 ELSE true END"
    held = (
        "(debts.pending_payment_id IS NOT NULL OR EXISTS (SELECT 1 FROM installments"
        " WHERE installments.debt_id = debts.id AND installments.pending_payment_id IS NOT NULL))"
    )
    parameters: dict[str, Any] = {
        "agency": agency_id,
        "seen": seen,
        "size": len(seen),
        "now": now,
        "reason": flag_reason,
    }
    cur.execute("SET LOCAL jit = off")
    cur.execute(f"SELECT id FROM debts WHERE agency_id = %(agency)s AND status = 'open' AND {not_seen}", parameters)
    parameters["vanished"] = [debt_id for (debt_id,) in cur.fetchall()]
    if not parameters["vanished"]:
        return 0, 0
    vanished = "debts.id = ANY(%(vanished)s::int[]) AND debts.status = 'open'"
    cur.execute(
        "UPDATE debts SET status = 'cancelled', closed_reason = 'vanished', closed_at = %(now)s"
        f" WHERE {vanished} AND NOT {held}",
        parameters,
    )
    closed = cur.rowcount
    cur.execute(f"UPDATE debts SET review_reason = %(reason)s WHERE {vanished} AND {held}", parameters)
    return closed, cur.rowcount
