"""The sync engine: copy each agency's ERP records into the portal, batch by batch.

Full and incremental runs, pushed batches and on-demand refreshes all go through ``_apply_batch``:
records are compared by a content hash (an unchanged record costs one indexed read), bad ones are
quarantined with their reason and raw payload, and each batch commits on its own, so a run that
dies midway leaves every debt consistent and the next run simply finishes the job. Debts that
vanish from a full export, or that the ERP reports paid or cancelled, are closed with a reason and
a date, never deleted; a debt that an online payment holds right now is flagged for treasury
instead of being closed from under the payment.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.references import InvalidReference, normalise_rf, rf_for_debt
from app.extensions import db
from app.sync.models import DebtorRefresh, QuarantinedRecord, SyncRun
from erp_connectors.base import DebtRecord, ERPConnector, RecordError, record_to_dict, validate_record

log = logging.getLogger("civicpay.sync")

#: Records applied per transaction: small enough to keep memory flat, large enough to be quick.
BATCH_SIZE = 500
#: A running sync whose heartbeat is older than this is taken to have died.
STALE_RUN_AFTER = timedelta(minutes=10)
#: Incremental syncs ask for a little more than strictly needed, against clock skew.
INCREMENTAL_OVERLAP = timedelta(minutes=2)

CLOSE_REASONS = ("paid_at_agency", "cancelled")
FLAG_PAID_WHILE_PAYING = (
    "The ERP reports this debt closed ({reason}) while an online payment was in progress: "
    "check that it was not paid twice."
)


class SyncBusy(RuntimeError):
    """Another sync of the same agency is running."""


@dataclass(frozen=True)
class RecordResult:
    """What happened to one record of a batch."""

    index: int
    external_id: str | None
    #: "created" | "updated" | "unchanged" | "closed" | "quarantined" | "not_found" | "flagged"
    outcome: str
    reason: str | None = None


@dataclass
class PushResult:
    """A pushed batch: its run and one result per upsert and close, in request order."""

    run: SyncRun
    results: list[RecordResult]


@dataclass
class _RunState:
    """What a run keeps in memory: a bitmap of the debt ids it has seen, not the debts."""

    run: SyncRun
    seen: bytearray = field(default_factory=bytearray)
    batch_external_ids: set[str] = field(default_factory=set)

    def mark(self, debt_id: int) -> bool:
        """Mark a debt as seen in this run; False if it was already seen (a duplicate)."""
        if debt_id >= len(self.seen):
            self.seen.extend(bytes(max(debt_id + 1 - len(self.seen), 4096)))
        if self.seen[debt_id]:
            return False
        self.seen[debt_id] = 1
        return True

    def was_seen(self, debt_id: int) -> bool:
        return debt_id < len(self.seen) and bool(self.seen[debt_id])


# -- connectors ---------------------------------------------------------------------------------


#: Connector type of agencies whose ERP pushes to /api/v1/debts: there is nothing to pull.
PUSH_ONLY = "push"


def pulls_from_erp(agency: Agency) -> bool:
    """Whether the portal reads this agency's ERP (False for push-only agencies)."""
    return (agency.connector or {}).get("type") != PUSH_ONLY


def build_connector(agency: Agency) -> ERPConnector:
    """The agency's configured ERP connector (demo, REST or file)."""
    if not pulls_from_erp(agency):
        raise ValueError(f"Agency {agency.code} pushes its debts to the portal; there is no ERP to read.")
    from erp_connectors.registry import build_connector as build

    return build(agency.code, agency.connector or {})


# -- hashing and record → row -------------------------------------------------------------------


