"""What happened, announced once by the feature that did it; other features listen.

A feature announces a fact with ``<event>.send(sender, **data)`` right where it makes the change,
before the unit of work commits. Each listener runs inside that same transaction: it may add rows
(an outbox message, an audit entry) that commit or roll back together with the fact they describe.
A listener must not commit, call an outside system or be slow; to reach the outside world it
writes an outbox message (``app.outbox.services.enqueue``) for a topic whose deliverer it
registered. The announcer knows none of its listeners, and the outbox knows none of the topics.

Adding a capability (a notification channel, a partner webhook) means writing a listener and
connecting it in its package's ``register()``, which ``create_app`` calls; nothing here changes.
Adding an event means one line below, saying what the sender is and what data comes with it.

`blinker <https://blinker.readthedocs.io>`_ (already a Flask dependency) keeps the receivers;
``connect(..., weak=False)`` so a listener lives as long as the process.
"""

from __future__ import annotations

from blinker import Namespace

_events = Namespace()

#: A payment's charge succeeded and its debts, installments and items are paid.
#: sender: the ``Payment`` (status "succeeded", ``completed_at`` set, lines loaded).
payment_succeeded = _events.signal("payment.succeeded")

#: A payment was declined or abandoned; its debts are free again.
#: sender: the ``Payment`` (status "failed", ``failure_reason`` set).
payment_failed = _events.signal("payment.failed")

#: Money went back to the payer (a full or partial refund the provider confirmed).
#: sender: the ``Refund`` (status "succeeded"); data: ``payment`` (the refunded ``Payment``).
refund_made = _events.signal("refund.made")

#: A sync run (full, incremental, pushed or a debtor's refresh) created, changed or closed debts.
#: sender: the agency's id (int); data: ``run_id``, ``kind`` ("full", "incremental", "push",
#: "refresh"), ``created``, ``updated`` and ``closed`` (counts of debts), ``at`` (its end, UTC).
debts_synced = _events.signal("debts.synced")

#: Every event, by name: for listings and for tests that check each has its listeners.
ALL = {signal.name: signal for signal in (payment_succeeded, payment_failed, refund_made, debts_synced)}
