"""Set-based writes of a sync's batches on PostgreSQL, pipelined: batch N is written while N+1 is sorted.

``sorting`` sorts each batch (hashes, look-ups, validation, quarantine) and hands the records to
write to a ``BatchWriter`` as a ``BatchWrite`` of plain values. ``write_batch`` writes one batch
in one transaction: new debts by COPY, changed ones by one UPDATE, the merge rules of ``rules``.

Where the session owns its connection (a real run), the writer writes on a connection of its own
in a thread, so PostgreSQL inserts one batch (indexes, foreign keys) while Python sorts the next:
the two overlap on two cores instead of taking turns. One batch is in flight at most. While it is,
the records it writes may or may not be visible to the sorting of the next batch, so the sorting
also consults ``in_flight``: the external ids and RF references of the batch being written.
Every batch before it has committed when the next one is sorted.

Where the session is bound to a test's outer transaction, a second connection could not see the
test's rows, so the writer writes inline, on the session's connection, inside its transaction.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from app.extensions import db
from app.sync import postgres
from app.sync.rules import erp_status, merged_installment_paid, merged_status
from app.unit_of_work import commit_early
from erp_connectors.base import DebtRecord

log = logging.getLogger("civicpay.sync")


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """What one batch writes, as plain values (no ORM objects), so another thread may write it."""

    #: (record, content hash, RF reference, id of the debt it updates or None), in stream order
    good: list[tuple[DebtRecord, str, str, int | None]]
    #: (debt id, digest) of unchanged debts whose stored hash has the legacy form
    rehash: list[tuple[int, str]]


@dataclass(slots=True)
class Written:
    """What a written batch did, for the run's counters and its bitmap of seen debts."""

    #: how many debts count towards each SyncRun counter: "created", "updated", "closed", "flagged"
    outcomes: Counter[str] = field(default_factory=Counter)
    #: ids of the debts the batch created or updated
    debt_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InFlight:
    """The batch being written while the next one is sorted: whose external ids and references it holds."""

    external_ids: frozenset[str] = frozenset()
    #: external id → the RF reference the batch gives it
    references: dict[str, str] = field(default_factory=dict)
    #: (country, tax id) → (id, name) of each debtor the batch names, as it leaves them
    debtors: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch made ready on the sorting thread: ids drawn, rows written as COPY text.

    The writer then only sends it (and merges the few changed debts, which needs their rows
    locked in its own transaction), so it hardly needs Python's interpreter lock while the next
    batch is sorted: both threads share one lock, and a writer that formats rows gets a share
    of it, which leaves PostgreSQL waiting for the rows.
    """

    write: BatchWrite
    debtor_ids: dict[tuple[str, str], int]
    new_debtors: str
    renamed_debtors: list[tuple[int, str]]
    new_debt_ids: list[int]
    debts: str
    installments: str
    #: the changed records, as in BatchWrite.good
    changed: list[tuple[DebtRecord, str, str, int | None]]


#: A batch is redone by the next run if a crash loses it, so its commit need not wait for the
#: disk; the run's final, synchronous commit flushes every batch before it anyway (WAL is one
#: sequence, whichever connection wrote it).
ASYNCHRONOUS_COMMIT = "SET {scope} synchronous_commit = off"
#: Statistics are refreshed after the first batch and again each time the run's new debts grow
#: this many times: the planner scales what it learnt by the tables' current size, so a few
#: refreshes keep it on the indexes, and each costs the database a sample of every table.
ANALYSE_GROWTH = 8


def _debtor_names(write: BatchWrite) -> dict[tuple[str, str], str]:
    """Each debtor the batch names, by (country, tax id), with the name its last record gives."""
    return {(record.tax_country, record.tax_id): record.debtor_name for record, _, _, _ in write.good}


def _installment_rows(debt_id: int, record: DebtRecord) -> list[tuple[int, int, date, int, int, str]]:
    """A debt's installments as INSTALLMENT_COLUMNS rows, paid amounts as the ERP reports them."""
    rows = []
    for source in record.installments:
        paid = merged_installment_paid(0, source)
        rows.append((debt_id, source.number, source.due_date, source.amount_minor, paid,
                     "paid" if paid >= source.amount_minor else "open"))  # fmt: skip
    return rows


