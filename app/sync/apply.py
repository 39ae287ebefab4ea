"""Writing sorted records row by row through the ORM (SQLite, pushed batches, refreshes), closing debts.

Upserts debts, their installments and debtors by the merge rules of ``rules``; closes the debts an
ERP pushed as paid or cancelled, and the debts a complete full export no longer lists. These
functions flush; the sync engine commits each batch, a request or command commits the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.extensions import db
from app.sync import postgres
from app.sync.models import SyncRun
from app.sync.rules import FLAG_PAID_WHILE_PAYING, erp_status, merged_installment_paid, merged_status
from app.sync.runs import RunState, finish_run, settle, start_run
from app.sync.sorting import DebtLookup, OwnerLookup, RecordResult, reference_of, sort_batch
from erp_connectors.base import DebtRecord, RecordError

#: How an ERP that pushes may close a debt.
CLOSE_REASONS = ("paid_at_agency", "cancelled")


@dataclass
class PushResult:
    """A pushed batch: its run and one result per upsert and close, in request order."""

    run: SyncRun
    results: list[RecordResult]


def _lookup_debts(agency: Agency) -> DebtLookup:
    """The batch's known debts, read through the session (the row path's look-up)."""

    def lookup(external_ids: list[str]) -> Iterable[tuple[Any, ...]]:
        return db.session.execute(
            select(Debt.external_id, Debt.id, Debt.content_hash, Debt.closed_reason).where(
                Debt.agency_id == agency.id, Debt.external_id.in_(set(external_ids))
            )
        ).all()

    return lookup


def _lookup_owners(agency: Agency) -> OwnerLookup:
    """The owners of RF references, read through the session (the row path's look-up)."""

    def owners(references: list[str]) -> Mapping[str, str]:
        return dict(
            db.session.execute(
                select(Debt.rf_reference, Debt.external_id).where(
                    Debt.agency_id == agency.id, Debt.rf_reference.in_(references)
                )
            ).all()
        )

    return owners


def _debt_values(record: DebtRecord, agency: Agency, debtor_id: int) -> dict[str, Any]:
    """Columns the ERP owns (paid amount and status are merged separately)."""
    return {
        "debtor_id": debtor_id,
        "category": record.category,
        "kind": record.kind,
        "description": record.description,
        "currency": record.currency,
        "principal_minor": record.principal_minor,
        "due_date": record.due_date,
        "rf_reference": reference_of(record, agency),
        "vehicle_plate": record.vehicle_plate,
        "contact_email": record.contact_email,
        "contact_phone": record.contact_phone,
    }


def _debtor_ids(records: list[DebtRecord]) -> dict[tuple[str, str], int]:
    """Ids of the records' debtors, creating the missing ones (names and contacts kept current)."""
    keys = {(record.tax_country, record.tax_id): record for record in records}
    if not keys:
        return {}
    # One query per country with a plain IN on the tax ids: PostgreSQL does not use the
    # (country, tax_id) index for a row-value IN and would scan every debtor of the country
    # for each batch, making a large first sync quadratic.
    found: dict[tuple[str, str], Debtor] = {}
    for country in {country for country, _ in keys}:
        tax_ids = [tax_id for key_country, tax_id in keys if key_country == country]
        for debtor in db.session.scalars(select(Debtor).where(Debtor.country == country, Debtor.tax_id.in_(tax_ids))):
            found[(debtor.country, debtor.tax_id)] = debtor
    for key, record in keys.items():
        debtor = found.get(key)
        if debtor is None:
            debtor = Debtor(country=key[0], tax_id=key[1], name=record.debtor_name)
            db.session.add(debtor)
            found[key] = debtor
        debtor.name = record.debtor_name
    db.session.flush()
    return {key: debtor.id for key, debtor in found.items()}


def apply_batch(
    agency: Agency, state: RunState, items: list[tuple[int, DebtRecord | RecordError]], now: datetime
) -> list[RecordResult]:
    """Apply one batch through the ORM (flushed: the caller commits); returns one result per item."""
    run = state.run
    results: list[RecordResult] = []
    batch = sort_batch(agency, state, items, _lookup_debts(agency), _lookup_owners(agency), results)
    good = batch.good
    to_update = [
        batch.known_ids[record.external_id] for _, record, _, _ in good if record.external_id in batch.known_ids
    ]
    existing = {
        debt.external_id: debt
        for debt in db.session.scalars(
            select(Debt).where(Debt.id.in_(to_update)).options(selectinload(Debt.installments))
        )
    } if to_update else {}  # fmt: skip
    debtor_ids = _debtor_ids([record for _, record, _, _ in good])
    new_rows: list[tuple[int, DebtRecord, dict[str, Any]]] = []
    for index, record, digest, _ in good:
        debt = existing.get(record.external_id)
        if debt is None:
            values = _debt_values(record, agency, debtor_ids[(record.tax_country, record.tax_id)])
            status, reason = erp_status(record)
            values.update(
                agency_id=agency.id,
                external_id=record.external_id,
                paid_minor=min(record.paid_minor, record.principal_minor),
                status=status,
                closed_reason=reason,
                closed_at=now if reason else None,
                content_hash=digest,
                synced_at=now,
            )
            new_rows.append((index, record, values))
            continue
        state.mark(debt.id)
        outcome, reason = _update_debt(debt, record, agency, debtor_ids[(record.tax_country, record.tax_id)], now)
        debt.content_hash = digest
        debt.synced_at = now
        setattr(run, outcome, getattr(run, outcome) + 1)
        results.append(RecordResult(index, record.external_id, outcome, reason))

    if new_rows:
        # Core (not ORM-enabled) insert: one multi-row INSERT ... RETURNING per 1000 rows.
        table = Debt.__table__
        db.session.execute(table.insert(), [values for _, _, values in new_rows])
        ids = dict(
            db.session.execute(
                select(Debt.external_id, Debt.id).where(
                    Debt.agency_id == agency.id, Debt.external_id.in_([record.external_id for _, record, _ in new_rows])
                )
            ).all()
        )
        installments = []
        for index, record, _values in new_rows:
            debt_id = ids[record.external_id]
            state.mark(debt_id)
            run.created += 1
            results.append(RecordResult(index, record.external_id, "created"))
            for source in record.installments:
                paid = merged_installment_paid(0, source)
                installments.append(
                    {
                        "debt_id": debt_id,
                        "number": source.number,
                        "due_date": source.due_date,
                        "amount_minor": source.amount_minor,
                        "paid_minor": paid,
                        "status": "paid" if paid >= source.amount_minor else "open",
                    }
                )
        if installments:
            db.session.execute(Installment.__table__.insert(), installments)
    if batch.rehash:
        table = Debt.__table__
        db.session.execute(
            table.update().where(table.c.id == bindparam("debt_id")).values(content_hash=bindparam("digest")),
            [{"debt_id": debt_id, "digest": digest} for debt_id, digest in batch.rehash],
        )
    settle(state)
    run.heartbeat_at = utcnow()
    db.session.flush()
    results.sort(key=lambda result: result.index)
    return results


def _update_debt(
    debt: Debt, record: DebtRecord, agency: Agency, debtor_id: int, now: datetime
) -> tuple[str, str | None]:
    """Merge a changed ERP record into an existing debt; returns (outcome, reason).

    The outcome names the SyncRun counter it counts towards: "updated", "closed" or "flagged".
    """
    for name, value in _debt_values(record, agency, debtor_id).items():
        if getattr(debt, name) != value:
            setattr(debt, name, value)
    held = debt.pending_payment_id is not None or _installment_pending(debt)
    merged = merged_status(
        debt.status, debt.closed_reason, debt.closed_at, debt.review_reason, debt.paid_minor, held, record, now
    )
    debt.paid_minor = merged.paid_minor
    if (debt.status, debt.closed_reason, debt.closed_at) != (merged.status, merged.closed_reason, merged.closed_at):
        debt.status, debt.closed_reason, debt.closed_at = merged.status, merged.closed_reason, merged.closed_at
    if debt.review_reason != merged.review_reason:
        debt.review_reason = merged.review_reason
    _merge_installments(debt, record)
    return merged.outcome, merged.reason


def _installment_pending(debt: Debt) -> bool:
    return any(installment.pending_payment_id is not None for installment in debt.installments)


def _merge_installments(debt: Debt, record: DebtRecord) -> None:
    existing = {installment.number: installment for installment in debt.installments}
    for source in record.installments:
        installment = existing.get(source.number)
        if installment is None:
            installment = Installment(number=source.number, paid_minor=0, status="open")
            debt.installments.append(installment)
        installment.due_date = source.due_date
        installment.amount_minor = source.amount_minor
        installment.paid_minor = merged_installment_paid(installment.paid_minor or 0, source)
        if installment.paid_minor >= installment.amount_minor:
            installment.status = "paid"


def close_vanished(agency: Agency, state: RunState, now: datetime, *, set_based: bool) -> None:
    """After a complete full export: open debts the ERP no longer lists are closed (or flagged).

    An export that named no debt at all (an empty drop folder, a file with a broken header) is
    far likelier a fault than a municipality whose every debt vanished: then nothing is closed.
    ``set_based``: by two statements on PostgreSQL, else 5000 debts at a time through the ORM.
    The caller commits.
    """
    if not any(state.seen) and state.run.created + state.run.updated + state.run.unchanged == 0:
        state.run.error = "The ERP export held no valid debt, so no debt was closed as vanished."
        return
    if set_based:
        closed, flagged = postgres.close_vanished(
            postgres.cursor(),
            agency.id,
            bytes(state.seen),
            postgres.naive_utc(now),
            FLAG_PAID_WHILE_PAYING.format(reason="no longer in the ERP"),
        )
        state.run.closed += closed
        state.run.flagged += flagged
        return
    last_id = 0
    while True:
        rows = db.session.execute(
            select(Debt.id, Debt.pending_payment_id)
            .where(Debt.agency_id == agency.id, Debt.status == "open", Debt.id > last_id)
            .order_by(Debt.id)
            .limit(5000)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        vanished = [row.id for row in rows if not state.was_seen(row.id)]
        if not vanished:
            continue
        held = {
            debt_id
            for (debt_id,) in db.session.execute(
                select(Installment.debt_id).where(
                    Installment.debt_id.in_(vanished), Installment.pending_payment_id.is_not(None)
                )
            )
        } | {row.id for row in rows if row.pending_payment_id is not None}
        to_close = [debt_id for debt_id in vanished if debt_id not in held]
        to_flag = [debt_id for debt_id in vanished if debt_id in held]
        if to_close:
            db.session.execute(
                update(Debt)
                .where(Debt.id.in_(to_close))
                .values(status="cancelled", closed_reason="vanished", closed_at=now)
                .execution_options(synchronize_session=False)
            )
        if to_flag:
            db.session.execute(
                update(Debt)
                .where(Debt.id.in_(to_flag))
                .values(review_reason=FLAG_PAID_WHILE_PAYING.format(reason="no longer in the ERP"))
                .execution_options(synchronize_session=False)
            )
        state.run.closed += len(to_close)
        state.run.flagged += len(to_flag)


def apply_push(
    agency: Agency,
    upserts: list[DebtRecord | RecordError],
    closes: list[tuple[str, str]],
    now: datetime,
) -> PushResult:
    """Apply a batch an ERP pushed: upserts then closes, one run, one result per item (the request commits)."""
    run = start_run(agency, "push", now)
    state = RunState(run=run)
    results = apply_batch(agency, state, list(enumerate(upserts)), now)
    offset = len(upserts)
    for position, (external_id, reason) in enumerate(closes):
        results.append(_close_pushed(agency, run, offset + position, external_id, reason, now))
    finish_run(run, "succeeded")
    return PushResult(run=run, results=results)


def _close_pushed(
    agency: Agency, run: SyncRun, index: int, external_id: str, reason: str, now: datetime
) -> RecordResult:
    if reason not in CLOSE_REASONS:
        raise ValueError(f"A debt can be closed as {' or '.join(CLOSE_REASONS)}, not {reason!r}.")
    debt = db.session.scalar(select(Debt).where(Debt.agency_id == agency.id, Debt.external_id == external_id))
    if debt is None:
        return RecordResult(index, external_id, "not_found", f"No debt {external_id} is known for this agency.")
    if debt.status != "open":
        run.unchanged += 1
        return RecordResult(index, external_id, "unchanged")
    if debt.pending_payment_id is not None or _installment_pending(debt):
        debt.review_reason = FLAG_PAID_WHILE_PAYING.format(reason=reason)
        run.flagged += 1
        return RecordResult(index, external_id, "flagged", debt.review_reason)
    debt.status = "paid" if reason == "paid_at_agency" else "cancelled"
    debt.closed_reason, debt.closed_at = reason, now
    run.closed += 1
    return RecordResult(index, external_id, "closed")
