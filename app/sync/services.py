"""A first, full sync: upsert every record of an agency's ERP by (agency, external id)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.references import InvalidReference, normalise_rf, rf_for_debt
from app.extensions import db
from erp_connectors.base import DebtRecord, ERPConnector, RecordError, validate_record

log = logging.getLogger("civicpay.sync")


@dataclass
class SyncResult:
    """Counts of one agency's sync."""

    agency_code: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)


def build_connector(agency: Agency) -> ERPConnector:
    """The agency's configured ERP connector."""
    kind = (agency.connector or {}).get("type", "demo")
    options = (agency.connector or {}).get("options", {})
    if kind == "demo":
        from erp_connectors.demo import demo_connector_factory

        return demo_connector_factory(agency.code, options)
    raise LookupError(f"Agency {agency.code} names an unknown ERP connector type {kind!r}.")


def _debtor_for(record: DebtRecord, cache: dict[tuple[str, str], Debtor]) -> Debtor:
    key = (record.tax_country, record.tax_id)
    debtor = cache.get(key)
    if debtor is None:
        debtor = db.session.scalar(
            select(Debtor).where(Debtor.country == key[0], Debtor.tax_id == key[1])
        )
        if debtor is None:
            debtor = Debtor(country=key[0], tax_id=key[1], name=record.debtor_name)
            db.session.add(debtor)
        cache[key] = debtor
    if debtor.name != record.debtor_name:
        debtor.name = record.debtor_name
    return debtor


def _apply(debt: Debt, record: DebtRecord, debtor: Debtor, rf: str) -> bool:
    """Copy the ERP's fields onto the debt; True when anything changed.

    Paid amounts only grow here: an ERP that has not yet heard of an online payment must not
    reopen the debt (the write-back outbox tells it, in a later issue).
    """
    wanted = {
        "debtor": debtor,
        "category": record.category,
        "kind": record.kind,
        "description": record.description,
        "currency": record.currency,
        "principal_minor": record.principal_minor,
        "due_date": record.due_date,
        "rf_reference": rf,
        "vehicle_plate": record.vehicle_plate,
    }
    changed = False
    for name, value in wanted.items():
        if getattr(debt, name) != value:
            setattr(debt, name, value)
            changed = True
    paid = min(max(debt.paid_minor or 0, record.paid_minor), record.principal_minor)
    status = debt.status or "open"
    if record.status in ("paid", "cancelled") and debt.pending_payment_id is None:
        status = record.status
    if paid >= record.principal_minor and record.principal_minor > 0:
        status = "paid"
    if (debt.paid_minor, debt.status) != (paid, status):
        debt.paid_minor, debt.status = paid, status
        changed = True
    existing = {inst.number: inst for inst in debt.installments}
    for source in record.installments:
        inst = existing.get(source.number)
        if inst is None:
            inst = Installment(number=source.number, paid_minor=0, status="open")
            debt.installments.append(inst)
            changed = True
        inst_paid = min(max(inst.paid_minor or 0, source.paid_minor), source.amount_minor)
        inst_status = "paid" if inst_paid >= source.amount_minor else (inst.status or "open")
        values = {
            "due_date": source.due_date,
            "amount_minor": source.amount_minor,
            "paid_minor": inst_paid,
            "status": inst_status,
        }
        for name, value in values.items():
            if getattr(inst, name) != value:
                setattr(inst, name, value)
                changed = True
    return changed


def sync_agency(
    agency: Agency,
    connector: ERPConnector | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Upsert every record of the agency's ERP in one transaction; bad records are skipped."""
    connector = connector or build_connector(agency)
    connector.check()
    result = SyncResult(agency_code=agency.code)
    known = {
        debt.external_id: debt
        for debt in db.session.scalars(
            select(Debt).where(Debt.agency_id == agency.id).options(selectinload(Debt.installments))
        )
    }
    debtors: dict[tuple[str, str], Debtor] = {}
    seen: set[str] = set()
    now = utcnow()
    for record in connector.iter_debts():
        if progress:
            progress(1)
        problems = _problems(record, agency, seen)
        if problems:
            result.rejected += 1
            result.problems.append(problems)
            log.warning("agency %s: skipped a record: %s", agency.code, problems)
            continue
        assert isinstance(record, DebtRecord)
        seen.add(record.external_id)
        rf = normalise_rf(record.rf_reference) if record.rf_reference else rf_for_debt(
            agency.code, record.external_id
        )
        debtor = _debtor_for(record, debtors)
        debt = known.get(record.external_id)
        if debt is None:
            debt = Debt(agency=agency, external_id=record.external_id, paid_minor=0, status="open")
            _apply(debt, record, debtor, rf)
            debt.synced_at = now
            db.session.add(debt)
            known[record.external_id] = debt
            result.created += 1
        elif _apply(debt, record, debtor, rf):
            debt.synced_at = now
            result.updated += 1
        else:
            result.unchanged += 1
    db.session.commit()
    log.info(
        "agency %s synced: %d created, %d updated, %d unchanged, %d rejected",
        agency.code,
        result.created,
        result.updated,
        result.unchanged,
        result.rejected,
    )
    return result


def _problems(record: DebtRecord | RecordError, agency: Agency, seen: set[str]) -> str:
    """Why a record cannot be taken, as one sentence; empty when it is fine."""
    if isinstance(record, RecordError):
        return record.reason
    issues = list(validate_record(record))
    if record.currency != agency.currency:
        issues.append(f"currency {record.currency} is not the agency's {agency.currency}")
    if record.external_id in seen:
        issues.append(f"external id {record.external_id} appears twice in one sync")
    if record.rf_reference:
        try:
            normalise_rf(record.rf_reference)
        except InvalidReference as error:
            issues.append(str(error))
    return "; ".join(issues)


def agencies_to_sync(codes: Iterable[str] = ()) -> list[Agency]:
    """The agencies named (or all), in code order; unknown codes raise LookupError."""
    agencies = list(db.session.scalars(select(Agency).order_by(Agency.code)))
    wanted = list(codes)
    if not wanted:
        return agencies
    by_code = {agency.code: agency for agency in agencies}
    unknown = [code for code in wanted if code not in by_code]
    if unknown:
        raise LookupError(f"No agency with code {', '.join(unknown)}.")
    return [by_code[code] for code in wanted]
