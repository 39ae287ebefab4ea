"""The push API over real HTTP (the Flask test client): tokens, batches, errors, the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.api.models import ApiToken
from app.api.services import create_token, revoke_token
from app.debts.models import Debt
from app.extensions import db, limiter
from app.sync.models import QuarantinedRecord, SyncRun
from tests.factories import AgencyFactory, DebtFactory

URL = "/api/v1/debts"
#: Valid Greek AFMs (check digit by stdnum.gr.vat).
AFM = "090000045"
OTHER_AFM = "094014201"
#: A valid ISO 11649 creditor reference.
RF = "RF18539007547034"


def record(external_id: str = "W-1", **changes: Any) -> dict[str, Any]:
    """A good pushed record, as JSON, with the given fields changed."""
    fields = {
        "external_id": external_id,
        "tax_id": AFM,
        "tax_country": "GR",
        "debtor_name": "Maria Papadopoulou",
        "category": "certified",
        "kind": "water_bill",
        "description": f"Water bill {external_id}",
        "principal_minor": 4250,
        "paid_minor": 0,
        "currency": "EUR",
        "due_date": "2026-03-31",
    }
    fields.update(changes)
    return fields


def without(field: str, **changes: Any) -> dict[str, Any]:
    fields = record(**changes)
    del fields[field]
    return fields


def push(client: FlaskClient, token: str, body: Any) -> Any:
    return client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})


def debt_of(agency_id: int, external_id: str) -> Debt | None:
    db.session.expire_all()
    return db.session.scalar(select(Debt).where(Debt.agency_id == agency_id, Debt.external_id == external_id))


@pytest.fixture()
def agency_id(db_session: None) -> int:
    """The pushing agency's id (rows made here are detached once a request has run)."""
    return AgencyFactory(code="water").id


@pytest.fixture()
def token(agency_id: int) -> str:
    return create_token(agency_id, "water ERP")[1]


# -- upserts and closes -----------------------------------------------------------------------------


def test_push_creates_the_debts_of_the_tokens_agency(client: FlaskClient, agency_id: int, token: str) -> None:
    bystander_id = AgencyFactory(code="town").id
    response = push(client, token, {"upserts": [record("W-1"), record("W-2", principal_minor=990)]})

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["counts"] == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "closed": 0,
        "quarantined": 0,
        "not_found": 0,
        "flagged": 0,
    }
    assert answer["results"] == [
        {"index": 0, "external_id": "W-1", "outcome": "created", "reason": None},
        {"index": 1, "external_id": "W-2", "outcome": "created", "reason": None},
    ]
    second = debt_of(agency_id, "W-2")
    assert second is not None and second.principal_minor == 990 and second.status == "open"
    assert second.debtor.tax_id == AFM
    assert db.session.scalars(select(Debt).where(Debt.agency_id == bystander_id)).all() == []
    run = db.session.get(SyncRun, answer["sync_run"])
    assert (run.agency_id, run.kind, run.status, run.created) == (agency_id, "push", "succeeded", 2)


def test_a_repeated_push_is_unchanged_and_a_changed_record_updated(
    client: FlaskClient, agency_id: int, token: str
) -> None:
    body = {"upserts": [record("W-1"), record("W-2")]}
    push(client, token, body)

    again = push(client, token, body).get_json()
    assert [item["outcome"] for item in again["results"]] == ["unchanged", "unchanged"]
    assert again["counts"]["unchanged"] == 2 and again["counts"]["created"] == 0

    changed = push(client, token, {"upserts": [record("W-1", principal_minor=5000)]}).get_json()
    assert changed["results"][0]["outcome"] == "updated"
    assert debt_of(agency_id, "W-1").principal_minor == 5000


