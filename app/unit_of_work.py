"""One unit of work: a request, a CLI command and a worker tick each commit once, at their edge.

Services add and flush; they never commit. The edge that called them commits when it finished
normally and rolls back when it raised (warehouse's transaction per request):

* a request commits after its view returned a response below 500 (``init_app``); an exception,
  or a 5xx page, rolls back when the session is removed at the end of the app context;
* a CLI command or a worker tick wraps its body in ``with unit_of_work():`` or decorates it
  with ``@unit_of_work()``.

A flow that must commit early (claiming debts before a card is charged, a sync batch, one outbox
message at a time) calls ``commit_early(reason)`` at that point, so the reason stands in the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from app.extensions import db

#: Set in ``Session.info`` by a flush that wrote rows, until the transaction ends.
_WROTE = "civicpay.wrote"


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the body did if it finished, roll it back if it raised; usable as a decorator."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def commit_early(reason: str) -> None:
    """Commit in the middle of a unit of work, for the reason given (kept for the reader)."""
    del reason  # the argument is documentation: the call site says why this commit cannot wait
    db.session.commit()


def end_read_only_transaction() -> None:
    """End the session's transaction so the next statement opens a new one; it must have written nothing.

    For a flow whose transaction must begin with a lock (on SQLite, the write lock before any
    read). Refuses, rather than commit or discard them, if the caller has changes in hand: that
    would be a second unit of work hidden inside the first.
    """
    if has_changes():
        raise RuntimeError("The caller has uncommitted changes; commit them at its edge before this flow starts.")
    db.session.rollback()


def has_changes() -> bool:
    """Whether the session holds changes not yet committed: pending in memory, or flushed."""
    session = db.session()
    if session.info.get(_WROTE) or session.new or session.deleted:
        return True
    return any(session.is_modified(obj) for obj in session.dirty)


@event.listens_for(Session, "after_flush")
def _note_write(session: Session, flush_context: object) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement_write(state: ORMExecuteState) -> None:
    # An INSERT, UPDATE or DELETE statement (an upsert, a compare-and-set) writes without a flush.
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_write(session: Session, transaction: SessionTransaction) -> None:
    # Only when the whole transaction ends: a savepoint released (begin_nested) leaves its writes
    # in the transaction, still to be committed at the edge.
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def init_app(app: Flask) -> None:
    """Commit each request's work once its view has answered without a server error."""

    @app.after_request
    def _commit_request(response: Response) -> Response:
        # A request that only read ends its transaction when the session is removed; committing
        # it would only expire what it loaded.
        if not has_changes():
            return response
        if response.status_code < 500:
            db.session.commit()
        else:
            db.session.rollback()
        return response
