"""Sync bookkeeping: each run with its counts, quarantined records, and debtor refresh times."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

SYNC_KINDS = ("full", "incremental", "refresh", "push")
SYNC_STATUSES = ("running", "succeeded", "failed", "abandoned")
QUARANTINE_STATUSES = ("open", "retried", "dismissed")


class SyncRun(Base):
    """One pass over an agency's ERP (or one pushed batch), with what it did."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(f"kind IN {SYNC_KINDS!r}", name="kind_known"),
        CheckConstraint(f"status IN {SYNC_STATUSES!r}", name="status_known"),
        # At most one running full/incremental sync per agency: the database enforces it.
        Index(
            "uq_sync_runs_one_running",
            "agency_id",
            unique=True,
            sqlite_where=text("status = 'running' AND kind IN ('full', 'incremental')"),
            postgresql_where=text("status = 'running' AND kind IN ('full', 'incremental')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Updated while the run works; a running row whose heartbeat is old was abandoned.
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: For incremental runs: records changed since this instant were asked for.
    changed_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    #: Debts the ERP closed while a payment held them: left open and flagged for treasury.
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of a finished run."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class QuarantinedRecord(Base):
    """An ERP record that could not be taken, with the reason and the raw payload."""

    __tablename__ = "quarantined_records"
    __table_args__ = (CheckConstraint(f"status IN {QUARANTINE_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"), index=True)
    #: The record's external id when it could be read.
    external_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    #: The payload as received (JSON text or the raw line).
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why a person dismissed the record (the treasury's operations page asks); null otherwise,
    #: and null for records dismissed from the command line before reasons were asked for.
    dismissed_reason: Mapped[str | None] = mapped_column(Text)
    #: Who retried or dismissed it from the treasury; null for the command line and the system.
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class DebtorRefresh(Base):
    """When one debtor's debts at one agency were last read from the ERP (on-demand refresh)."""

    __tablename__ = "debtor_refreshes"
    __table_args__ = (UniqueConstraint("agency_id", "country", "tax_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str] = mapped_column(String(32))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
