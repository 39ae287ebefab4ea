"""The sync engine: copy each agency's ERP records into the portal, batch by batch.

Full and incremental runs read the ERP on a thread of their own while the batch before is
sorted (``sorting.sort_batch``: by content hash, an unchanged record costs its hash and a share
of one indexed read; bad ones are quarantined with their reason and raw payload). The sorted
records are written row by row through the ORM (``apply``: SQLite, and PostgreSQL when tests
ask) or set-based (``set_based.BatchWriter``: new debts by COPY, changed ones by one UPDATE per
batch, each batch written on a connection of its own while the next is sorted); both follow the
same rules, in ``rules``. Each batch commits on its own, deliberately (``commit_early``), so a
run that dies midway leaves every debt consistent and the next run simply finishes the job.
After a complete full export, the debts it no longer lists are closed with a reason and a date,
never deleted; a debt that an online payment holds right now is flagged for treasury instead.

Also here: the scheduled syncs (``run_due_syncs``, the worker's), and retrying a quarantine.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from app.agencies.models import Agency
from app.db import utcnow
from app.extensions import db
from app.sync import postgres, set_based
from app.sync.apply import apply_batch, close_vanished
from app.sync.connectors import build_connector, pulls_from_erp
from app.sync.models import SyncRun
from app.sync.quarantine import quarantined, resolve_quarantined
from app.sync.runs import RunState, SyncBusy, finish_run, settle, start_run
from app.sync.sorting import AgencyKeys, sort_batch
from app.unit_of_work import commit_early
from erp_connectors.base import DebtRecord, ERPConnector, RecordError

log = logging.getLogger("civicpay.sync")

#: Records applied per transaction: small enough to keep memory flat (a few MB of records),
#: large enough that a batch's fixed cost (its queries, its commit) is shared by many records.
BATCH_SIZE = 5000
#: Full and incremental syncs on PostgreSQL write set-based; tests turn this off to compare the
#: two ways of writing on the same data.
SET_BASED_ON_POSTGRESQL = True
#: A pipelined run writes its heartbeat at most this often (its batches commit on their own).
HEARTBEAT_SECONDS = 5.0
#: Incremental syncs ask for a little more than strictly needed, against clock skew.
INCREMENTAL_OVERLAP = timedelta(minutes=2)
#: Why each batch commits on its own, in the middle of the caller's unit of work.
_BATCH_COMMIT = "a sync batch: a run that dies midway keeps every batch before, and the next run finishes the job"


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
    incremental = not full and agency.synced_until is not None and getattr(connector, "supports_changed_since", False)
    changed_since = agency.synced_until - INCREMENTAL_OVERLAP if incremental and agency.synced_until else None
    run = start_run(agency, "incremental" if incremental else "full", now, changed_since)
    state = RunState(run=run)
    keys = AgencyKeys(agency.id, agency.code, agency.currency)
    last_beat = time.monotonic()
    writer = (
        set_based.BatchWriter(agency.id, postgres.naive_utc(now), functools.partial(_take_written, state))
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
                    apply_batch(agency, state, items, now)
                    commit_early(_BATCH_COMMIT)
                    if run.created >= analyse_at:
                        _refresh_statistics()
                        analyse_at = 2 * run.created
                else:
                    writer.submit(_sort_for_writer(keys, state, items, writer))
                    # Pipelined, the batch's debts commit in the writer's transaction; here commit
                    # its quarantine, the counts, and a heartbeat now and then. Inline, the batch.
                    if not writer.pipelined or db.session.new or time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                        settle(state)
                        run.heartbeat_at = utcnow()
                        commit_early(_BATCH_COMMIT)
                        last_beat = time.monotonic()
                    writer.after_commit()
                if progress:
                    progress(len(batch))
        if writer is not None:
            writer.finish()
        settle(state)
        if not incremental:
            close_vanished(agency, state, now, set_based=writer is not None)
            agency.last_full_sync_at = now
        agency.synced_until = now
        finish_run(run, "succeeded")
        commit_early("the run's end goes with its batches, all committed: a caller's later error must not undo it")
    except Exception as error:
        db.session.rollback()
        if writer is not None:
            writer.close()  # a batch still in flight finishes and counts; a failed one is rolled back
        settle(state)
        message = str(error) if isinstance(error, ConnectionError) else f"{type(error).__name__}: {error}"
        finish_run(run, "failed", message)
        commit_early("a failed run is recorded, though the error raised on rolls the caller's unit of work back")
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
        commit_early("ANALYZE's lock on the tables is released at once, not with the next batch")


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
    """The stream cut into lists of ``size`` items (the last one shorter)."""
    batch: list[DebtRecord | RecordError] = []
    for item in stream:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _writes_set_based() -> bool:
    """Whether this sync writes set-based: on PostgreSQL, unless tests ask for the row path."""
    return SET_BASED_ON_POSTGRESQL and db.session.get_bind().dialect.name == "postgresql"


def _sort_for_writer(
    agency: AgencyKeys,
    state: RunState,
    items: list[tuple[int, DebtRecord | RecordError]],
    writer: set_based.BatchWriter,
) -> set_based.BatchWrite:
    """Sort a batch for the set-based writer: quarantine recorded in the session, the rest as plain values.

    The same rules as ``apply_batch``, without per-record results (a full sync has no caller to
    tell them to) and without ORM objects.
    """
    cursor = postgres.cursor()
    batch = sort_batch(
        agency,
        state,
        items,
        functools.partial(postgres.known_debts, cursor, agency.id),
        functools.partial(postgres.reference_owners, cursor, agency.id),
        None,
        writer.in_flight,
    )
    known_ids = batch.known_ids
    good = [
        (record, digest, reference, known_ids.get(record.external_id)) for _, record, digest, reference in batch.good
    ]
    return set_based.BatchWrite(good, batch.rehash)


def _take_written(state: RunState, written: set_based.Written) -> None:
    """Count a written batch towards the run and mark its debts seen (in the caller's thread)."""
    state.pending.update(written.outcomes)
    for debt_id in written.debt_ids:
        state.mark(debt_id)


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


def retry_quarantined(agency: Agency, now: datetime, connector: ERPConnector | None = None) -> SyncRun:
    """Retry an agency's quarantined records: mark them retried and pull a full sync again.

    Records the ERP has fixed come in; records still bad are quarantined anew with today's reason.
    The records are marked retried only if the sync starts (it commits them with its run's row).
    """
    ids = [record.id for record in quarantined(agency.id, limit=1_000_000)]
    resolve_quarantined(ids, "retried", now)
    return sync_agency(agency, connector, full=True, now=now)


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