def test_close_paid_at_agency_closes_the_debt(client: FlaskClient, agency_id: int, token: str) -> None:
    push(client, token, {"upserts": [record("W-1"), record("W-2")]})

    answer = push(client, token, {"closes": [{"external_id": "W-1", "reason": "paid_at_agency"}]}).get_json()

    assert answer["results"] == [{"index": 0, "external_id": "W-1", "outcome": "closed", "reason": None}]
    assert answer["counts"]["closed"] == 1
    closed = debt_of(agency_id, "W-1")
    assert (closed.status, closed.closed_reason) == ("paid", "paid_at_agency")
    assert closed.closed_at is not None
    assert debt_of(agency_id, "W-2").status == "open"


def test_close_with_cancelled_cancels_the_debt(client: FlaskClient, agency_id: int, token: str) -> None:
    push(client, token, {"upserts": [record("W-1")]})
    push(client, token, {"closes": [{"external_id": "W-1", "reason": "cancelled"}]})
    assert (debt_of(agency_id, "W-1").status, debt_of(agency_id, "W-1").closed_reason) == ("cancelled", "cancelled")


def test_close_of_an_unknown_debt_is_not_found(client: FlaskClient, agency_id: int, token: str) -> None:
    answer = push(client, token, {"closes": [{"external_id": "NOPE-1", "reason": "cancelled"}]}).get_json()
    [result] = answer["results"]
    assert (result["external_id"], result["outcome"]) == ("NOPE-1", "not_found")
    assert "NOPE-1" in result["reason"]
    assert answer["counts"]["not_found"] == 1


def test_closes_are_numbered_after_the_upserts(client: FlaskClient, agency_id: int, token: str) -> None:
    push(client, token, {"upserts": [record("W-1")]})
    answer = push(
        client,
        token,
        {"upserts": [record("W-2"), record("W-3")], "closes": [{"external_id": "W-1", "reason": "cancelled"}]},
    ).get_json()
    assert [(item["index"], item["external_id"], item["outcome"]) for item in answer["results"]] == [
        (0, "W-2", "created"),
        (1, "W-3", "created"),
        (2, "W-1", "closed"),
    ]


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        pytest.param(record("B-1", principal_minor=-100), "negative", id="negative amount"),
        pytest.param(record("B-1", tax_id="123456789"), "AFM", id="invalid AFM"),
        pytest.param(record("B-1", category="parking"), "category", id="unknown category"),
        pytest.param(record("B-1", due_date="31/03/2026"), "due_date", id="malformed date"),
        pytest.param(without("debtor_name", external_id="B-1"), "debtor_name", id="missing field"),
        pytest.param(record("B-1", principal_minor=42.5), "whole number", id="money as a float"),
        pytest.param(record("B-1", currency="USD"), "currency", id="not the agency's currency"),
        pytest.param(record("G-1", principal_minor=1), "twice", id="duplicate external id in the batch"),
    ],
)
def test_each_bad_record_is_quarantined_while_the_good_ones_are_created(
    client: FlaskClient, agency_id: int, token: str, bad: dict[str, Any], words: str
) -> None:
    response = push(client, token, {"upserts": [record("G-1"), bad, record("G-2")]})

    assert response.status_code == 200
    answer = response.get_json()
    outcomes = [(item["external_id"], item["outcome"]) for item in answer["results"]]
    assert outcomes == [("G-1", "created"), (bad["external_id"], "quarantined"), ("G-2", "created")]
    reason = answer["results"][1]["reason"]
    assert words in reason and reason.endswith(".")
    assert answer["counts"]["quarantined"] == 1 and answer["counts"]["created"] == 2
    assert debt_of(agency_id, "G-1").principal_minor == 4250  # the duplicate did not overwrite the first
    assert debt_of(agency_id, "G-2") is not None and debt_of(agency_id, "B-1") is None
    quarantined = db.session.scalars(
        select(QuarantinedRecord).where(QuarantinedRecord.sync_run_id == answer["sync_run"])
    ).all()
    assert [(row.agency_id, row.external_id, row.reason) for row in quarantined] == [
        (agency_id, bad["external_id"], reason)
    ]