def write_batch(cursor: Any, agency_id: int, write: BatchWrite, synced_at: datetime) -> Written:
    """Write one sorted batch on ``cursor`` (inside a transaction the caller commits)."""
    written = Written()
    if write.good:
        debtor_ids = postgres.debtor_ids(cursor, _debtor_names(write))
        new = [item for item in write.good if item[3] is None]
        changed = [item for item in write.good if item[3] is not None]
        if new:
            _copy_new_debts(cursor, agency_id, new, debtor_ids, synced_at, written)
        if changed:
            _update_changed_debts(cursor, changed, debtor_ids, synced_at, written)
    if write.rehash:
        postgres.set_content_hashes(cursor, write.rehash)
    return written


def _copy_new_debts(
    cursor: Any,
    agency_id: int,
    new: list[tuple[DebtRecord, str, str, int | None]],
    debtor_ids: dict[tuple[str, str], int],
    synced_at: datetime,
    written: Written,
) -> None:
    """COPY the batch's new debts (with ids drawn beforehand) and their installments."""
    debt_rows: list[tuple[Any, ...]] = []
    installment_rows: list[tuple[Any, ...]] = []
    debt_ids = postgres.reserve_ids(cursor, "debts", len(new))
    for debt_id, (record, digest, reference, _) in zip(debt_ids, new, strict=True):
        status, reason = erp_status(record)
        debt_rows.append(
            (
                debt_id, agency_id, record.external_id, debtor_ids[(record.tax_country, record.tax_id)],
                record.category, record.kind, record.description, record.currency, record.principal_minor,
                min(record.paid_minor, record.principal_minor), record.due_date, reference,
                status, record.vehicle_plate, record.contact_email, record.contact_phone, synced_at, digest,
                reason, synced_at if reason else None,
            )
        )  # fmt: skip
        installment_rows.extend(_installment_rows(debt_id, record))
    postgres.copy_rows(cursor, "debts", postgres.DEBT_COLUMNS, debt_rows)
    if installment_rows:
        postgres.copy_rows(cursor, "installments", postgres.INSTALLMENT_COLUMNS, installment_rows)
    written.outcomes["created"] += len(new)
    written.debt_ids.extend(debt_ids)


def _update_changed_debts(
    cursor: Any,
    changed: list[tuple[DebtRecord, str, str, int | None]],
    debtor_ids: dict[tuple[str, str], int],
    synced_at: datetime,
    written: Written,
) -> None:
    """Merge the batch's changed records into their debts: lock them, apply the rules, one UPDATE."""
    current = postgres.lock_debts(cursor, [debt_id for _, _, _, debt_id in changed if debt_id is not None])
    debt_rows: list[tuple[Any, ...]] = []
    installment_rows: list[tuple[Any, ...]] = []
    for record, digest, reference, debt_id in changed:
        assert debt_id is not None
        merged = merged_status(*current[debt_id], record, synced_at)
        debt_rows.append(
            (
                debt_id, debtor_ids[(record.tax_country, record.tax_id)], record.category, record.kind,
                record.description, record.currency, record.principal_minor, merged.paid_minor, record.due_date,
                reference, merged.status, record.vehicle_plate, record.contact_email,
                record.contact_phone, synced_at, digest, merged.closed_reason, merged.closed_at,
                merged.review_reason,
            )
        )  # fmt: skip
        installment_rows.extend(_installment_rows(debt_id, record))
        written.debt_ids.append(debt_id)
        written.outcomes[merged.outcome] += 1
    postgres.update_debts(cursor, debt_rows)
    if installment_rows:
        postgres.merge_installments(cursor, installment_rows)


