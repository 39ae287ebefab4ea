"""Card provider credentials: stored encrypted, never shown again nor audited, used by the webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.config import TestingConfig
from app.encryption import decrypt_secret
from app.extensions import db
from app.payments.models import ProviderEvent
from tests.factories import AgencyFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.stripe_server import sign
from tests.treasury.helpers import sign_in

SECRET_KEY = "sk_test_51AgencyOwnKeyABCDEFGHIJKLMNOPQRSTuvwxyz9876"
WEBHOOK_SECRET = "whsec_AgencyOwnSigningSecret0123456789WXYZ"
PLATFORM_WEBHOOK_SECRET = "whsec_PlatformSigningSecret000000000000"


@pytest.fixture()
def town(db_session: None) -> tuple[int, str]:
    agency = AgencyFactory()
    return agency.id, agency.code


@pytest.fixture()
def admin(client: FlaskClient, town: tuple[int, str]) -> FlaskClient:
    sign_in(client, staff_member(db.session.get(Agency, town[0]), "admin"))
    return client


def _reload(town: tuple[int, str]) -> Agency:
    db.session.expire_all()
    return db.session.get(Agency, town[0])


def _save(client: FlaskClient, code: str, **fields: str):
    url = f"/treasury/{code}/settings/credentials"
    data = {
        "csrf_token": csrf_token(client, url),
        "stripe_account": "",
        "stripe_secret_key": "",
        "stripe_webhook_secret": "",
    }
    return client.post(url, data={**data, **fields}, follow_redirects=True)


def _every_trace(client: FlaskClient, code: str) -> str:
    """Everything a person could see of the agency afterwards: its pages, its audit log and export."""
    pages = [f"/treasury/{code}/settings/credentials", f"/treasury/{code}/settings", f"/treasury/{code}/audit",
             f"/treasury/{code}/audit.csv"]  # fmt: skip
    return "\n".join(client.get(page).get_data(as_text=True) for page in pages)


def test_saved_secrets_are_encrypted_and_never_shown_or_audited(admin: FlaskClient, town: tuple[int, str]) -> None:
    response = _save(admin, town[1], stripe_account="acct_1AgencyOwn", stripe_secret_key=SECRET_KEY,
                     stripe_webhook_secret=WEBHOOK_SECRET)  # fmt: skip
    assert response.status_code == 200
    assert "The credentials have been saved." in page_text(response)
    for secret in (SECRET_KEY, WEBHOOK_SECRET):
        assert secret not in response.get_data(as_text=True)

    agency = _reload(town)
    assert agency.stripe_account == "acct_1AgencyOwn"
    assert SECRET_KEY not in agency.stripe_secret_key_encrypted  # stored encrypted ...
    assert (
        decrypt_secret(agency.stripe_secret_key_encrypted, key=TestingConfig.SECRET_KEY) == SECRET_KEY
    )  # ... and readable by the server
    assert decrypt_secret(agency.stripe_webhook_secret_encrypted, key=TestingConfig.SECRET_KEY) == WEBHOOK_SECRET

    page = page_text(admin.get(f"/treasury/{town[1]}/settings/credentials"))
    assert "ends in …9876." in page and "ends in …WXYZ." in page  # the last four characters at most
    assert 'value="acct_1AgencyOwn"' in page  # the account ID is not a secret

    traces = _every_trace(admin, town[1])
    entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "settings.credentials")))
    assert len(entries) == 1
    assert entries[0].details["stripe_webhook_secret"] == {"secret": "set"}
    logged = json.dumps([entry.details for entry in entries])
    for secret in (SECRET_KEY, WEBHOOK_SECRET):
        assert secret not in traces and secret not in logged
        for length in (8, 12):  # nor a telling piece of it
            assert secret[8 : 8 + length] not in traces and secret[8 : 8 + length] not in logged
    assert "webhook signing secret: set" in traces


def test_an_empty_secret_field_keeps_the_saved_secret_and_remove_forgets_it(
    admin: FlaskClient, town: tuple[int, str]
) -> None:
    _save(admin, town[1], stripe_webhook_secret=WEBHOOK_SECRET)
    stored = _reload(town).stripe_webhook_secret_encrypted
    response = _save(admin, town[1], stripe_account="acct_1AgencyOwn")
    assert _reload(town).stripe_webhook_secret_encrypted == stored

    url = f"/treasury/{town[1]}/settings/credentials/remove"
    token = csrf_token(admin, f"/treasury/{town[1]}/settings/credentials")
    assert 'name="credential" value="stripe_webhook_secret"' in admin.get(
        f"/treasury/{town[1]}/settings/credentials"
    ).get_data(as_text=True)
    removed = admin.post(url, data={"csrf_token": token, "credential": "stripe_webhook_secret"}, follow_redirects=True)
    assert removed.status_code == 200 and "Removed." in page_text(removed)
    agency = _reload(town)
    assert (
        agency.stripe_webhook_secret_encrypted,
        agency.stripe_webhook_secret_hint,
        agency.stripe_webhook_secret_set_at,
    ) == (None, None, None)
    assert "Not set: webhooks must be signed with the platform" in page_text(removed)
    details = [
        entry.details
        for entry in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "settings.credentials").order_by(AuditEntry.id)
        )
    ]
    assert details[-1] == {"stripe_webhook_secret": {"secret": "removed"}}
    assert response.status_code == 200
    assert admin.post(url, data={"csrf_token": token, "credential": "password"}).status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stripe_account", "acct 123"),
        ("stripe_secret_key", "pk_test_123456789"),
        ("stripe_webhook_secret", "secret123456"),
    ],
)
def test_a_value_that_is_not_stripes_is_refused_with_a_summary(
    admin: FlaskClient, town: tuple[int, str], field: str, value: str
) -> None:
    response = _save(admin, town[1], **{field: value})
    text = page_text(response)
    assert response.status_code == 400
    assert "The credentials were not saved. Please correct:" in text
    assert f'href="#{field}"' in text
    assert value not in text or field == "stripe_account"  # a mistyped secret is not echoed back either
    assert _reload(town).stripe_account is None


def test_the_page_says_when_the_environment_sets_the_secret(
    app: Flask, admin: FlaskClient, town: tuple[int, str]
) -> None:
    name = f"STRIPE_WEBHOOK_SECRET_{town[1].upper()}"
    app.config[name] = "whsec_FromTheEnvironment000000"
    try:
        text = page_text(admin.get(f"/treasury/{town[1]}/settings/credentials"))
    finally:
        del app.config[name]
    assert f"Set in the server's environment ({name})" in text
    assert "FromTheEnvironment" not in text


@pytest.fixture()
def stripe_configured(app: Flask) -> Iterator[None]:
    """The platform's keys as a Stripe deployment has them (no call reaches Stripe in these tests)."""
    saved = {name: app.config.get(name) for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")}
    app.config.update(STRIPE_SECRET_KEY="sk_test_platform00000000", STRIPE_WEBHOOK_SECRET=PLATFORM_WEBHOOK_SECRET)
    yield
    app.config.update(saved)


def _webhook(client: FlaskClient, code: str, secret: str, event_id: str):
    # An event type the portal does not act on: the answer shows whether the signature passed.
    payload = json.dumps({"id": event_id, "type": "customer.created", "data": {"object": {}}}).encode()
    return client.post(f"/webhooks/stripe/{code}", data=payload,
                       headers={"Stripe-Signature": sign(payload, secret), "Content-Type": "application/json"})  # fmt: skip


def test_a_webhook_signed_with_the_agencys_stored_secret_is_accepted(
    admin: FlaskClient, town: tuple[int, str], stripe_configured: None
) -> None:
    other = AgencyFactory()
    other_code = other.code
    assert _webhook(admin, town[1], PLATFORM_WEBHOOK_SECRET, "evt_platform").status_code == 200  # nothing stored yet
    _save(admin, town[1], stripe_webhook_secret=WEBHOOK_SECRET)

    accepted = _webhook(admin, town[1], WEBHOOK_SECRET, "evt_agency")
    assert accepted.status_code == 200 and accepted.json["received"] is True
    assert db.session.get(ProviderEvent, "evt_agency").agency_id == town[0]
    # Once the agency has its own secret, the platform's no longer signs for its endpoint ...
    assert _webhook(admin, town[1], PLATFORM_WEBHOOK_SECRET, "evt_old").status_code == 400
    # ... and the agency's secret signs for no other agency's endpoint.
    assert _webhook(admin, other_code, WEBHOOK_SECRET, "evt_elsewhere").status_code == 400
    assert _webhook(admin, other_code, PLATFORM_WEBHOOK_SECRET, "evt_other").status_code == 200