def content_hash(record: DebtRecord) -> str:
    """SHA-256 of everything the ERP says about a debt except when it said it."""
    data = record_to_dict(record)
    data.pop("updated_at", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _raw_text(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(raw)


def _record_problems(record: DebtRecord, agency: Agency) -> list[str]:
    problems = list(validate_record(record))
    if record.currency != agency.currency:
        problems.append(f"The currency {record.currency} is not the agency's currency {agency.currency}.")
    try:
        _reference_of(record, agency)
    except InvalidReference as error:
        problems.append(str(error))
    return problems


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
        "rf_reference": _reference_of(record, agency),
        "vehicle_plate": record.vehicle_plate,
        "contact_email": record.contact_email,
        "contact_phone": record.contact_phone,
    }


# -- runs -----------------------------------------------------------------------------------------


def start_run(agency: Agency, kind: str, now: datetime, changed_since: datetime | None = None) -> SyncRun:
    """Record a running sync; refuse if another full/incremental sync of the agency runs."""
    if kind in ("full", "incremental"):
        stale = now - STALE_RUN_AFTER
        db.session.execute(
            update(SyncRun)
            .where(
                SyncRun.agency_id == agency.id,
                SyncRun.status == "running",
                SyncRun.heartbeat_at < stale,
            )
            .values(status="abandoned", finished_at=now, error="The sync stopped without finishing.")
        )
    run = SyncRun(
        agency_id=agency.id, kind=kind, status="running", started_at=now, heartbeat_at=now, changed_since=changed_since
    )
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise SyncBusy(f"A sync of {agency.code} is already running; try again when it has finished.") from None
    return run


def _finish(run: SyncRun, status: str, error: str | None = None) -> None:
    run.status = status
    run.finished_at = utcnow()
    run.heartbeat_at = run.finished_at
    run.error = error
    db.session.commit()


def sync_agency(
    agency: Agency,
    connector: ERPConnector | None = None,
    *,
    full: bool = True,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> SyncRun:
    """Run a full (or incremental) sync of one agency and return its finished SyncRun.

    A failure of the ERP midway marks the run failed; what was applied stays applied and
    consistent, and nothing is closed as vanished, so the next run finishes the job.
    """
    now = now or utcnow()
    connector = connector or build_connector(agency)  # push-only agencies: a ValueError saying so
    incremental = (
        not full and agency.synced_until is not None and getattr(connector, "supports_changed_since", False)
    )
    changed_since = agency.synced_until - INCREMENTAL_OVERLAP if incremental and agency.synced_until else None
    run = start_run(agency, "incremental" if incremental else "full", now, changed_since)
    state = _RunState(run=run)
    try:
        connector.check()
        stream = connector.iter_debts(changed_since) if incremental else connector.iter_debts()
        for number, batch in enumerate(_batches(stream, BATCH_SIZE), start=1):
            _apply_batch(agency, state, list(enumerate(batch)), now)
            if progress:
                progress(len(batch))
            if number & (number - 1) == 0:
                _refresh_statistics()
        if not incremental:
            _close_vanished(agency, state, now)
            agency.last_full_sync_at = now
        agency.synced_until = now
        _finish(run, "succeeded")
    except Exception as error:
        db.session.rollback()
        message = str(error) if isinstance(error, ConnectionError) else f"{type(error).__name__}: {error}"
        _finish(run, "failed", message)
        log.warning("agency %s: sync %d failed: %s", agency.code, run.id, message)
        raise
    log.info(
        "agency %s synced (%s): %d created, %d updated, %d unchanged, %d closed, %d quarantined, %d flagged",
        agency.code, run.kind, run.created, run.updated, run.unchanged, run.closed, run.quarantined, run.flagged,
    )  # fmt: skip
    return run


def _refresh_statistics() -> None:
    """Let PostgreSQL's planner see how big the tables have grown (after batch 1, 2, 4, 8, ...).

    A first sync fills empty tables within one run, before autovacuum's ANALYZE comes round;
    with statistics that still say "empty" the planner stops using the composite indexes and
    the sync turns quadratic (measured: 208 rows/s at 100k debts instead of thousands).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ANALYZE debtors, debts, installments"))
        db.session.commit()


def _batches(stream: Iterable[DebtRecord | RecordError], size: int) -> Iterator[list[DebtRecord | RecordError]]:
    batch: list[DebtRecord | RecordError] = []
    for item in stream:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- applying a batch -------------------------------------------------------------------------------


def _quarantine(agency: Agency, state: _RunState, external_id: str | None, reason: str, raw: object) -> None:
    db.session.add(
        QuarantinedRecord(
            agency_id=agency.id,
            sync_run_id=state.run.id,
            external_id=external_id,
            reason=reason,
            raw=_raw_text(raw),
        )
    )
    state.run.quarantined += 1


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
        for debtor in db.session.scalars(
            select(Debtor).where(Debtor.country == country, Debtor.tax_id.in_(tax_ids))
        ):
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


def _apply_batch(
    agency: Agency, state: _RunState, items: list[tuple[int, DebtRecord | RecordError]], now: datetime
) -> list[RecordResult]:
    """Apply one batch in one transaction; returns one result per item.

    The common case, a record the ERP sends again unchanged, costs its hash and a share of one
    indexed query: it was validated when first applied, so it is not validated again.
    """
    run = state.run
    results: list[RecordResult] = []
    records: list[tuple[int, DebtRecord, str]] = []
    for index, item in items:
        if isinstance(item, RecordError):
            raw = item.raw
            external_id = raw.get("external_id") if isinstance(raw, Mapping) else None
            external_id = external_id if isinstance(external_id, str) else None
            _quarantine(agency, state, external_id, item.reason, raw)
            results.append(RecordResult(index, external_id, "quarantined", item.reason))
        else:
            records.append((index, item, content_hash(item)))

    # A debt closed as vanished that the ERP lists again must reopen even if its content is the same.
    known = {
        external_id: (debt_id, digest if closed_reason != "vanished" else None)
        for debt_id, external_id, digest, closed_reason in db.session.execute(
            select(Debt.id, Debt.external_id, Debt.content_hash, Debt.closed_reason).where(
                Debt.agency_id == agency.id, Debt.external_id.in_({record.external_id for _, record, _ in records})
            )
        )
    } if records else {}
    good: list[tuple[int, DebtRecord, str]] = []
    in_batch: set[str] = set()
    for index, record, digest in records:
        found = known.get(record.external_id)
        twice = record.external_id in in_batch or (found is not None and state.was_seen(found[0]))
        if twice:
            reason = f"The external id {record.external_id} appears twice in one sync."
            _quarantine(agency, state, record.external_id, reason, record_to_dict(record))
            results.append(RecordResult(index, record.external_id, "quarantined", reason))
            continue
        in_batch.add(record.external_id)
        if found is not None and found[1] == digest:
            state.mark(found[0])
            run.unchanged += 1
            results.append(RecordResult(index, record.external_id, "unchanged"))
            continue
        problems = _record_problems(record, agency)
        if problems:
            reason = " ".join(problems)
            _quarantine(agency, state, record.external_id, reason, record_to_dict(record))
            results.append(RecordResult(index, record.external_id, "quarantined", reason))
            continue
        good.append((index, record, digest))

    good = _refuse_reused_references(agency, state, good, results)
    to_update = [known[record.external_id][0] for _, record, _ in good if record.external_id in known]
    existing = {
        debt.external_id: debt
        for debt in db.session.scalars(
            select(Debt).where(Debt.id.in_(to_update)).options(selectinload(Debt.installments))
        )
    } if to_update else {}
    debtor_ids = _debtor_ids([record for _, record, _ in good])
    new_rows: list[tuple[int, DebtRecord, dict[str, Any]]] = []
    for index, record, digest in good:
        debt = existing.get(record.external_id)
        if debt is None:
            values = _debt_values(record, agency, debtor_ids[(record.tax_country, record.tax_id)])
            status, reason = _erp_status(record)
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
                paid = min(source.paid_minor, source.amount_minor)
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
    run.heartbeat_at = utcnow()
    db.session.commit()
    results.sort(key=lambda result: result.index)
    return results


@functools.lru_cache(maxsize=65_536)
def _cached_reference(agency_code: str, rf_reference: str | None, external_id: str) -> str:
    # Validating an RF is the costliest step per record; a batch asks for each one three times.
    return normalise_rf(rf_reference) if rf_reference else rf_for_debt(agency_code, external_id)


def _reference_of(record: DebtRecord, agency: Agency) -> str:
    return _cached_reference(agency.code, record.rf_reference, record.external_id)


def _refuse_reused_references(
    agency: Agency, state: _RunState, good: list[tuple[int, DebtRecord, str]], results: list[RecordResult]
) -> list[tuple[int, DebtRecord, str]]:
    """Quarantine records whose RF reference another debt of the agency already carries.

    A payment code must name exactly one debt; the database enforces it, and without this check
    one reused code would fail the whole batch instead of one record.
    """
    references = {record.external_id: _reference_of(record, agency) for _, record, _ in good}
    wanted = {reference: external_id for external_id, reference in references.items()}
    owners = dict(
        db.session.execute(
            select(Debt.rf_reference, Debt.external_id).where(
                Debt.agency_id == agency.id, Debt.rf_reference.in_(list(wanted))
            )
        ).all()
    ) if wanted else {}
    kept: list[tuple[int, DebtRecord, str]] = []
    claimed: dict[str, str] = {}
    for index, record, digest in good:
        reference = references[record.external_id]
        owner = owners.get(reference, claimed.get(reference))
        if owner is not None and owner != record.external_id:
            reason = f"The RF reference {reference} already belongs to debt {owner}; a payment code must name one debt."
            _quarantine(agency, state, record.external_id, reason, record_to_dict(record))
            results.append(RecordResult(index, record.external_id, "quarantined", reason))
            continue
        claimed[reference] = record.external_id
        kept.append((index, record, digest))
    return kept


def _erp_status(record: DebtRecord) -> tuple[str, str | None]:
    """The status and close reason a new debt takes from its ERP record."""
    if record.status == "cancelled":
        return "cancelled", "cancelled"
    if record.status == "paid" or (record.principal_minor > 0 and record.paid_minor >= record.principal_minor):
        return "paid", "paid_at_agency"
    return "open", None


def _update_debt(debt: Debt, record: DebtRecord, agency: Agency, debtor_id: int, now: datetime) -> tuple[str, str | None]:
    """Merge a changed ERP record into an existing debt; returns (outcome, reason).

    The outcome names the SyncRun counter it counts towards: "updated", "closed" or "flagged".
    """
    outcome = "updated"
    reason: str | None = None
    for name, value in _debt_values(record, agency, debtor_id).items():
        if getattr(debt, name) != value:
            setattr(debt, name, value)
    # Paid amounts only grow: an ERP that has not yet heard of an online payment must not undo it.
    debt.paid_minor = min(max(debt.paid_minor, record.paid_minor), debt.principal_minor)
    erp_status, close_reason = _erp_status(record)
    if erp_status != "open" and debt.status == "open":
        if debt.pending_payment_id is not None or _installment_pending(debt):
            reason = FLAG_PAID_WHILE_PAYING.format(reason=close_reason)
            debt.review_reason = reason
            outcome = "flagged"
        else:
            debt.status, debt.closed_reason, debt.closed_at = erp_status, close_reason, now
            outcome = "closed"
    elif erp_status == "open" and debt.status != "open" and debt.closed_reason is not None:
        if debt.paid_minor < debt.principal_minor:
            # The ERP reopened a debt it had closed (a counter payment reversed, a cancellation undone).
            debt.status, debt.closed_reason, debt.closed_at = "open", None, None
    elif erp_status == "open" and debt.paid_minor >= debt.principal_minor and debt.status == "open":
        debt.status = "paid"
    _merge_installments(debt, record)
    return outcome, reason


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
        installment.paid_minor = min(max(installment.paid_minor or 0, source.paid_minor), source.amount_minor)
        if installment.paid_minor >= installment.amount_minor:
            installment.status = "paid"


def _close_vanished(agency: Agency, state: _RunState, now: datetime) -> None:
    """After a complete full export: open debts the ERP no longer lists are closed (or flagged).

    An export that named no debt at all (an empty drop folder, a file with a broken header) is
    far likelier a fault than a municipality whose every debt vanished: then nothing is closed.
    """
    if not any(state.seen):
        if state.run.created + state.run.updated + state.run.unchanged == 0:
            state.run.error = "The ERP export held no valid debt, so no debt was closed as vanished."
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
        db.session.commit()


# -- pushed batches -----------------------------------------------------------------------------------


def apply_push(
    agency: Agency,
    upserts: list[DebtRecord | RecordError],
    closes: list[tuple[str, str]],
    now: datetime,
) -> PushResult:
    """Apply a batch an ERP pushed: upserts then closes, one run, one result per item."""
    run = start_run(agency, "push", now)
    state = _RunState(run=run)
    results = _apply_batch(agency, state, list(enumerate(upserts)), now)
    offset = len(upserts)
    for position, (external_id, reason) in enumerate(closes):
        results.append(_close_pushed(agency, run, offset + position, external_id, reason, now))
    _finish(run, "succeeded")
    return PushResult(run=run, results=results)


def _close_pushed(agency: Agency, run: SyncRun, index: int, external_id: str, reason: str, now: datetime) -> RecordResult:
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
        db.session.commit()
        return RecordResult(index, external_id, "flagged", debt.review_reason)
    debt.status = "paid" if reason == "paid_at_agency" else "cancelled"
    debt.closed_reason, debt.closed_at = reason, now
    run.closed += 1
    db.session.commit()
    return RecordResult(index, external_id, "closed")


# -- on-demand refresh ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """How fresh one agency's copy of a debtor's debts is."""

    agency_id: int
    #: When the data shown was last read from the ERP (None: never individually refreshed).
    as_of: datetime | None
    refreshed: bool
    #: External ids whose content changed in this refresh.
    changed: frozenset[str] = frozenset()
    error: str | None = None


def refresh_debtor(
    agency: Agency,
    country: str,
    tax_id: str,
    now: datetime,
    *,
    timeout: float = 3.0,
    force: bool = False,
    connector: ERPConnector | None = None,
) -> RefreshOutcome:
    """Re-read one debtor's debts from the ERP if our copy is older than the agency allows.

    The ERP gets ``timeout`` seconds; on timeout or error the cached data stays and the outcome
    says how old it is.
    """
    marker = db.session.scalar(
        select(DebtorRefresh).where(
            DebtorRefresh.agency_id == agency.id, DebtorRefresh.country == country, DebtorRefresh.tax_id == tax_id
        )
    )
    as_of = marker.refreshed_at if marker else agency.last_full_sync_at
    if not force and as_of is not None and now - as_of < timedelta(seconds=agency.refresh_max_age_seconds):
        return RefreshOutcome(agency.id, as_of, refreshed=False)
    if connector is None and not pulls_from_erp(agency):
        return RefreshOutcome(agency.id, as_of, refreshed=False)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        connector = connector or build_connector(agency)
        records = pool.submit(connector.fetch_debtor, country, tax_id).result(timeout=timeout)
    except Exception as error:  # a refresh must never break the page: show the cached data
        reason = "the ERP did not answer in time" if isinstance(error, concurrent.futures.TimeoutError) else str(error)
        log.info("agency %s: refresh of a debtor failed: %s", agency.code, reason)
        return RefreshOutcome(agency.id, as_of, refreshed=False, error=reason)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    run = start_run(agency, "refresh", now)
    state = _RunState(run=run)
    results = _apply_batch(agency, state, list(enumerate(records)), now)
    changed = frozenset(
        result.external_id
        for result in results
        if result.external_id and result.outcome in ("created", "updated", "closed", "flagged")
    )
    if marker is None:
        marker = DebtorRefresh(agency_id=agency.id, country=country, tax_id=tax_id)
        db.session.add(marker)
    marker.refreshed_at = now
    _finish(run, "succeeded")
    return RefreshOutcome(agency.id, now, refreshed=True, changed=changed)


def refresh_user_debts(user_id: int, now: datetime, timeout: float = 2.0) -> dict[int, RefreshOutcome]:
    """Refresh, where stale, each proven tax ID of the user at each agency that holds its debts."""
    from app.accounts.models import TaxIdLink

    # DISTINCT over ids only: PostgreSQL cannot compare the agency's JSON columns.
    pairs = db.session.execute(
        select(Debt.agency_id, Debtor.country, Debtor.tax_id)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .join(TaxIdLink, (TaxIdLink.country == Debtor.country) & (TaxIdLink.tax_id == Debtor.tax_id))
        .where(TaxIdLink.user_id == user_id, TaxIdLink.verified_at.is_not(None))
        .distinct()
    ).all()
    outcomes: dict[int, RefreshOutcome] = {}
    for agency_id, country, tax_id in pairs:
        agency = db.session.get(Agency, agency_id)
        outcome = refresh_debtor(agency, country, tax_id, now, timeout=timeout)
        previous = outcomes.get(agency.id)
        if previous is None or outcome.error or outcome.changed:
            outcomes[agency.id] = outcome if previous is None else RefreshOutcome(
                agency.id,
                min(filter(None, (previous.as_of, outcome.as_of)), default=None),
                previous.refreshed or outcome.refreshed,
                previous.changed | outcome.changed,
                outcome.error or previous.error,
            )
    return outcomes


# -- scheduling and quarantine ---------------------------------------------------------------------------


def run_due_syncs(now: datetime) -> list[SyncRun]:
    """Run the scheduled syncs whose interval has elapsed (incremental when the ERP allows)."""
    runs: list[SyncRun] = []
    agencies = db.session.scalars(select(Agency).where(Agency.sync_interval_minutes.is_not(None)).order_by(Agency.id))
    for agency in [agency for agency in agencies if pulls_from_erp(agency)]:
        last = agency.synced_until
        if last is not None and now - last < timedelta(minutes=agency.sync_interval_minutes or 0):
            continue
        try:
            runs.append(sync_agency(agency, full=False, now=now))
        except SyncBusy:
            continue
        except Exception as error:  # one agency's ERP being down must not stop the others
            log.warning("scheduled sync of %s failed: %s", agency.code, error)
    return runs


def quarantined(agency_id: int | None = None, status: str = "open", limit: int = 100) -> list[QuarantinedRecord]:
    """Quarantined records, newest first."""
    statement = select(QuarantinedRecord).where(QuarantinedRecord.status == status)
    if agency_id is not None:
        statement = statement.where(QuarantinedRecord.agency_id == agency_id)
    return list(db.session.scalars(statement.order_by(QuarantinedRecord.id.desc()).limit(limit)))


def resolve_quarantined(record_ids: Iterable[int], status: str, now: datetime) -> int:
    """Mark quarantined records retried or dismissed; returns how many changed."""
    if status not in ("retried", "dismissed"):
        raise ValueError("A quarantined record can only be retried or dismissed.")
    result = db.session.execute(
        update(QuarantinedRecord)
        .where(QuarantinedRecord.id.in_(list(record_ids)), QuarantinedRecord.status == "open")
        .values(status=status, resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount


def retry_quarantined(agency: Agency, now: datetime, connector: ERPConnector | None = None) -> SyncRun:
    """Retry an agency's quarantined records: mark them retried and pull a full sync again.

    Records the ERP has fixed come in; records still bad are quarantined anew with today's reason.
    """
    ids = [record.id for record in quarantined(agency.id, limit=1_000_000)]
    resolve_quarantined(ids, "retried", now)
    return sync_agency(agency, connector, full=True, now=now)


def configure_agency_connector(
    agency: Agency, config: Mapping[str, Any] | None, interval_minutes: int | None, *, check: bool = True
) -> Agency:
    """Set the agency's connector and/or sync interval; the connector is built (and checked) first."""
    if config is not None:
        if not isinstance(config, Mapping) or not isinstance(config.get("options", {}), Mapping):
            raise ValueError('The connector configuration must look like {"type": "rest", "options": {...}}.')
        if config.get("type") != PUSH_ONLY:
            from erp_connectors.registry import build_connector as build

            connector = build(agency.code, config)
            if check:
                connector.check()
        agency.connector = dict(config)
    if interval_minutes is not None:
        if interval_minutes < 0:
            raise ValueError("The sync interval cannot be negative.")
        agency.sync_interval_minutes = interval_minutes or None
    db.session.commit()
    return agency


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


def latest_runs(limit: int = 20) -> list[SyncRun]:
    """The most recent sync runs of every agency."""
    return list(db.session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))


__all__ = [
    "PushResult",
    "RecordResult",
    "RefreshOutcome",
    "SyncBusy",
    "agencies_to_sync",
    "apply_push",
    "build_connector",
    "content_hash",
    "refresh_debtor",
    "run_due_syncs",
    "sync_agency",
]