def prepare_batch(
    cursor: Any, agency_id: int, write: BatchWrite, synced_at: datetime, in_flight: InFlight
) -> PreparedBatch:
    """Resolve debtors, draw ids and write the new rows as COPY text (on ``cursor``, read-only but for sequences).

    Sequences are not transactional, so ids drawn here on the sorting thread's connection stay
    unique whichever connection writes the rows. Debtors of the batch in flight count as existing.
    """
    names = _debtor_names(write)
    known = postgres.known_debtors(cursor, names) if names else {}
    known.update({key: value for key, value in in_flight.debtors.items() if key in names})
    missing = [key for key in names if key not in known]
    text = postgres.copy_text
    new_debtors = []
    if missing:
        for debtor_id, key in zip(postgres.reserve_ids(cursor, "debtors", len(missing)), missing, strict=True):
            known[key] = (debtor_id, names[key])
            new_debtors.append(f"{debtor_id}\t{text(key[0])}\t{text(key[1])}\t{text(names[key])}\n")
    renamed = [(debtor_id, names[key]) for key, (debtor_id, name) in known.items() if name != names[key]]
    debtor_ids = {key: debtor_id for key, (debtor_id, _) in known.items()}

    new = [item for item in write.good if item[3] is None]
    debt_ids = postgres.reserve_ids(cursor, "debts", len(new)) if new else []
    null = postgres.COPY_NULL
    synced = synced_at.isoformat(sep=" ")
    debts: list[str] = []
    installments: list[str] = []
    for debt_id, (record, digest, reference, _) in zip(debt_ids, new, strict=True):
        status, reason = erp_status(record)
        paid = min(record.paid_minor, record.principal_minor)
        # category, kind, currency, status, reference and digest passed validation: no escapes to make.
        debts.append(
            f"{debt_id}\t{agency_id}\t{text(record.external_id)}\t{debtor_ids[(record.tax_country, record.tax_id)]}"
            f"\t{record.category}\t{record.kind}\t{text(record.description)}\t{record.currency}"
            f"\t{record.principal_minor}\t{paid}\t{record.due_date.isoformat()}\t{reference}\t{status}"
            f"\t{text(record.vehicle_plate)}\t{text(record.contact_email)}\t{text(record.contact_phone)}"
            f"\t{synced}\t{digest}\t{reason or null}\t{synced if reason else null}\n"
        )
        for _, number, due_date, amount, paid, status in _installment_rows(debt_id, record):
            installments.append(f"{debt_id}\t{number}\t{due_date.isoformat()}\t{amount}\t{paid}\t{status}\n")
    return PreparedBatch(
        write=write,
        debtor_ids=debtor_ids,
        new_debtors="".join(new_debtors),
        renamed_debtors=renamed,
        new_debt_ids=debt_ids,
        debts="".join(debts),
        installments="".join(installments),
        changed=[item for item in write.good if item[3] is not None],
    )


def write_prepared(cursor: Any, agency_id: int, job: PreparedBatch, synced_at: datetime) -> Written:
    """Write a prepared batch; if the database refuses its promises, write the batch the slow way.

    A debtor that another agency's sync created since the look-up (a unique violation), or one
    the batch before promised but wrote otherwise (a foreign-key violation), undoes the prepared
    writes only; ``write_batch`` then resolves everything again inside this transaction.
    """
    written = Written()
    try:
        with cursor.connection.transaction():
            if job.new_debtors:
                postgres.copy_payload(cursor, "debtors", postgres.DEBTOR_COLUMNS, job.new_debtors)
            if job.renamed_debtors:
                postgres.rename_debtors(cursor, job.renamed_debtors)
            if job.debts:
                postgres.copy_payload(cursor, "debts", postgres.DEBT_COLUMNS, job.debts)
                if job.installments:
                    postgres.copy_payload(cursor, "installments", postgres.INSTALLMENT_COLUMNS, job.installments)
                written.outcomes["created"] += len(job.new_debt_ids)
                written.debt_ids.extend(job.new_debt_ids)
            if job.changed:
                _update_changed_debts(cursor, job.changed, job.debtor_ids, synced_at, written)
            if job.write.rehash:
                postgres.set_content_hashes(cursor, job.write.rehash)
    except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation) as error:
        log.info("sync batch of agency %d written the slow way: %s", agency_id, str(error).splitlines()[0])
        return write_batch(cursor, agency_id, job.write, synced_at)
    return written


def _analyse(cursor: Any) -> None:
    """Let PostgreSQL's planner see how big the tables have grown.

    A first sync fills empty tables within one run, before autovacuum's ANALYZE comes round;
    with statistics that still say "empty" the planner stops using the composite indexes and
    the sync turns quadratic (measured: 208 rows/s at 100k debts instead of thousands).
    """
    cursor.execute("ANALYZE debtors, debts, installments")