@pytest.mark.parametrize("item", ["W-1", 17, None, ["W-1"], {"installments": 5}])
def test_an_item_that_is_not_a_record_is_quarantined_not_a_crash(
    client: FlaskClient, agency_id: int, token: str, item: object
) -> None:
    answer = push(client, token, {"upserts": [item, record("G-1")]}).get_json()
    assert [result["outcome"] for result in answer["results"]] == ["quarantined", "created"]
    assert answer["results"][0]["external_id"] is None
    assert answer["results"][0]["reason"]


@pytest.mark.parametrize("earlier", [[], [record("R-1", rf_reference=RF)]], ids=["same batch", "earlier push"])
def test_a_record_reusing_another_debts_rf_reference_is_quarantined_not_a_crash(
    client: FlaskClient, agency_id: int, token: str, earlier: list[dict[str, Any]]
) -> None:
    if earlier:
        push(client, token, {"upserts": earlier})
    response = push(
        client, token, {"upserts": [record("R-1", rf_reference=RF), record("R-2", rf_reference=RF), record("G-1")]}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    [first, second, good] = response.get_json()["results"]
    assert first["outcome"] in ("created", "unchanged") and good["outcome"] == "created"
    assert second["outcome"] == "quarantined" and RF in second["reason"]


# -- one agency never writes another's debts --------------------------------------------------------


def test_another_agencys_token_cannot_touch_this_agencys_debts(client: FlaskClient, agency_id: int, token: str) -> None:
    push(client, token, {"upserts": [record("SHARED-1", principal_minor=4250)]})
    mine_id = DebtFactory(agency=db.session.get(Agency, agency_id), external_id="ONLY-A").id
    other_id = AgencyFactory(code="town").id
    other_token = create_token(other_id, "town ERP")[1]

    answer = push(
        client,
        other_token,
        {
            "upserts": [record("SHARED-1", principal_minor=99, tax_id=OTHER_AFM, debtor_name="Someone Else")],
            "closes": [{"external_id": "ONLY-A", "reason": "cancelled"}],
        },
    ).get_json()

    assert [item["outcome"] for item in answer["results"]] == ["created", "not_found"]
    ours, theirs = debt_of(agency_id, "SHARED-1"), debt_of(other_id, "SHARED-1")
    assert theirs is not None and theirs.id != ours.id and theirs.principal_minor == 99
    assert (ours.principal_minor, ours.status, ours.debtor.tax_id) == (4250, "open", AFM)
    assert debt_of(agency_id, "ONLY-A").status == "open" and debt_of(agency_id, "ONLY-A").id == mine_id
    assert db.session.get(SyncRun, answer["sync_run"]).agency_id == other_id


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic d2F0ZXI6c2VjcmV0",
        "Bearer cp_this-token-was-never-made",
        "Token {token}",
        "Bearer {token}x",
    ],
)
def test_a_missing_or_unknown_token_gets_the_same_401(
    client: FlaskClient, token: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization.format(token=token)}
    response = client.post(URL, json={"upserts": [record()]}, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "unauthorized",
        "message": "A valid API token is needed: send it as 'Authorization: Bearer <token>'.",
    }
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in response.get_data(as_text=True)
    assert db.session.scalar(select(Debt)) is None


def test_a_revoked_token_gets_the_same_401(client: FlaskClient, agency_id: int) -> None:
    row, token = create_token(agency_id, "old ERP")
    token_id = row.id
    assert push(client, token, {"upserts": [record("W-1")]}).status_code == 200
    revoke_token(token_id)

    response = push(client, token, {"upserts": [record("W-2")]})

    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    assert debt_of(agency_id, "W-2") is None


