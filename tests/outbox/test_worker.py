"""The worker tells the demo ERP (over HTTP) of each paid line exactly once, through outages and crashes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select, update

from app.extensions import db
from app.outbox.models import OutboxMessage
from app.outbox.services import deliver_due
from app.payments.models import Payment
from tests.factories import DebtorFactory, UserFactory, link
from tests.outbox.helpers import (
    NOW,
    RecordingERPServer,
    debts_known_to_erp,
    erp_server,
    open_erp_records,
    pay,
    rest_agency,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def server() -> Iterator[RecordingERPServer]:
    with erp_server("eastcoast", debtors=60) as running:
        yield running
        running.erp.clear_acknowledgements()


@pytest.fixture()
def citizen(app_ctx: Flask):
    debtor, user = DebtorFactory(), UserFactory(notify_email=False)  # ERP acks only: no receipt e-mail
    link(user, debtor)
    return user, debtor


def _line_ids(payments: list[Payment]) -> set[str]:
    return {f"{payment.reference}:{line.id}" for payment in payments for line in payment.lines}


def _statuses() -> list[tuple[str, int]]:
    messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    return [(message.status, message.attempts) for message in messages]


def test_the_worker_tells_the_erp_each_line_once_and_then_sends_nothing(citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    debts = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 3))
    payments = [pay(user.id, debts[:2]), pay(user.id, debts[2:])]
    lines = _line_ids(payments)

    report = deliver_due()

    assert (report.delivered, report.retried, report.dead) == (2, 0, 0)
    assert all(server.erp.acknowledged(line_id) for line_id in lines)
    assert server.erp.ack_count == 3
    assert server.post_counts() == {line_id: 1 for line_id in lines}
    assert _statuses() == [("delivered", 1), ("delivered", 1)]
    served = server.requests_served
    assert deliver_due().handled == 0
    assert server.requests_served == served  # nothing sent the second time


def test_erp_down_during_a_batch_then_back_loses_nothing_and_books_each_line_once(
    citizen, server: RecordingERPServer
) -> None:
    user, debtor = citizen
    debts = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 5))
    with time_machine.travel(NOW, tick=True) as traveller:
        server.go_down()
        payments = [pay(user.id, debts[:2]), pay(user.id, debts[2:3]), pay(user.id, debts[3:])]

        # One failed call per tick and ERP: the rest of the batch waits instead of timing out too.
        assert [deliver_due().retried for _ in range(3)] == [1, 1, 1]
        assert _statuses() == [("pending", 1)] * 3
        waits = [
            (message.next_attempt_at - NOW).total_seconds() for message in db.session.scalars(select(OutboxMessage))
        ]
        assert all(27 <= wait <= 34 for wait in waits)  # 30 s ± 10 %, plus the test's own seconds
        assert deliver_due().handled == 0  # nobody hammers a down ERP before the backoff ends

        traveller.shift(timedelta(seconds=40))
        assert [deliver_due().retried for _ in range(3)] == [1, 1, 1]  # still down: now wait a minute
        assert _statuses() == [("pending", 2)] * 3

        server.come_back()
        traveller.shift(timedelta(seconds=40))
        assert deliver_due().handled == 0  # back, but 40 s < the minute we promised to wait
        traveller.shift(timedelta(seconds=40))
        back = deliver_due()

    assert (back.delivered, back.retried, back.dead) == (3, 0, 0)
    assert _statuses() == [("delivered", 3)] * 3
    lines = _line_ids(payments)
    assert server.erp.ack_count == len(lines) == 5
    assert all(server.erp.acknowledged(line_id) for line_id in lines)
    assert server.recorded_counts() == {line_id: 1 for line_id in lines}


def test_one_agencys_erp_being_down_does_not_hold_up_another(citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    east = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 2))
    with erp_server("mountvalley") as mountain_server:
        mountain = debts_known_to_erp(rest_agency(mountain_server), debtor, open_erp_records(mountain_server, 1))
        across = pay(user.id, [east[0], mountain[0]])
        pay(user.id, [east[1]])
        server.go_down()

        report = deliver_due()

        assert (report.delivered, report.retried) == (1, 1)
        assert _statuses() == [("pending", 1), ("delivered", 1), ("pending", 0)]  # east, mountain, east
        mountain_line = next(f"{across.reference}:{line.id}" for line in across.lines if line.debt_id == mountain[0].id)
        assert mountain_server.erp.acknowledged(mountain_line)
        assert len(server.posts) == 1  # the second eastcoast message did not knock on a closed door
        mountain_server.erp.clear_acknowledgements()


def test_a_failure_halfway_through_a_message_repeats_only_lines_the_erp_ignores(
    citizen, server: RecordingERPServer
) -> None:
    user, debtor = citizen
    debts = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 2))
    with time_machine.travel(NOW, tick=True) as traveller:
        payment = pay(user.id, debts)
        # In the order they are sent: by the payment line's number (as text, ":10" sorts before ":9").
        first_line, second_line = sorted(_line_ids([payment]), key=lambda line_id: int(line_id.rsplit(":", 1)[1]))
        server.fail_posts(2)  # the first line goes through, the second fails

        assert deliver_due().retried == 1
        traveller.shift(timedelta(minutes=1))
        assert deliver_due().delivered == 1

    by_line = {line_id: [status for posted, status in server.posts if posted == line_id]
               for line_id in (first_line, second_line)}  # fmt: skip
    assert by_line == {first_line: [201, 409], second_line: [500, 201]}  # 409: "already recorded"
    assert server.erp.ack_count == 2
    assert server.recorded_counts() == {first_line: 1, second_line: 1}


def test_a_crash_after_the_erp_booked_but_before_our_commit_is_harmless(citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    debts = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 1))
    payment = pay(user.id, debts)
    (line_id,) = _line_ids([payment])
    assert deliver_due().delivered == 1
    # What a worker killed between the ERP's answer and our COMMIT leaves behind: the row as before.
    db.session.execute(update(OutboxMessage).values(status="pending", attempts=0, delivered_at=None))
    db.session.commit()

    assert deliver_due().delivered == 1

    assert [status for _, status in server.posts] == [201, 409]
    assert server.erp.ack_count == 1 and server.erp.acknowledged(line_id)
    assert _statuses() == [("delivered", 1)]


def test_flask_worker_once_delivers_and_says_what_it_did(app: Flask, citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    payment = pay(user.id, debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, 1)))
    (line_id,) = _line_ids([payment])

    result = app.test_cli_runner().invoke(args=["worker", "--once"])

    assert result.exit_code == 0, result.output
    assert "outbox: 1 delivered, 0 to retry, 0 dead" in result.output
    assert server.erp.acknowledged(line_id)
    quiet = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert (quiet.exit_code, quiet.output) == (0, "")  # nothing happened, nothing printed


def test_flask_outbox_list_and_retry(app: Flask, citizen, server: RecordingERPServer) -> None:
    user, debtor = citizen
    agency = rest_agency(server)
    payment = pay(user.id, debts_known_to_erp(agency, debtor, open_erp_records(server, 1)))
    message_id = db.session.scalar(select(OutboxMessage.id))
    db.session.execute(
        update(OutboxMessage).values(status="dead", attempts=12, last_error="Gave up after 12 attempts.")
    )
    db.session.commit()
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["outbox", "list", "--status", "dead", "--agency", "eastcoast"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.strip().splitlines()
    assert header.split()[:4] == ["ID", "STATUS", "AGENCY", "ATTEMPTS"]
    assert row.split()[:4] == [str(message_id), "dead", "eastcoast", "12"]
    assert f"erp_payment_ack:{payment.reference}:eastcoast" in row
    assert "Gave up after 12 attempts." in row
    assert runner.invoke(args=["outbox", "list", "--status", "pending"]).output == "No outbox messages match.\n"
    unknown = runner.invoke(args=["outbox", "list", "--agency", "atlantis"])
    assert unknown.exit_code == 1 and "There is no agency with the code atlantis." in unknown.output

    retried = runner.invoke(args=["outbox", "retry", str(message_id)])
    assert retried.exit_code == 0, retried.output
    assert f"Outbox message {message_id}" in retried.output
    assert _statuses() == [("pending", 12)]
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0
    assert _statuses() == [("delivered", 13)]
    again = runner.invoke(args=["outbox", "retry", str(message_id)])
    assert again.exit_code == 1 and "already delivered" in again.output


# -- real worker processes --------------------------------------------------------------------------


def _worker_process(database_url: str, instance: Path, *arguments: str) -> subprocess.Popen[str]:
    """`flask worker` in a process of its own, on the test's database."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CIVICPAY_ENV": "testing",
        "CIVICPAY_INSTANCE_PATH": str(instance),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *arguments],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _queue_payments(app: Flask, server: RecordingERPServer, count: int, lines_each: int) -> set[str]:
    """Committed payments of ERP debts, their acknowledgements queued; returns their line ids."""
    with app.app_context():
        debtor, user = DebtorFactory(), UserFactory(notify_email=False)  # ERP acks only: no receipt e-mail
        link(user, debtor)
        debts = debts_known_to_erp(rest_agency(server), debtor, open_erp_records(server, count * lines_each))
        payments = [pay(user.id, debts[i : i + lines_each]) for i in range(0, len(debts), lines_each)]
        return _line_ids(payments)


