"""The transactional outbox: enqueue with the state change, deliver later, until acknowledged.

The outbox stores and delivers messages by topic and knows none of them: each feature that sends
something (receipts, ERP write-back, ...) registers its topic with ``register_topic`` and a
deliverer, and enqueues its messages from an event listener, inside the transaction of the fact
they describe.

"Exactly once" on the far side is at-least-once delivery plus an idempotent receiver:

* a message is written in the same transaction as its cause (a confirmed payment), so it exists
  if and only if the payment does;
* ``deliver_due`` takes one message at a time in its own transaction, row-locked with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers never hold the same message, calls
  the topic's deliverer, records the outcome and commits;
* a worker that dies after the far side took a message but before our commit leaves the message
  pending, and the next attempt sends it again; deliverers send keys (an ERP line id) that let the
  receiver treat a repeat as already done.

SQLite has no row locks (``with_for_update`` compiles to nothing there): run a single worker.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.unit_of_work import commit_early

log = logging.getLogger("civicpay.outbox")

#: The first retry waits this long; each further one twice as long as the one before.
FIRST_RETRY_DELAY = timedelta(seconds=30)
#: No retry waits longer than this.
LONGEST_RETRY_DELAY = timedelta(hours=1)
#: Each delay is spread by up to this fraction either way, so a crowd of messages that failed
#: together (the ERP went down) does not come back in one burst.
RETRY_JITTER = 0.10
DEFAULT_MAX_ATTEMPTS = 12

#: Which status may follow which; anything else is a programming error.
_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending", "delivered", "dead"}),
    "dead": frozenset({"pending"}),
    "delivered": frozenset(),
}

_LONGEST_ERROR = 500
#: user:password@ in a URL, in case an error message quotes one.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


class OutboxError(Exception):
    """An outbox operation that is not allowed; the message is a sentence for an operator."""


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` call did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        """Messages taken in this call, whatever their outcome."""
        return self.delivered + self.retried + self.dead

    def __str__(self) -> str:
        return f"{self.delivered} delivered, {self.retried} to retry, {self.dead} dead"


class RetryLater(Exception):
    """Raised by a deliverer: the far side failed in a way worth another try later (it is down)."""


class GiveUp(Exception):
    """Raised by a deliverer: no retry will cure this (the far side refused); the message is dead."""


Deliverer = Callable[[OutboxMessage, "DeliveryContext"], None]


@dataclass(frozen=True)
class Topic:
    """A kind of message and the function that carries one out."""

    name: str
    deliver: Deliverer
    #: What a message of this topic does, in words, for staff (a lazily translated string).
    label: Any


#: The registered topics, by name; filled by each sending feature's ``register()``.
_TOPICS: dict[str, Topic] = {}


def register_topic(name: str, deliver: Deliverer, *, label: Any) -> None:
    """Let messages of topic ``name`` be enqueued, and have ``deliver`` carry each one out.

    ``deliver(message, context)`` returns when the far side took the message, raises
    ``RetryLater`` when it may take it later, and ``GiveUp`` when it never will. Registering the
    same topic again with the same deliverer changes nothing; with another one is a mistake.
    """
    known = _TOPICS.get(name)
    if known is not None and known.deliver is not deliver:
        raise OutboxError(f"The outbox topic {name!r} is already delivered by {known.deliver.__qualname__}.")
    _TOPICS[name] = Topic(name, deliver, label)


def registered_topics() -> dict[str, Topic]:
    """The topics the outbox can deliver, by name."""
    return dict(_TOPICS)


class DeliveryContext:
    """What one ``deliver_due`` call shares among its deliveries: resources opened once per call.

    A deliverer keeps, say, one ERP connection per agency with ``resource(key, open)``; the
    outbox closes each resource that has a ``close()`` when the call ends, and at once after an
    unexpected failure (the next message opens fresh ones).
    """

    def __init__(self, worker: str = "") -> None:
        self.worker = worker
        self._resources: dict[Any, Any] = {}

    def resource(self, key: Any, open_resource: Callable[[], Any]) -> Any:
        """The resource kept under ``key``, opened with ``open_resource()`` the first time."""
        if key not in self._resources:
            self._resources[key] = open_resource()
        return self._resources[key]

    def close(self) -> None:
        """Close every resource kept."""
        while self._resources:
            _close(self._resources.popitem()[1])


def _close(resource: Any) -> None:
    close = getattr(resource, "close", None)
    if close is not None:
        close()


def _set_status(message: OutboxMessage, status: str) -> None:
    """The one place a message changes status."""
    if status not in _TRANSITIONS.get(message.status, frozenset()):
        raise OutboxError(f"Outbox message {message.id} is {message.status}; it cannot become {status}.")
    message.status = status


def enqueue(
    *, topic: str, key: str, payload: dict[str, Any], agency_id: int | None, now: datetime
) -> OutboxMessage | None:
    """Add a message to the caller's transaction; None if a message with this key already exists.

    The caller commits. The unique index on ``key`` is the last guard should two transactions
    race past the check; callers that matter (``confirm_payment``) already hold a row lock.
    Only a registered topic is accepted: a message nobody can deliver is a programming error.
    """
    if topic not in _TOPICS:
        raise OutboxError(f"No deliverer is registered for the outbox topic {topic!r}.")
    if db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is not None:
        return None
    message = OutboxMessage(
        topic=topic,
        key=key,
        payload=payload,
        agency_id=agency_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(message)
    return message


def retry_delay(attempts: int, jitter: float | None = None) -> timedelta:
    """How long to wait after the given number of failed attempts: 30 s doubling, at most 1 h, ±10 %.

    ``jitter`` (in -1..1) fixes the spread for tests; by default it is random.
    """
    if attempts < 1:
        raise ValueError(f"A retry follows at least one failed attempt, not {attempts}.")
    base = min(FIRST_RETRY_DELAY * 2 ** min(attempts - 1, 30), LONGEST_RETRY_DELAY)
    spread = random.uniform(-1.0, 1.0) if jitter is None else jitter
    return base * (1 + RETRY_JITTER * spread)


def _max_attempts() -> int:
    return int(current_app.config.get("OUTBOX_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def _next_due(now: datetime, skip_agencies: set[int]) -> OutboxMessage | None:
    """Lock and return the oldest due message nobody else holds, of an agency not to be skipped."""
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if skip_agencies:
        statement = statement.where(OutboxMessage.agency_id.is_(None) | OutboxMessage.agency_id.not_in(skip_agencies))
    return db.session.scalars(statement).first()


def deliver_due(
    limit: int = 20,
    now: datetime | None = None,
    worker: str = "",
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages, one transaction each; returns the counts.

    ``now`` fixes the clock (tests); by default each message is taken at the current time.
    ``should_stop`` is asked before each message, so a stopping worker finishes the one in hand.
    Once an agency's message must be retried (its ERP is down, say), the agency's other messages
    wait for the next call: a down system costs one timeout per call, not one per message, and
    never holds up the other agencies.
    """
    report = DeliveryReport()
    context = DeliveryContext(worker)
    waiting_agencies: set[int] = set()
    try:
        while report.handled < limit and not (should_stop and should_stop()):
            moment = now or utcnow()
            message = _next_due(moment, waiting_agencies)
            if message is None:
                db.session.rollback()  # end the read-only transaction; nothing is due
                break
            try:
                _deliver(message, context)
            except GiveUp as error:
                _set_status(message, "dead")
                message.attempts += 1
                message.last_error = _clean(str(error))
                report.dead += 1
                log.error("%soutbox message %s (%s) is dead: %s", _who(worker), message.id, message.key, error)
            except RetryLater as error:
                _record_failure(message, str(error), moment, report, worker)
                if message.agency_id is not None:
                    waiting_agencies.add(message.agency_id)
            else:
                _set_status(message, "delivered")
                message.attempts += 1
                message.delivered_at = utcnow()
                message.last_error = None
                report.delivered += 1
                log.info("%soutbox message %s (%s) delivered", _who(worker), message.id, message.key)
            # One message, one transaction: its outcome stands before the next one is taken.
            commit_early("each delivered message is recorded before the next is taken")
    finally:
        context.close()
    return report


