"""The operations pages: an agency's sync runs, quarantined records and write-back messages.

Each page lists only the agency's own rows (another agency's ids answer 404); dismissing a
record, retrying the quarantine and retrying a dead message change what they should, write an
audit entry, and are refused to roles below the one they need.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.db import utcnow
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.sync.models import QuarantinedRecord, SyncRun
from app.treasury.operations import services as operations
from tests.factories import AgencyFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.treasury.helpers import MORNING, sign_in

#: A valid Greek AFM (check digit by stdnum.gr.vat).
AFM = "147382606"


def _entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _side(agency: Agency, label: str) -> dict:
    """A run, an open and a dismissed record, and a message in each state, all marked with ``label``."""
    run = SyncRun(
        agency_id=agency.id, kind="full", status="failed", started_at=MORNING - timedelta(minutes=3),
        finished_at=MORNING - timedelta(minutes=1), created=7, updated=3, unchanged=120, closed=2, quarantined=1,
        error=f"ERP of {label} timed out",
    )  # fmt: skip
    db.session.add(run)
    db.session.flush()
    open_record = QuarantinedRecord(
        agency_id=agency.id, sync_run_id=run.id, external_id=f"{label}-OPEN", reason=f"{label}: the tax ID is not valid.",
        raw=json.dumps({"external_id": f"{label}-OPEN", "note": "<script>alert(1)</script>"}),
    )  # fmt: skip
    dismissed = QuarantinedRecord(
        agency_id=agency.id, external_id=f"{label}-OLD", reason=f"{label}: old", raw="not json at all",
        status="dismissed", resolved_at=MORNING, dismissed_reason="A test record",
    )  # fmt: skip
    messages = {
        state: OutboxMessage(
            topic="erp_payment_ack",
            key=f"erp_payment_ack:{label}-{state}:{agency.code}",
            agency_id=agency.id,
            payload={"lines": []},
            status=status,
            attempts=attempts,
            next_attempt_at=MORNING + timedelta(minutes=5),
            last_error=f"{label} {state} error" if attempts else None,
            delivered_at=MORNING if status == "delivered" else None,
        )  # fmt: skip
        for state, status, attempts in (
            ("pending", "pending", 0),
            ("waiting", "pending", 2),
            ("dead", "dead", 12),
            ("delivered", "delivered", 1),
        )
    }
    db.session.add_all([open_record, dismissed, *messages.values()])
    db.session.commit()
    return {
        "agency_id": agency.id, "code": agency.code, "run": run.id, "open": open_record.id, "dismissed": dismissed.id,
        "messages": {state: message.id for state, message in messages.items()}, "label": label,
    }  # fmt: skip


@pytest.fixture()
def home(db_session: None) -> dict:
    return _side(AgencyFactory(), "HOME")


@pytest.fixture()
def other(db_session: None) -> dict:
    return _side(AgencyFactory(), "OTHER")


def _agency(side: dict) -> Agency:
    """The side's agency, read afresh (each test-client request ends the session it was read in)."""
    return db.session.get(Agency, side["agency_id"])


def _signed_in(client: FlaskClient, side: dict, role: str = "admin") -> None:
    sign_in(client, staff_member(_agency(side), role))


def _post(client: FlaskClient, side: dict, path: str, **data: str):
    token = csrf_token(client, f"/treasury/{side['code']}/operations/sync")
    return client.post(f"/treasury/{side['code']}/operations{path}", data={"csrf_token": token, **data})


