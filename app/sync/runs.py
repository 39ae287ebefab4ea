"""A sync run: its row (one running full or incremental run per agency at a time), what it keeps in memory, its end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import events
from app.agencies.models import Agency
from app.db import utcnow
from app.extensions import db
from app.sync.models import SyncRun
from app.unit_of_work import commit_early

#: A running sync whose heartbeat is older than this is taken to have died.
STALE_RUN_AFTER = timedelta(minutes=10)


class SyncBusy(RuntimeError):
    """Another sync of the same agency is running."""


@dataclass
class RunState:
    """What a run keeps in memory: a bitmap of the debt ids it has seen, not the debts."""

    run: SyncRun
    seen: bytearray = field(default_factory=bytearray)
    #: counts not yet added to the run (created, updated, unchanged, ...): they reach it when the
    #: session next commits, so a rollback of the session cannot lose counts of committed batches
    pending: Counter[str] = field(default_factory=Counter)

    def mark(self, debt_id: int) -> bool:
        """Mark a debt as seen in this run; False if it was already seen (a duplicate)."""
        if debt_id >= len(self.seen):
            self.seen.extend(bytes(max(debt_id + 1 - len(self.seen), 4096)))
        if self.seen[debt_id]:
            return False
        self.seen[debt_id] = 1
        return True

    def was_seen(self, debt_id: int) -> bool:
        """Whether this run has seen the debt."""
        return debt_id < len(self.seen) and bool(self.seen[debt_id])


def start_run(agency: Agency, kind: str, now: datetime, changed_since: datetime | None = None) -> SyncRun:
    """Record a running sync; refuse if another full/incremental sync of the agency runs.

    A full or incremental run commits its row at once: the row is the agency's lock (a unique
    index allows one running row), so other processes must see it, and a second run is refused
    here, by the database, rather than when its first batch commits. A pushed batch or a refresh
    holds no lock; its row is only flushed, for the request that called it to commit.
    """
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
    if kind not in ("full", "incremental"):
        db.session.flush()
        return run
    try:
        commit_early("a running full or incremental sync's row is the agency's lock: other processes must see it")
    except IntegrityError:
        db.session.rollback()
        raise SyncBusy(f"A sync of {agency.code} is already running; try again when it has finished.") from None
    return run


def finish_run(run: SyncRun, status: str, error: str | None = None) -> None:
    """Record how the run ended (flushed: the caller commits); announce the debts it wrote."""
    run.status = status
    run.finished_at = utcnow()
    run.heartbeat_at = run.finished_at
    run.error = error
    db.session.flush()
    if status == "succeeded" and (run.created or run.updated or run.closed):
        events.debts_synced.send(
            run.agency_id,
            run_id=run.id,
            kind=run.kind,
            created=run.created,
            updated=run.updated,
            closed=run.closed,
            at=run.finished_at,
        )


def settle(state: RunState) -> None:
    """Add the pending counts to the run (before the session commits)."""
    run = state.run
    for outcome, count in state.pending.items():
        setattr(run, outcome, getattr(run, outcome) + count)
    state.pending.clear()


def latest_runs(limit: int = 20) -> list[SyncRun]:
    """The most recent sync runs of every agency."""
    return list(db.session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))
