"""The sync engine: copy each agency's ERP records into the portal, batch by batch.

Full and incremental runs, pushed batches and on-demand refreshes all sort their records with
``_sort_batch``: records are compared by a content hash (an unchanged record costs its hash and a
share of one indexed read), bad ones are quarantined with their reason and raw payload, and each
batch commits on its own, so a run that dies midway leaves every debt consistent and the next run
simply finishes the job. What the sorted records become is then written row by row through the
ORM (``_apply_batch``: SQLite, pushes, refreshes) or, for full and incremental runs on
PostgreSQL, set-based by ``set_based.BatchWriter`` (new debts by COPY, changed ones by one UPDATE
per batch, each batch written on a connection of its own while the next is sorted); both follow
the same rules, in ``rules.merged_status`` and the functions it calls. Debts that vanish from a
full export, or that the ERP reports paid or cancelled, are closed with a reason and a date,
never deleted; a debt that an online payment holds right now is flagged for treasury instead of
being closed from under the payment.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import hashlib
import json
import logging
import marshal
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.agencies.models import Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.references import InvalidReference, normalise_rf, rf_for_debt
from app.sync import postgres, set_based
from app.sync.rules import FLAG_PAID_WHILE_PAYING, erp_status, merged_installment_paid, merged_status
from app.extensions import db
from app.sync.models import DebtorRefresh, QuarantinedRecord, SyncRun
from erp_connectors.base import (
    DebtRecord,
    ERPConnector,
    RecordError,
    record_to_dict,
    validate_record,
)

log = logging.getLogger("civicpay.sync")

#: Records applied per transaction: small enough to keep memory flat (a few MB of records),
#: large enough that a batch's fixed cost (its queries, its commit) is shared by many records.
BATCH_SIZE = 5000
#: Full and incremental syncs on PostgreSQL write set-based; tests turn this off to compare the
#: two ways of writing on the same data.
SET_BASED_ON_POSTGRESQL = True
#: A running sync whose heartbeat is older than this is taken to have died.
STALE_RUN_AFTER = timedelta(minutes=10)
#: A pipelined run writes its heartbeat at most this often (its batches commit on their own).
HEARTBEAT_SECONDS = 5.0
#: Incremental syncs ask for a little more than strictly needed, against clock skew.
INCREMENTAL_OVERLAP = timedelta(minutes=2)

CLOSE_REASONS = ("paid_at_agency", "cancelled")


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
    #: counts not yet added to the run (created, updated, unchanged, ...): they reach it when the
    #: session next commits, so a rollback of the session cannot lose counts of committed batches
    pending: Counter[str] = field(default_factory=Counter)
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
    """BLAKE2b-128 (32 hex digits) of everything the ERP says about a debt except when it said it.

    For change detection, not security: a full sync hashes every record, so the values are
    serialised by ``marshal`` (C code; twice as quick as formatting them as text) in its format 2,
    which writes every value in full (no back-references to objects met before), so equal values
    always give equal bytes, whichever objects hold them. Dates go in as ordinals. A record whose
    values marshal cannot write (it will be quarantined) is hashed by its text form instead. Should
    a later Python serialise differently, each debt is merely seen as changed once and rewritten.
    """
    try:
        data = marshal.dumps(
            (
                record.external_id, record.tax_id, record.tax_country, record.debtor_name, record.category,
                record.kind, record.description, record.principal_minor, record.paid_minor, record.currency,
                record.due_date.toordinal(), record.rf_reference, record.status, record.contact_email,
                record.contact_phone, record.vehicle_plate,
                tuple([(item.number, item.due_date.toordinal(), item.amount_minor, item.paid_minor)
                       for item in record.installments]),
            ),
            2,
        )  # fmt: skip
    except (AttributeError, TypeError, ValueError):
        data = b"\x00" + _text_form(record).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _text_form(record: DebtRecord) -> str:
    """Every value the ERP gives, written with repr() (dates with str()) between separators.

    repr() escapes control characters, so the separators cannot occur inside a value and two
    different records cannot give the same text.
    """
    text = (
        f"{record.external_id!r}\x1f{record.tax_id!r}\x1f{record.tax_country!r}\x1f{record.debtor_name!r}"
        f"\x1f{record.category!r}\x1f{record.kind!r}\x1f{record.description!r}\x1f{record.principal_minor!r}"
        f"\x1f{record.paid_minor!r}\x1f{record.currency!r}\x1f{record.due_date!s}\x1f{record.rf_reference!r}"
        f"\x1f{record.status!r}\x1f{record.contact_email!r}\x1f{record.contact_phone!r}\x1f{record.vehicle_plate!r}"
    )
    if record.installments:
        text += "".join(
            [
                f"\x1e{item.number!r}\x1f{item.due_date!s}\x1f{item.amount_minor!r}\x1f{item.paid_minor!r}"
                for item in record.installments
            ]
        )
    return text


def sha1_content_hash(record: DebtRecord) -> str:
    """The SHA-1 of the record's text form (40 hex digits) that syncs stored before BLAKE2b."""
    return hashlib.sha1(_text_form(record).encode()).hexdigest()