def test_sigterm_lets_the_worker_finish_the_message_in_hand_then_exit_0(
    app: Flask, committed_db: None, database_url: str, server: RecordingERPServer, tmp_path: Path
) -> None:
    lines = _queue_payments(app, server, count=2, lines_each=1)
    server.delay_seconds = 1.5  # the ERP is slow: the first line is still in flight when we stop
    worker = _worker_process(database_url, tmp_path, "--interval", "0.2")
    try:
        deadline = time.monotonic() + 60  # a liveness bound: a loaded machine starts Python slowly
        while not server.posts and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.posts, "the worker never called the ERP"
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    assert "SIGTERM received" in stderr and "stopped" in stderr
    with app.app_context():
        assert _statuses() == [("delivered", 1), ("pending", 0)]  # the second was never started
    assert server.erp.ack_count == 1 and len(server.posts) == 1
    assert {line_id for line_id, _ in server.posts} < lines


@pytest.mark.postgres_only
def test_two_worker_processes_share_the_queue_and_the_erp_books_each_line_once(
    app: Flask, committed_db: None, database_url: str, server: RecordingERPServer, tmp_path: Path
) -> None:
    lines = _queue_payments(app, server, count=30, lines_each=2)
    server.delay_seconds = 0.05  # a realistic round trip, so the two workers really overlap
    workers = [_worker_process(database_url, tmp_path, "--once", "--batch", "100") for _ in range(2)]
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=30)
            assert worker.returncode == 0, stderr
            outputs.append(stdout)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()

    delivered_by = [int(re.search(r"outbox: (\d+) delivered", out).group(1)) if out else 0 for out in outputs]
    assert sum(delivered_by) == 30
    assert all(count > 0 for count in delivered_by), f"one worker did everything: {delivered_by}"
    with app.app_context():
        assert _statuses() == [("delivered", 1)] * 30  # each message taken by exactly one worker, once
    assert server.post_counts() == {line_id: 1 for line_id in lines}  # 60 lines, 0 duplicates
    assert server.erp.ack_count == 60  # how fast is the benchmarks' business, not this test's