# -- every page: only this agency's rows ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["view", "refund", "admin"])
def test_each_page_lists_only_the_agencys_own_rows(client: FlaskClient, home: dict, other: dict, role: str) -> None:
    _signed_in(client, home, role)
    pages = {
        "sync": client.get(f"/treasury/{home['code']}/operations/sync"),
        "quarantine": client.get(f"/treasury/{home['code']}/operations/quarantine?status=all"),
        "outbox": client.get(f"/treasury/{home['code']}/operations/outbox"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = page_text(response)
        assert "HOME" in text, name
        assert "OTHER" not in text, f"the {name} page shows another agency's rows"


def test_another_agencys_ids_answer_404(client: FlaskClient, home: dict, other: dict) -> None:
    _signed_in(client, home, "admin")
    base = f"/treasury/{home['code']}/operations"
    assert client.get(f"{base}/quarantine/{other['open']}").status_code == 404
    assert _post(client, home, f"/quarantine/{other['open']}/dismiss", reason="not mine").status_code == 404
    assert _post(client, home, f"/outbox/{other['messages']['dead']}/retry").status_code == 404
    # and nothing of the other agency changed
    assert db.session.get(QuarantinedRecord, other["open"]).status == "open"
    assert db.session.get(OutboxMessage, other["messages"]["dead"]).status == "dead"
    assert _entries("sync.quarantine_dismiss") == [] and _entries("outbox.retry") == []


# -- sync runs ---------------------------------------------------------------------------------------


def test_sync_runs_show_counts_duration_outcome_and_error(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "view")
    text = page_text(client.get(f"/treasury/{home['code']}/operations/sync"))
    for shown in ("Full", "Failed", "ERP of HOME timed out", "120", "2 min 0 s"):
        assert shown in text, shown


def test_sync_runs_are_paged_newest_first_by_keyset(client: FlaskClient, home: dict) -> None:
    agency = _agency(home)
    db.session.add_all(
        SyncRun(
            agency_id=agency.id,
            kind="incremental",
            status="succeeded",
            started_at=MORNING,
            finished_at=MORNING,
            error=f"run number {number:02d}",
        )  # fmt: skip
        for number in range(1, 56)
    )
    db.session.commit()
    first = operations.sync_runs(agency)
    assert [run.error for run in first.rows[:2]] == ["run number 55", "run number 54"]
    assert len(first.rows) == operations.PAGE_SIZE and first.older is not None
    second = operations.sync_runs(agency, before=first.older)
    assert [run.error for run in second.rows] == [f"run number {n:02d}" for n in range(5, 0, -1)] + [
        "ERP of HOME timed out"
    ]
    assert second.older is None

    _signed_in(client, home, "view")
    first_page = page_text(client.get(f"/treasury/{home['code']}/operations/sync"))
    older_link = f'rel="next" href="/treasury/{home["code"]}/operations/sync?before={first.older}"'
    assert 'aria-label="Pages of the sync runs"' in first_page and older_link in first_page
    older_page = page_text(client.get(f"/treasury/{home['code']}/operations/sync?before={first.older}"))
    assert "run number 05" in older_page and "run number 06" not in older_page
    assert 'aria-label="Pages of the sync runs"' not in older_page  # the last page offers no older one


# -- quarantine --------------------------------------------------------------------------------------


def test_quarantine_lists_open_records_unless_asked_for_others(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "view")
    base = f"/treasury/{home['code']}/operations/quarantine"
    open_page = page_text(client.get(base))
    assert "HOME-OPEN" in open_page and "HOME-OLD" not in open_page
    assert "HOME: the tax ID is not valid." in open_page
    dismissed_page = page_text(client.get(f"{base}?status=dismissed"))
    assert "HOME-OLD" in dismissed_page and "HOME-OPEN" not in dismissed_page


def test_a_record_shows_its_payload_escaped_and_readable(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "view")
    html = client.get(f"/treasury/{home['code']}/operations/quarantine/{home['open']}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '"external_id": "HOME-OPEN",\n' in html.replace("&#34;", '"')  # indented JSON, one key a line
    raw = client.get(f"/treasury/{home['code']}/operations/quarantine/{home['dismissed']}").get_data(as_text=True)
    assert "not json at all" in raw and "A test record" in raw


def test_an_administrator_dismisses_a_record_with_a_reason(client: FlaskClient, home: dict) -> None:
    admin = staff_member(_agency(home), "admin")
    sign_in(client, admin)
    response = _post(client, home, f"/quarantine/{home['open']}/dismiss", reason="  Duplicate of   a corrected record ")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/treasury/{home['code']}/operations/quarantine")
    db.session.expire_all()
    dismissed = db.session.get(QuarantinedRecord, home["open"])
    assert (dismissed.status, dismissed.dismissed_reason, dismissed.resolved_by_id) == (
        "dismissed",
        "Duplicate of a corrected record",
        admin.id,
    )
    assert dismissed.resolved_at == MORNING
    [entry] = _entries("sync.quarantine_dismiss")
    assert (entry.agency_id, entry.actor_user_id, entry.subject) == (_agency(home).id, admin.id, "HOME-OPEN")
    assert entry.details == {"record": home["open"], "reason": "Duplicate of a corrected record"}
    assert "The record has been dismissed." in page_text(client.get(response.headers["Location"]))

    again = _post(client, home, f"/quarantine/{home['open']}/dismiss", reason="twice")
    assert again.status_code == 303
    assert "already retried or dismissed" in page_text(client.get(again.headers["Location"]))
    assert len(_entries("sync.quarantine_dismiss")) == 1


def test_a_dismissal_needs_a_reason(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "admin")
    response = _post(client, home, f"/quarantine/{home['open']}/dismiss", reason="   ")
    assert response.status_code == 400
    assert "Say why the record needs no action." in page_text(response)
    assert db.session.get(QuarantinedRecord, home["open"]).status == "open"
    assert _entries("sync.quarantine_dismiss") == []


@pytest.mark.parametrize("role", ["view", "refund"])
def test_staff_below_administrator_see_records_but_cannot_dismiss_or_retry(
    client: FlaskClient, home: dict, role: str
) -> None:
    _signed_in(client, home, role)
    base = f"/treasury/{home['code']}/operations/quarantine"
    assert "Dismiss the record" not in page_text(client.get(f"{base}/{home['open']}"))
    assert "Retry 1 open record" not in page_text(client.get(base))
    # The treasury answers 404 to a role below a route's least role (its one access check).
    assert _post(client, home, f"/quarantine/{home['open']}/dismiss", reason="no").status_code == 404
    assert _post(client, home, "/quarantine/retry").status_code == 404
    assert db.session.get(QuarantinedRecord, home["open"]).status == "open"
    assert _entries("sync.quarantine_dismiss") == [] and _entries("sync.quarantine_retry") == []


def test_retrying_a_push_only_agencys_quarantine_is_explained(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "admin")
    page = page_text(client.get(f"/treasury/{home['code']}/operations/quarantine"))
    assert "sends its debts to Civic Pay" in page and "Retry 1 open record" not in page
    response = _post(client, home, "/quarantine/retry")
    assert response.status_code == 303
    assert "nothing to read again" in page_text(client.get(response.headers["Location"]))
    assert db.session.get(QuarantinedRecord, home["open"]).status == "open"


def _jsonl(path: Path, *records: dict) -> None:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


def _debt(external_id: str, **changes: object) -> dict:
    return {
        "external_id": external_id, "tax_id": AFM, "tax_country": "GR", "debtor_name": "Maria P.",
        "category": "certified", "kind": "property_fee", "description": "Property fee 2025",
        "principal_minor": 12000, "paid_minor": 0, "currency": "EUR", "due_date": "2026-01-31",
        "status": "open", "installments": [],
    } | changes  # fmt: skip


@pytest.fixture()
def reading_agency(db_session: None, tmp_path: Path) -> dict:
    """An agency whose ERP exports a JSON Lines file: one good debt, one with a bad tax ID."""
    export = tmp_path / "export.jsonl"
    _jsonl(export, _debt("GOOD-1"), _debt("BAD-1", tax_id="123"))
    agency = AgencyFactory(connector={"type": "file", "options": {"path": str(export), "format": "jsonl"}})
    return {"agency_id": agency.id, "code": agency.code, "export": export, "label": "FILE"}


def test_an_administrator_retries_the_quarantine_after_the_erp_fixed_a_record(
    client: FlaskClient, reading_agency: dict
) -> None:
    from app.sync.engine import sync_agency

    agency = _agency(reading_agency)
    first = sync_agency(agency, full=True, now=MORNING)
    assert (first.created, first.quarantined) == (1, 1)
    [bad_id] = [record.id for record in operations.quarantine(agency).rows]
    _jsonl(reading_agency["export"], _debt("GOOD-1"), _debt("BAD-1"))  # the ERP corrected the tax ID

    admin = staff_member(agency, "admin")
    sign_in(client, admin)
    assert "Retry 1 open record" in page_text(client.get(f"/treasury/{reading_agency['code']}/operations/quarantine"))
    response = _post(client, reading_agency, "/quarantine/retry")
    assert response.status_code == 303
    assert "The ERP was read again for 1 record: 1 new, 0 updated; 0 still quarantined." in page_text(
        client.get(response.headers["Location"])
    )
    db.session.expire_all()
    retried = db.session.get(QuarantinedRecord, bad_id)
    assert (retried.status, retried.resolved_by_id) == ("retried", admin.id)
    assert operations.open_quarantine_count(_agency(reading_agency)) == 0
    [entry] = _entries("sync.quarantine_retry")
    assert (entry.agency_id, entry.actor_user_id, entry.subject) == (
        reading_agency["agency_id"],
        admin.id,
        reading_agency["code"],
    )
    assert entry.details["records"] == 1 and entry.details["outcome"] == "succeeded" and entry.details["created"] == 1


def test_a_retry_that_cannot_read_the_erp_leaves_the_records_open(client: FlaskClient, reading_agency: dict) -> None:
    from app.sync.engine import sync_agency

    agency = _agency(reading_agency)
    sync_agency(agency, full=True, now=MORNING)
    reading_agency["export"].unlink()  # the export is gone: the ERP cannot be read

    _signed_in(client, reading_agency, "admin")
    response = _post(client, reading_agency, "/quarantine/retry")
    assert response.status_code == 303
    assert "The ERP could not be read, so the records stay open." in page_text(client.get(response.headers["Location"]))
    assert operations.open_quarantine_count(_agency(reading_agency)) == 1
    [entry] = _entries("sync.quarantine_retry")
    assert entry.details == {"records": 1, "outcome": "failed"}
    latest = operations.sync_runs(_agency(reading_agency)).rows[0]
    assert latest.status == "failed" and latest.error


# -- write-back (outbox) --------------------------------------------------------------------------------


def test_the_outbox_page_counts_and_filters_messages_by_state(client: FlaskClient, home: dict) -> None:
    assert operations.outbox_counts(_agency(home)) == {"pending": 1, "waiting": 1, "dead": 1, "delivered": 1}
    _signed_in(client, home, "view")
    base = f"/treasury/{home['code']}/operations/outbox"
    everything = page_text(client.get(base))
    for state in ("pending", "waiting", "dead", "delivered"):
        assert f"HOME-{state}:" in everything
    assert "HOME waiting error" in everything and "HOME dead error" in everything
    dead_only = page_text(client.get(f"{base}?state=dead"))
    assert "HOME-dead:" in dead_only and "HOME-waiting:" not in dead_only
    waiting_only = page_text(client.get(f"{base}?state=waiting"))
    assert "HOME-waiting:" in waiting_only and "HOME-pending:" not in waiting_only


@pytest.mark.parametrize("role", ["refund", "admin"])
def test_refund_staff_and_administrators_retry_a_dead_message(client: FlaskClient, home: dict, role: str) -> None:
    person = staff_member(_agency(home), role)
    sign_in(client, person)
    dead_id = home["messages"]["dead"]
    retry_action = f"/treasury/{home['code']}/operations/outbox/{dead_id}/retry"
    assert retry_action in page_text(client.get(f"/treasury/{home['code']}/operations/outbox?state=dead"))
    response = _post(client, home, f"/outbox/{dead_id}/retry?state=dead")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/treasury/{home['code']}/operations/outbox?state=dead")
    db.session.expire_all()
    message = db.session.get(OutboxMessage, dead_id)
    assert (message.status, message.attempts, message.next_attempt_at) == ("pending", 12, MORNING)
    [entry] = _entries("outbox.retry")
    assert (entry.agency_id, entry.actor_user_id, entry.subject) == (_agency(home).id, person.id, message.key)
    assert entry.details == {"message": dead_id, "topic": "erp_payment_ack", "attempts": 12}
    assert f"Message {dead_id} is queued again" in page_text(client.get(response.headers["Location"]))


def test_only_dead_messages_are_retried_by_hand(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "admin")
    for state in ("pending", "waiting", "delivered"):
        response = _post(client, home, f"/outbox/{home['messages'][state]}/retry")
        assert response.status_code == 303
        assert "not dead any more" in page_text(client.get(response.headers["Location"]))
    assert operations.outbox_counts(_agency(home)) == {"pending": 1, "waiting": 1, "dead": 1, "delivered": 1}
    assert _entries("outbox.retry") == []


def test_a_viewer_sees_dead_messages_but_cannot_retry_them(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "view")
    page = page_text(client.get(f"/treasury/{home['code']}/operations/outbox"))
    assert "HOME-dead:" in page and "/retry" not in page
    assert _post(client, home, f"/outbox/{home['messages']['dead']}/retry").status_code == 404
    assert db.session.get(OutboxMessage, home["messages"]["dead"]).status == "dead"
    assert _entries("outbox.retry") == []


# -- the audit log names the new actions --------------------------------------------------------------------


def test_the_agency_audit_log_shows_operations_in_words(client: FlaskClient, home: dict) -> None:
    _signed_in(client, home, "admin")
    _post(client, home, f"/quarantine/{home['open']}/dismiss", reason="Test record from the ERP vendor")
    _post(client, home, f"/outbox/{home['messages']['dead']}/retry")
    text = page_text(client.get(f"/treasury/{home['code']}/audit"))
    assert "Quarantined record dismissed" in text and "Test record from the ERP vendor" in text
    assert "Write-back message retried" in text and "Payment recorded in the ERP" in text


def test_the_services_refuse_an_empty_reason_and_unknown_views(home: dict) -> None:
    with pytest.raises(operations.OperationRefused):
        operations.dismiss_quarantined(_agency(home), home["open"], " ", user_id=None, now=utcnow())
    with pytest.raises(ValueError):
        operations.quarantine(_agency(home), "everything")
    with pytest.raises(LookupError):
        operations.retry_dead_letter(_agency(home), 10**9, user_id=None, now=utcnow())