def legacy_content_hash(record: DebtRecord) -> str | None:
    """The SHA-256 of the record's JSON (64 hex digits) that the first syncs stored; None if unreadable so."""
    try:
        data = record_to_dict(record)
    except (AttributeError, TypeError):
        return None
    data.pop("updated_at", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


#: Hashes that earlier versions stored, told apart by their length: a debt whose stored hash has
#: one of these forms and matches the record is unchanged, and its hash is replaced (rehashed).
EARLIER_HASHES: dict[int, Callable[[DebtRecord], str | None]] = {40: sha1_content_hash, 64: legacy_content_hash}


def stored_hash_matches(stored: str | None, digest: str, record: DebtRecord) -> bool:
    """Whether the hash stored for a debt says the record is unchanged (in any form a version stored)."""
    if stored is None:
        return False
    if stored == digest:
        return True
    earlier = EARLIER_HASHES.get(len(stored))
    return earlier is not None and stored == earlier(record)


def _raw_text(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(raw)


#: Text fields of a record and the width of the column that keeps each (see app.debts.models).
_TEXT_WIDTHS = (
    ("external id", "external_id", Debt.__table__.c.external_id.type.length),
    ("tax id", "tax_id", Debtor.__table__.c.tax_id.type.length),
    ("debtor name", "debtor_name", Debtor.__table__.c.name.type.length),
    ("kind", "kind", Debt.__table__.c.kind.type.length),
    ("description", "description", Debt.__table__.c.description.type.length),
    ("vehicle plate", "vehicle_plate", Debt.__table__.c.vehicle_plate.type.length),
    ("e-mail address", "contact_email", Debt.__table__.c.contact_email.type.length),
    ("phone number", "contact_phone", Debt.__table__.c.contact_phone.type.length),
)
#: The largest amount an Integer column holds (PostgreSQL's integer is 32 bits).
_MAX_MINOR = 2**31 - 1


def _storage_problems(record: DebtRecord) -> list[str]:
    """What would make the database refuse the record (and, on PostgreSQL, fail its whole batch)."""
    problems: list[str] = []
    for label, name, width in _TEXT_WIDTHS:
        value = getattr(record, name)
        if isinstance(value, str):
            if len(value) > width:
                problems.append(f"The {label} has {len(value)} characters; at most {width} fit.")
            if "\x00" in value:
                problems.append(f"The {label} contains a NUL character.")
    amounts = [("principal", record.principal_minor), ("paid amount", record.paid_minor)]
    amounts += [(f"installment {item.number}", item.amount_minor) for item in record.installments]
    for label, amount in amounts:
        if isinstance(amount, int) and amount > _MAX_MINOR:
            problems.append(f"The {label} ({amount} minor units) is larger than the portal can keep.")
    return problems


def _record_problems(record: DebtRecord, agency: Agency | _AgencyKeys) -> tuple[list[str], str]:
    """Everything wrong with a record, and the RF reference it will carry ("" if it has none valid)."""
    problems = validate_record(record)
    problems.extend(_storage_problems(record))
    if record.currency != agency.currency:
        problems.append(f"The currency {record.currency} is not the agency's currency {agency.currency}.")
    reference = ""
    try:
        reference = _reference_of(record, agency)
    except InvalidReference as error:
        problems.append(str(error))
    return problems, reference


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


#: Python's cyclic garbage collector during a sync: how many new objects between young collections
#: (the default is 700). A sync allocates millions of short-lived, acyclic objects (records,
#: rows, tuples) that reference counting frees; with the default, collections took 2.2 s of a
#: 12.4 s first sync of 100k demo debts and 1.3 s of a 5.2 s repeat, 0.2 s and 0.04 s with this.
SYNC_GC_THRESHOLD = 50_000
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved_threshold: tuple[int, ...] = gc.get_threshold()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect garbage less often while a sync runs, and never rescan what was alive before it.

    ``gc.freeze`` moves every object alive at the start (the app, its modules, the ORM's
    registries) out of the collector's sight, so a full collection no longer walks the whole
    heap; young objects are collected every ``SYNC_GC_THRESHOLD`` allocations. Both are undone
    when the last of the process's running syncs ends; they change when memory is reclaimed,
    never what is reclaimed.
    """
    global _gc_depth, _gc_saved_threshold
    with _gc_lock:
        _gc_depth += 1
        if _gc_depth == 1:
            _gc_saved_threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(SYNC_GC_THRESHOLD, *_gc_saved_threshold[1:])
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved_threshold)
                gc.unfreeze()


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
    with _fewer_collections():
        return _sync_agency(agency, connector, full=full, progress=progress, now=now)


def _sync_agency(
    agency: Agency,
    connector: ERPConnector | None,
    *,
    full: bool,
    progress: Callable[[int], None] | None,
    now: datetime | None,
) -> SyncRun:
    now = now or utcnow()
    connector = connector or build_connector(agency)  # push-only agencies: a ValueError saying so
    incremental = (
        not full and agency.synced_until is not None and getattr(connector, "supports_changed_since", False)
    )
    changed_since = agency.synced_until - INCREMENTAL_OVERLAP if incremental and agency.synced_until else None
    run = start_run(agency, "incremental" if incremental else "full", now, changed_since)
    state = _RunState(run=run)
    keys = _AgencyKeys(agency.id, agency.code, agency.currency)
    last_beat = time.monotonic()
    writer = (
        set_based.BatchWriter(agency.id, _naive_utc(now), functools.partial(_take_written, state))
        if _writes_set_based()
        else None
    )
    try:
        connector.check()
        stream = connector.iter_debts(changed_since) if incremental else connector.iter_debts()
        analyse_at = 1
        with contextlib.closing(_read_ahead(_batches(stream, BATCH_SIZE))) as batches:
            for batch in batches:
                items = list(enumerate(batch))
                if writer is None:
                    _apply_batch(agency, state, items, now)
                    if run.created >= analyse_at:
                        _refresh_statistics()
                        analyse_at = 2 * run.created
                else:
                    writer.submit(_sort_for_writer(keys, state, items, writer))
                    # Pipelined, the batch's debts commit in the writer's transaction; here commit
                    # its quarantine, the counts, and a heartbeat now and then. Inline, the batch.
                    if not writer.pipelined or db.session.new or time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                        _settle(state)
                        run.heartbeat_at = utcnow()
                        db.session.commit()
                        last_beat = time.monotonic()
                    writer.after_commit()
                if progress:
                    progress(len(batch))
        if writer is not None:
            writer.finish()
        _settle(state)
        if not incremental:
            _close_vanished(agency, state, now)
            agency.last_full_sync_at = now
        agency.synced_until = now
        _finish(run, "succeeded")
    except Exception as error:
        db.session.rollback()
        if writer is not None:
            writer.close()  # a batch still in flight finishes and counts; a failed one is rolled back
        _settle(state)
        message = str(error) if isinstance(error, ConnectionError) else f"{type(error).__name__}: {error}"
        _finish(run, "failed", message)
        log.warning("agency %s: sync %d failed: %s", agency.code, run.id, message)
        raise
    finally:
        if writer is not None:
            writer.close()
    log.info(
        "agency %s synced (%s): %d created, %d updated, %d unchanged, %d closed, %d quarantined, %d flagged",
        agency.code, run.kind, run.created, run.updated, run.unchanged, run.closed, run.quarantined, run.flagged,
    )  # fmt: skip
    return run


def _refresh_statistics() -> None:
    """Let PostgreSQL's planner see how big the tables have grown (each time a run's new debts double).

    A first sync fills empty tables within one run, before autovacuum's ANALYZE comes round;
    with statistics that still say "empty" the planner stops using the composite indexes and
    the sync turns quadratic (measured: 208 rows/s at 100k debts instead of thousands).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ANALYZE debtors, debts, installments"))
        db.session.commit()


def _read_ahead(batches: Iterator[list[DebtRecord | RecordError]]) -> Iterator[list[DebtRecord | RecordError]]:
    """Yield the batches while a thread reads the next one from the ERP, so reading overlaps writing.

    One batch waits at most, so memory stays flat. An error of the ERP reaches the caller after
    every batch read before it, exactly as without the thread; if the caller stops early (its
    write failed), the thread stops at its next batch.
    """
    handover: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                handover.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not hand_over("batch", batch):
                    return
            hand_over("end", None)
        except BaseException as error:  # handed to the caller, who raises it
            hand_over("error", error)

    reader = threading.Thread(target=read, name="sync-erp-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = handover.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        reader.join(timeout=5)


def _batches(stream: Iterable[DebtRecord | RecordError], size: int) -> Iterator[list[DebtRecord | RecordError]]:
    batch: list[DebtRecord | RecordError] = []
    for item in stream:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- sorting a batch --------------------------------------------------------------------------------


def _quarantine(agency: Agency | _AgencyKeys, state: _RunState, external_id: str | None, reason: str, raw: object) -> None:
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


#: Reads a batch needs: the agency's debts with these external ids, as (external_id, id,
#: content_hash, closed_reason) rows; and the owners (external ids) of these RF references.
DebtLookup = Callable[[list[str]], Iterable[tuple[Any, ...]]]
OwnerLookup = Callable[[list[str]], Mapping[str, str]]


@dataclass
class _SortedBatch:
    """A batch's records sorted by what must happen to them; quarantined ones are already recorded."""

    #: (index, record, digest, RF reference) of new or changed records that passed every check, in stream order
    good: list[tuple[int, DebtRecord, str, str]]
    #: debt id of each record of the batch that the portal already holds, by external id
    known_ids: dict[str, int]
    #: (debt id, digest) of unchanged debts whose stored hash still has the legacy form
    rehash: list[tuple[int, str]]


def _sort_batch(
    agency: Agency | _AgencyKeys,
    state: _RunState,
    items: list[tuple[int, DebtRecord | RecordError]],
    lookup: DebtLookup,
    owners: OwnerLookup,
    results: list[RecordResult] | None,
    in_flight: set_based.InFlight = set_based.InFlight(),
) -> _SortedBatch:
    """Quarantine the batch's bad and repeated records, count the unchanged ones, return the rest.

    The common case, a record the ERP sends again unchanged, costs its hash and a share of one
    indexed query: it was validated when first applied, so it is not validated again. ``results``
    (when given) receives the outcome of each record decided here. ``in_flight`` is the batch
    being written meanwhile (pipelined writes), which the look-ups may not see yet.
    """
    records: list[tuple[int, DebtRecord, str]] = []
    for index, item in items:
        if isinstance(item, RecordError):
            raw = item.raw
            external_id = raw.get("external_id") if isinstance(raw, Mapping) else None
            external_id = external_id if isinstance(external_id, str) else None
            _quarantine(agency, state, external_id, item.reason, raw)
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", item.reason))
        else:
            records.append((index, item, content_hash(item)))

    # A debt closed as vanished that the ERP lists again must reopen even if its content is the same.
    known = {
        external_id: (debt_id, digest if closed_reason != "vanished" else None)
        for external_id, debt_id, digest, closed_reason in lookup([record.external_id for _, record, _ in records])
    } if records else {}  # fmt: skip
    good: list[tuple[int, DebtRecord, str, str]] = []
    rehash: list[tuple[int, str]] = []
    in_batch: set[str] = set()
    unchanged = 0
    for index, record, digest in records:
        external_id = record.external_id
        found = known.get(external_id)
        if (
            external_id in in_batch
            or external_id in in_flight.external_ids
            or (found is not None and state.was_seen(found[0]))
        ):
            reason = f"The external id {external_id} appears twice in one sync."
            _quarantine(agency, state, external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", reason))
            continue
        in_batch.add(external_id)
        if found is not None:
            stored = found[1]
            if stored_hash_matches(stored, digest, record):
                if stored != digest:
                    rehash.append((found[0], digest))
                state.mark(found[0])
                unchanged += 1
                if results is not None:
                    results.append(RecordResult(index, external_id, "unchanged"))
                continue
        problems, reference = _record_problems(record, agency)
        if problems:
            reason = " ".join(problems)
            _quarantine(agency, state, external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", reason))
            continue
        good.append((index, record, digest, reference))
    state.pending["unchanged"] += unchanged
    good = _refuse_reused_references(agency, state, good, owners, results, in_flight)
    return _SortedBatch(good, {external_id: found[0] for external_id, found in known.items()}, rehash)


def _lookup_debts(agency: Agency) -> DebtLookup:
    def lookup(external_ids: list[str]) -> Iterable[tuple[Any, ...]]:
        return db.session.execute(
            select(Debt.external_id, Debt.id, Debt.content_hash, Debt.closed_reason).where(
                Debt.agency_id == agency.id, Debt.external_id.in_(set(external_ids))
            )
        ).all()

    return lookup


def _lookup_owners(agency: Agency) -> OwnerLookup:
    def owners(references: list[str]) -> Mapping[str, str]:
        return dict(
            db.session.execute(
                select(Debt.rf_reference, Debt.external_id).where(
                    Debt.agency_id == agency.id, Debt.rf_reference.in_(references)
                )
            ).all()
        )

    return owners


@functools.lru_cache(maxsize=65_536)
def _cached_reference(agency_code: str, rf_reference: str | None, external_id: str) -> str:
    # Validating an RF is the costliest step per record; a batch asks for each one three times.
    if rf_reference:
        return rf_reference if _is_normal_rf(rf_reference) else normalise_rf(rf_reference)
    return rf_for_debt(agency_code, external_id)


_COMPACT_RF = re.compile(r"RF[0-9]{2}[0-9A-Z]{1,21}", re.ASCII)
#: A=10 ... Z=35, as ISO 7064 turns letters into digits
_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


def _is_normal_rf(reference: str) -> bool:
    """Whether normalise_rf would return the reference unchanged; a fifth of its cost, for ERPs' compact RFs.

    The checks are normalise_rf's for a reference already compact and upper-case: the shape, the
    ISO 7064 MOD 97-10 checksum in one int(), and the check digits ISO 11649 never issues.
    """
    return (
        _COMPACT_RF.fullmatch(reference) is not None
        and reference[2:4] not in ("00", "01", "99")
        and int((reference[4:] + reference[:4]).translate(_LETTER_VALUES)) % 97 == 1
    )


def _reference_of(record: DebtRecord, agency: Agency | _AgencyKeys) -> str:
    return _cached_reference(agency.code, record.rf_reference, record.external_id)


def _refuse_reused_references(
    agency: Agency | _AgencyKeys,
    state: _RunState,
    good: list[tuple[int, DebtRecord, str, str]],
    owners: OwnerLookup,
    results: list[RecordResult] | None,
    in_flight: set_based.InFlight,
) -> list[tuple[int, DebtRecord, str, str]]:
    """Quarantine records whose RF reference another debt of the agency already carries.

    A payment code must name exactly one debt; the database enforces it, and without this check
    one reused code would fail the whole batch instead of one record. The batch in flight (when
    writes are pipelined) counts as written, whether or not the look-up already sees it.
    """
    owner_of = owners(list({reference for _, _, _, reference in good})) if good else {}
    kept: list[tuple[int, DebtRecord, str, str]] = []
    claimed: dict[str, str] = {reference: external_id for external_id, reference in in_flight.references.items()}
    moving = in_flight.references
    for item in good:
        index, record, _, reference = item
        owner = owner_of.get(reference)
        if owner is not None and moving.get(owner, reference) != reference:
            owner = None  # the batch being written moves that debt to another reference
        if owner is None:
            owner = claimed.get(reference)
        if owner is not None and owner != record.external_id:
            reason = f"The RF reference {reference} already belongs to debt {owner}; a payment code must name one debt."
            _quarantine(agency, state, record.external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, record.external_id, "quarantined", reason))
            continue
        claimed[reference] = record.external_id
        kept.append(item)
    return kept


# -- writing a batch row by row (SQLite, pushes, refreshes) -------------------------------------------


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
    """Apply one batch in one transaction through the ORM; returns one result per item."""
    run = state.run
    results: list[RecordResult] = []
    batch = _sort_batch(agency, state, items, _lookup_debts(agency), _lookup_owners(agency), results)
    good = batch.good
    to_update = [batch.known_ids[record.external_id] for _, record, _, _ in good if record.external_id in batch.known_ids]
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
    _settle(state)
    run.heartbeat_at = utcnow()
    db.session.commit()
    results.sort(key=lambda result: result.index)
    return results


def _update_debt(debt: Debt, record: DebtRecord, agency: Agency, debtor_id: int, now: datetime) -> tuple[str, str | None]:
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


def _close_vanished(agency: Agency, state: _RunState, now: datetime) -> None:
    """After a complete full export: open debts the ERP no longer lists are closed (or flagged).

    An export that named no debt at all (an empty drop folder, a file with a broken header) is
    far likelier a fault than a municipality whose every debt vanished: then nothing is closed.
    """
    if not any(state.seen):
        if state.run.created + state.run.updated + state.run.unchanged == 0:
            state.run.error = "The ERP export held no valid debt, so no debt was closed as vanished."
            return
    if _writes_set_based():
        closed, flagged = postgres.close_vanished(
            postgres.cursor(),
            agency.id,
            bytes(state.seen),
            _naive_utc(now),
            FLAG_PAID_WHILE_PAYING.format(reason="no longer in the ERP"),
        )
        state.run.closed += closed
        state.run.flagged += flagged
        db.session.commit()
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


# -- writing a batch set-based (full and incremental syncs on PostgreSQL) -----------------------------


def _writes_set_based() -> bool:
    """Whether this sync writes set-based: on PostgreSQL, unless tests ask for the row path."""
    return SET_BASED_ON_POSTGRESQL and db.session.get_bind().dialect.name == "postgresql"


def _naive_utc(moment: datetime) -> datetime:
    """A timestamp as UTCDateTime stores it (naive UTC), for statements that bypass the ORM."""
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class _AgencyKeys:
    """What sorting a batch needs of its agency, read once: the ORM object expires at every commit."""

    id: int
    code: str
    currency: str


def _sort_for_writer(
    agency: _AgencyKeys, state: _RunState, items: list[tuple[int, DebtRecord | RecordError]], writer: set_based.BatchWriter
) -> set_based.BatchWrite:
    """Sort a batch for the set-based writer: quarantine recorded in the session, the rest as plain values.

    The same rules as ``_apply_batch``, without per-record results (a full sync has no caller to
    tell them to) and without ORM objects.
    """
    cursor = postgres.cursor()
    batch = _sort_batch(
        agency,
        state,
        items,
        functools.partial(postgres.known_debts, cursor, agency.id),
        functools.partial(postgres.reference_owners, cursor, agency.id),
        None,
        writer.in_flight,
    )
    known_ids = batch.known_ids
    good = [(record, digest, reference, known_ids.get(record.external_id)) for _, record, digest, reference in batch.good]
    return set_based.BatchWrite(good, batch.rehash)


def _settle(state: _RunState) -> None:
    """Add the pending counts to the run (before the session commits)."""
    run = state.run
    for outcome, count in state.pending.items():
        setattr(run, outcome, getattr(run, outcome) + count)
    state.pending.clear()


def _take_written(state: _RunState, written: set_based.Written) -> None:
    """Count a written batch towards the run and mark its debts seen (in the caller's thread)."""
    state.pending.update(written.outcomes)
    for debt_id in written.debt_ids:
        state.mark(debt_id)


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