def test_the_bearer_scheme_is_case_insensitive(client: FlaskClient, token: str) -> None:
    response = client.post(URL, json={"upserts": [record()]}, headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_a_push_marks_the_token_used_and_never_echoes_it(client: FlaskClient, agency_id: int, token: str) -> None:
    responses = [
        push(client, token, {"upserts": [record("W-1"), record("B-1", category="parking")]}),
        push(client, token, {"upserts": "nope"}),
        client.post(URL, data="x", headers={"Authorization": f"Bearer {token}"}),
    ]
    for response in responses:
        assert token not in response.get_data(as_text=True)
        assert all(token not in value for _, value in response.headers.items())
    db.session.expire_all()
    row = db.session.scalar(select(ApiToken).where(ApiToken.agency_id == agency_id))
    assert row.last_used_at is not None


# -- refused requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"upserts": [', "invalid_json"),
        ("null", "invalid_json"),
        ("[]", "invalid_body"),
        ('{"upserts": {"external_id": "W-1"}}', "invalid_body"),
        ('{"updates": []}', "invalid_body"),
        ('{"closes": [{"external_id": "W-1", "reason": "paid"}]}', "invalid_close"),
        ('{"closes": [{"reason": "cancelled"}]}', "invalid_close"),
    ],
)
def test_a_body_that_is_not_a_push_is_a_400(client: FlaskClient, token: str, body: str, code: str) -> None:
    response = client.post(
        URL, data=body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == code and answer["message"].endswith(".")
    assert db.session.scalar(select(SyncRun)) is None  # nothing was applied


def test_a_bad_close_refuses_the_whole_push(client: FlaskClient, agency_id: int, token: str) -> None:
    response = push(client, token, {"upserts": [record("W-1")], "closes": [{"external_id": "W-1", "reason": "lost"}]})
    assert response.status_code == 400
    assert "paid_at_agency" in response.get_json()["message"]
    assert debt_of(agency_id, "W-1") is None


@pytest.fixture()
def small_batches(app: Flask) -> Iterator[None]:
    app.config["API_MAX_BATCH"] = 3
    try:
        yield
    finally:
        app.config.pop("API_MAX_BATCH")


def test_a_batch_over_the_limit_is_a_413(client: FlaskClient, agency_id: int, token: str, small_batches: None) -> None:
    at_limit = {"upserts": [record("W-1"), record("W-2")], "closes": [{"external_id": "W-1", "reason": "cancelled"}]}
    assert push(client, token, at_limit).status_code == 200

    response = push(client, token, {"upserts": [record(f"X-{n}") for n in range(4)]})

    assert response.status_code == 413
    assert response.get_json()["error"] == "batch_too_large"
    assert "at most 3" in response.get_json()["message"]
    assert debt_of(agency_id, "X-0") is None


def test_a_body_over_the_byte_limit_is_a_413_before_it_is_read(
    client: FlaskClient, agency_id: int, token: str, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "API_MAX_BODY_BYTES", 2000)
    response = push(client, token, {"upserts": [record("W-1", description="x" * 2000)]})
    assert response.status_code == 413 and response.get_json()["error"] == "body_too_large"
    assert push(client, token, {"upserts": [record("W-1")]}).status_code == 200


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ({"upserts": "[]"}, None),  # a form post
        ('{"upserts": []}', "text/plain"),
        ('{"upserts": []}', None),
        ("<debts/>", "application/xml"),
    ],
)
def test_a_body_that_is_not_sent_as_json_is_a_415(
    client: FlaskClient, token: str, data: Any, content_type: str | None
) -> None:
    options = {"content_type": content_type} if content_type else {}
    response = client.post(URL, data=data, headers={"Authorization": f"Bearer {token}"}, **options)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