def _deliver(message: OutboxMessage, context: DeliveryContext) -> None:
    """Carry out one message through its topic's deliverer; raises RetryLater or GiveUp."""
    topic = _TOPICS.get(message.topic)
    if topic is None:
        raise GiveUp(f"No handler delivers messages of topic {message.topic!r}.")
    try:
        topic.deliver(message, context)
    except (RetryLater, GiveUp):
        raise
    except Exception as error:
        # A bug or an unexpected answer: retry, but shout, and open fresh resources (a connection
        # that misbehaved may be the culprit) for the next message.
        log.exception("unexpected failure delivering outbox message %s (%s)", message.id, message.key)
        context.close()
        raise RetryLater(
            f"An unexpected {type(error).__name__} happened while delivering this message; see the worker's log."
        ) from None


def _who(worker: str) -> str:
    return f"{worker}: " if worker else ""


def _record_failure(message: OutboxMessage, reason: str, now: datetime, report: DeliveryReport, worker: str) -> None:
    message.attempts += 1
    maximum = _max_attempts()
    if message.attempts >= maximum:
        _set_status(message, "dead")
        message.last_error = _clean(f"Gave up after {message.attempts} attempts. Last: {reason}")
        report.dead += 1
        log.error("%soutbox message %s (%s) is dead after %d attempts: %s",
                  _who(worker), message.id, message.key, message.attempts, reason)  # fmt: skip
        return
    _set_status(message, "pending")
    message.next_attempt_at = now + retry_delay(message.attempts)
    message.last_error = _clean(f"Attempt {message.attempts} of {maximum} failed: {reason}")
    report.retried += 1
    log.warning("%soutbox message %s (%s) will be retried at %s: %s",
                _who(worker), message.id, message.key, message.next_attempt_at.isoformat(), reason)  # fmt: skip


