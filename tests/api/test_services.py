"""API tokens at rest and reading pushed bodies, without HTTP."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask
from sqlalchemy import select, text

from app.api.models import ApiToken
from app.api.services import (
    PushRequestError,
    authenticate_token,
    create_token,
    read_push_request,
    revoke_token,
    tokens_of,
)
from app.extensions import db
from erp_connectors.base import DebtRecord, RecordError
from tests.factories import AgencyFactory

GOOD_RECORD = {
    "external_id": "W-1",
    "tax_id": "090000045",
    "tax_country": "GR",
    "debtor_name": "Maria Papadopoulou",
    "category": "certified",
    "kind": "water_bill",
    "description": "Water, Q1 2026",
    "principal_minor": 4250,
    "paid_minor": 0,
    "currency": "EUR",
    "due_date": "2026-03-31",
}


def test_token_is_stored_only_as_its_hash_and_prefix(db_session: None) -> None:
    agency = AgencyFactory()
    row, token = create_token(agency.id, "water ERP")
    assert token.startswith("cp_") and len(token) > 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:8]
    # Every column of every token row, read back raw: the token appears in none of them.
    rows = db.session.execute(text("SELECT * FROM api_tokens")).all()
    assert rows
    for raw in rows:
        assert all(token not in str(value) for value in raw)


def test_each_token_is_different(db_session: None) -> None:
    agency = AgencyFactory()
    tokens = {create_token(agency.id, f"erp {n}")[1] for n in range(5)}
    assert len(tokens) == 5


def test_authenticate_finds_the_token_and_marks_it_used(db_session: None) -> None:
    agency = AgencyFactory()
    row, token = create_token(agency.id, "water ERP")
    assert row.last_used_at is None
    found = authenticate_token(token)
    assert found is not None and found.id == row.id and found.agency_id == agency.id
    assert db.session.get(ApiToken, row.id).last_used_at is not None


@pytest.mark.parametrize(
    "attempt",
    ["", "cp_", "cp_not-a-real-token", "nonsense", "CP_{token}", "{token}x", " {token}", "{hash}"],
)
def test_authenticate_refuses_anything_but_the_exact_token(db_session: None, attempt: str) -> None:
    agency = AgencyFactory()
    row, token = create_token(agency.id, "water ERP")
    guess = attempt.format(token=token[3:] if attempt.startswith("CP_") else token, hash=row.token_hash)
    assert authenticate_token(guess) is None


def test_revoked_token_is_refused_and_listed_as_revoked(db_session: None) -> None:
    agency = AgencyFactory()
    row, token = create_token(agency.id, "old ERP")
    revoked = revoke_token(row.id)
    assert revoked.revoked_at is not None
    assert authenticate_token(token) is None
    first_revocation = revoked.revoked_at
    assert revoke_token(row.id).revoked_at == first_revocation  # revoking again changes nothing
    assert [listed.id for listed in tokens_of(agency.id)] == [row.id]


def test_revoking_an_unknown_token_says_so(db_session: None) -> None:
    with pytest.raises(LookupError, match="no API token with id 999999"):
        revoke_token(999999)


def test_tokens_are_listed_per_agency(db_session: None) -> None:
    water, town = AgencyFactory(), AgencyFactory()
    create_token(water.id, "water")
    create_token(town.id, "town")
    assert [row.name for row in tokens_of(water.id)] == ["water"]
    assert db.session.scalar(select(ApiToken).where(ApiToken.name == "town")).agency_id == town.id


def test_read_push_request_turns_bad_records_into_record_errors() -> None:
    push = read_push_request(
        {
            "upserts": [GOOD_RECORD, {**GOOD_RECORD, "due_date": "31/03/2026"}, "not an object", 7],
            "closes": [{"external_id": "W-9", "reason": "cancelled"}],
        },
        max_batch=10,
    )
    assert isinstance(push.upserts[0], DebtRecord)
    assert all(isinstance(item, RecordError) for item in push.upserts[1:])
    assert "due_date" in push.upserts[1].reason
    assert push.closes == [("W-9", "cancelled")]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([GOOD_RECORD], 400, "invalid_body"),
        ("upserts", 400, "invalid_body"),
        ({}, 400, "invalid_body"),
        ({"upsert": [GOOD_RECORD]}, 400, "invalid_body"),
        ({"upserts": GOOD_RECORD}, 400, "invalid_body"),
        ({"closes": "W-1"}, 400, "invalid_body"),
        ({"closes": ["W-1"]}, 400, "invalid_close"),
        ({"closes": [{"external_id": "W-1"}]}, 400, "invalid_close"),
        ({"closes": [{"external_id": "W-1", "reason": "paid"}]}, 400, "invalid_close"),
        ({"closes": [{"external_id": "", "reason": "cancelled"}]}, 400, "invalid_close"),
        (
            {"upserts": [GOOD_RECORD] * 3, "closes": [{"external_id": "W-1", "reason": "cancelled"}]},
            413,
            "batch_too_large",
        ),
    ],
)
def test_read_push_request_refuses_unusable_bodies(body: object, status: int, code: str) -> None:
    with pytest.raises(PushRequestError) as raised:
        read_push_request(body, max_batch=3)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.message.endswith(".")


# -- `flask api token ...`: the same services from the command line -----------------------------------


def test_cli_creates_a_token_shows_it_once_and_lists_it_by_prefix(app: Flask, db_session: None) -> None:
    agency_id = AgencyFactory(code="water").id
    runner = app.test_cli_runner()

    created = runner.invoke(args=["api", "token", "create", "--agency", "water", "--name", "nightly push"])

    assert created.exit_code == 0, created.output
    token = next(word for word in created.output.split() if word.startswith("cp_"))
    assert "not stored" in created.output and "cannot be shown again" in created.output
    assert authenticate_token(token).agency_id == agency_id
    listed = runner.invoke(args=["api", "token", "list", "--agency", "water"])
    assert listed.exit_code == 0, listed.output
    assert token[:8] in listed.output and "nightly push" in listed.output
    assert token not in listed.output


def test_cli_revokes_a_token(app: Flask, db_session: None) -> None:
    row, token = create_token(AgencyFactory(code="water").id, "old ERP")
    token_id = row.id
    runner = app.test_cli_runner()

    revoked = runner.invoke(args=["api", "token", "revoke", str(token_id)])

    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.output
    assert authenticate_token(token) is None
    listed = runner.invoke(args=["api", "token", "list", "--agency", "water"])
    assert "never" in listed.output and " no " not in listed.output  # last used: never; revoked: a date


@pytest.mark.parametrize(
    "args",
    [
        ["api", "token", "create", "--agency", "atlantis", "--name", "x"],
        ["api", "token", "list", "--agency", "atlantis"],
    ],
)
def test_cli_names_an_unknown_agency(app: Flask, db_session: None, args: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0 and "No agency with code atlantis" in result.output


def test_cli_names_an_unknown_token(app: Flask, db_session: None) -> None:
    result = app.test_cli_runner().invoke(args=["api", "token", "revoke", "999999"])
    assert result.exit_code != 0 and "no API token with id 999999" in result.output


def test_a_push_that_fails_leaves_a_failed_run_and_none_of_its_work(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api import services
    from app.debts.models import Debt
    from app.sync.models import SyncRun

    agency = AgencyFactory()
    row, _token = create_token(agency.id, "water ERP")
    db.session.commit()  # as the push request finds it: created by an earlier command
    apply_push = services.apply_push

    def apply_then_break(*args: object) -> None:
        apply_push(*args)  # the debts are written, then something unforeseen goes wrong
        raise RuntimeError("the disk is full")

    # A stand-in failure: nothing real fails on demand in the middle of a push.
    monkeypatch.setattr(services, "apply_push", apply_then_break)
    with pytest.raises(RuntimeError):
        services.push_debts(row, read_push_request({"upserts": [GOOD_RECORD]}, max_batch=10))

    runs = db.session.scalars(select(SyncRun).where(SyncRun.agency_id == agency.id)).all()
    assert [(run.kind, run.status, run.error) for run in runs] == [("push", "failed", "RuntimeError: the disk is full")]
    assert db.session.scalars(select(Debt).where(Debt.agency_id == agency.id)).all() == []