def test_json_with_a_charset_is_accepted(client: FlaskClient, token: str) -> None:
    response = client.post(
        URL,
        data=json.dumps({"upserts": [record()]}),
        content_type="application/json; charset=utf-8",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200


@pytest.fixture()
def rate_limited(app: Flask) -> Iterator[None]:
    app.config["API_RATE_LIMIT"] = "3 per minute"
    limiter.reset()
    try:
        yield
    finally:
        limiter.reset()
        app.config.pop("API_RATE_LIMIT")


def test_pushes_are_rate_limited_per_token(client: FlaskClient, agency_id: int, token: str, rate_limited: None) -> None:
    statuses = [push(client, token, {"upserts": [record(f"W-{n}")]}).status_code for n in range(4)]

    assert statuses == [200, 200, 200, 429]
    limited = push(client, token, {"upserts": [record("W-9")]})
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "rate_limited"
    assert token not in limited.get_data(as_text=True)
    assert debt_of(agency_id, "W-3") is None and debt_of(agency_id, "W-9") is None
    # Another agency's ERP, from the same address, has its own allowance.
    other_token = create_token(AgencyFactory().id, "town ERP")[1]
    assert push(client, other_token, {"upserts": [record("T-1")]}).status_code == 200


# -- the OpenAPI document ---------------------------------------------------------------------------


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture()
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")  # public: no token
    assert response.status_code == 200 and response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def test_openapi_document_describes_the_push_endpoint(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    post = document["paths"]["/api/v1/debts"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert set(post["responses"]) == {"200", "400", "401", "413", "415", "429"}
    schemas = document["components"]["schemas"]
    fields = schemas["DebtRecord"]["properties"]
    assert fields["principal_minor"]["type"] == "integer" and fields["paid_minor"]["type"] == "integer"
    assert fields["due_date"] == {"type": "string", "format": "date", "examples": ["2026-03-31"]}
    assert fields["category"]["enum"] == ["certified", "settled", "uncertified"]
    assert fields["status"]["enum"] == ["open", "paid", "cancelled"]
    assert schemas["Close"]["properties"]["reason"]["enum"] == ["paid_at_agency", "cancelled"]
    assert set(schemas["DebtRecord"]["required"]) >= {"external_id", "tax_id", "principal_minor", "due_date"}


def test_every_ref_in_the_openapi_document_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert len(refs) >= 10
    for ref in refs:
        assert isinstance(_resolve(document, ref), dict), ref


def test_openapi_document_passes_the_openapi_validator(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is in the dev extra")
    validator.validate(document)


def test_real_answers_match_the_documented_schemas(
    client: FlaskClient, agency_id: int, token: str, document: dict[str, Any]
) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with openapi-spec-validator")
    referencing = pytest.importorskip("referencing")

    registry = referencing.Registry().with_resource(
        "urn:civicpay-openapi", referencing.jsonschema.DRAFT202012.create_resource(document)
    )

    def check(instance: object, schema_name: str) -> None:
        schema = {"$ref": f"urn:civicpay-openapi#/components/schemas/{schema_name}"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)

    good_body = {"upserts": [record("W-1")], "closes": [{"external_id": "NOPE", "reason": "cancelled"}]}
    check(good_body, "PushRequest")
    with pytest.raises(jsonschema.ValidationError):
        check({"upserts": [record("B-1", category="parking")]}, "PushRequest")
    request_body = {**good_body, "upserts": [record("W-1"), "not a record", record("B-1", category="parking")]}
    check(push(client, token, request_body).get_json(), "PushResponse")
    check(push(client, "cp_wrong", request_body).get_json(), "Error")
    check(push(client, token, {"upserts": 1}).get_json(), "Error")


@pytest.fixture()
def production_errors(app: Flask) -> Iterator[None]:
    """Errors handled as in production, where tests would otherwise see the raw exception."""
    app.testing = False
    try:
        yield
    finally:
        app.testing = True


def test_an_unexpected_failure_is_a_json_500(
    client: FlaskClient, token: str, production_errors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api import views

    def broken_push(*args: object) -> None:
        raise RuntimeError("the database went away")

    # A stand-in failure: nothing real fails on demand, and the point is the error's shape.
    monkeypatch.setattr(views, "push_debts", broken_push)
    response = push(client, token, {"upserts": [record()]})

    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"
    assert "database went away" not in response.get_data(as_text=True)