def _clean(text: str) -> str:
    """An error for the table and the operator: no URL credentials, not a novel."""
    text = _URL_CREDENTIALS.sub("", " ".join(text.split()))
    return text if len(text) <= _LONGEST_ERROR else text[: _LONGEST_ERROR - 1] + "…"


def retry_message(message_id: int, now: datetime) -> OutboxMessage:
    """Put a dead (or waiting) message back in the queue, due now; its attempt count is kept.

    The caller commits (the ``flask outbox retry`` command's unit of work).
    """
    message = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()).first()
    if message is None:
        db.session.rollback()
        raise LookupError(f"There is no outbox message {message_id}.")
    if message.status == "delivered":
        db.session.rollback()
        raise OutboxError(f"Outbox message {message_id} was already delivered; there is nothing to retry.")
    _set_status(message, "pending")
    message.next_attempt_at = now
    log.info("outbox message %s (%s) queued again by hand", message.id, message.key)
    return message


def list_messages(status: str | None = None, agency_id: int | None = None, limit: int = 50) -> list[OutboxMessage]:
    """The newest messages, optionally of one status and one agency."""
    statement = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(OutboxMessage.status == status)
    if agency_id is not None:
        statement = statement.where(OutboxMessage.agency_id == agency_id)
    return list(db.session.scalars(statement))


def requeue_dead_message(message_id: int, agency_id: int, now: datetime) -> OutboxMessage:
    """Queue one of the agency's dead messages again, due now, in the caller's transaction.

    The caller commits (with its audit entry). LookupError if the agency has no such message,
    OutboxError if the message is not dead (already retried, or delivered). The attempt count
    is kept, so the next failure makes it dead again at once rather than after twelve more tries.
    """
    message = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.agency_id == agency_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None:
        raise LookupError(f"Agency {agency_id} has no outbox message {message_id}.")
    if message.status != "dead":
        raise OutboxError(f"Outbox message {message_id} is {message.status}; only a dead message is retried by hand.")
    _set_status(message, "pending")
    message.next_attempt_at = now
    log.info("outbox message %s (%s) of agency %s queued again from the treasury", message.id, message.key, agency_id)
    return message