class BatchWriter:
    """Writes a run's sorted batches, one transaction each: pipelined on a connection of its own, or inline.

    ``submit`` first waits for the batch before (handing what it did to ``take`` and raising its
    error, if it failed), then starts the new one. ``finish`` waits for the last. Statistics are
    refreshed as the run's new debts grow (``ANALYSE_GROWTH``).
    """

    def __init__(self, agency_id: int, synced_at: datetime, take: Callable[[Written], None]) -> None:
        self.agency_id = agency_id
        self.synced_at = synced_at
        self.take = take
        self.in_flight = InFlight()
        self._created = 0
        self._analyse_at = 1
        self._connection: Any = None  # a pooled DBAPI connection, when pipelined
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future[Written] | None = None
        bind = db.session.get_bind()
        if isinstance(bind, Engine):
            self._connection = bind.raw_connection()
            self._connection.driver_connection.execute(ASYNCHRONOUS_COMMIT.format(scope="SESSION"))
            self._connection.driver_connection.commit()
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-writer")

    @property
    def pipelined(self) -> bool:
        return self._executor is not None

    def submit(self, write: BatchWrite) -> None:
        """Write a batch: in the background when pipelined, else now, inside the session's transaction.

        Either way the batch is prepared here, on the caller's thread (see ``PreparedBatch``).
        """
        job = prepare_batch(postgres.cursor(), self.agency_id, write, self.synced_at, self.in_flight)
        self._collect()
        if self._executor is None:
            cursor = postgres.cursor()
            cursor.execute(ASYNCHRONOUS_COMMIT.format(scope="LOCAL"))
            self._taken(write_prepared(cursor, self.agency_id, job, self.synced_at))
            return
        names = _debtor_names(write)
        self.in_flight = InFlight(
            frozenset(record.external_id for record, _, _, _ in write.good),
            {record.external_id: reference for record, _, reference, _ in write.good},
            {key: (job.debtor_ids[key], name) for key, name in names.items()},
        )
        self._pending = self._executor.submit(self._write, job)

    def after_commit(self) -> None:
        """Inline: refresh statistics once the session has committed the batch (pipelined: done by the thread)."""
        if self._executor is None and self._due_for_analyse(self._created):
            _analyse(postgres.cursor())
            commit_early("ANALYZE's lock on the tables is released at once, not with the next batch")

    def finish(self) -> None:
        """Wait for the batch in flight; raises its error."""
        self._collect()

    def close(self) -> None:
        """Stop: wait for a batch in flight (its outcome is taken if it succeeded), return the connection."""
        try:
            if self._pending is not None:
                with contextlib.suppress(Exception):
                    self._collect()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            if self._connection is not None:
                with contextlib.suppress(Exception):  # a broken connection is discarded by the pool anyway
                    self._connection.driver_connection.rollback()
                    self._connection.driver_connection.execute("RESET synchronous_commit")
                    self._connection.driver_connection.commit()
                self._connection.close()  # back to the pool, which rolls back anything left open
                self._connection = None

    # -- internals --------------------------------------------------------------------------------

    def _collect(self) -> None:
        pending, self._pending = self._pending, None
        self.in_flight = InFlight()
        if pending is not None:
            self._taken(pending.result())

    def _taken(self, written: Written) -> None:
        self._created += written.outcomes["created"]
        self.take(written)

    def _due_for_analyse(self, created: int) -> bool:
        if created >= self._analyse_at:
            self._analyse_at = ANALYSE_GROWTH * created
            return True
        return False

    def _write(self, job: PreparedBatch) -> Written:
        """In the writer's thread: one batch, one transaction on the writer's own connection."""
        connection = self._connection.driver_connection
        try:
            with connection.cursor() as cursor:
                written = write_prepared(cursor, self.agency_id, job, self.synced_at)
            connection.commit()
            if self._due_for_analyse(self._created + written.outcomes["created"]):
                with connection.cursor() as cursor:
                    _analyse(cursor)
                connection.commit()
        except BaseException:
            connection.rollback()
            raise
        return written
