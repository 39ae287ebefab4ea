"""The texts an agency adds to its payers' e-mails: edited in settings, plain text, limited, audited."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.extensions import db
from tests.factories import AgencyFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.treasury.helpers import sign_in


@pytest.fixture()
def town(client: FlaskClient) -> tuple[int, str]:
    agency = AgencyFactory()
    town = agency.id, agency.code
    sign_in(client, staff_member(agency, "admin"))
    return town


def _post(client: FlaskClient, code: str, **texts: str):
    url = f"/treasury/{code}/settings/emails"
    data = {"csrf_token": csrf_token(client, url), "receipt_note_el": "", "receipt_note_en": "", "refund_note_el": "",
            "refund_note_en": ""}  # fmt: skip
    return client.post(url, data={**data, **texts}, follow_redirects=True)


def _agency(town: tuple[int, str]) -> Agency:
    db.session.expire_all()
    return db.session.get(Agency, town[0])


def test_texts_are_saved_as_plain_text_shown_escaped_and_audited(client: FlaskClient, town: tuple[int, str]) -> None:
    typed = '<b>Για ερωτήσεις</b> καλέστε 210 1234567\r\n"Δευτέρα–Παρασκευή"  '
    response = _post(client, town[1], receipt_note_el=typed, refund_note_en="About refunds: 210 1234567")
    assert response.status_code == 200
    assert "The texts have been saved." in page_text(response)
    agency = _agency(town)
    assert agency.receipt_note_el == '<b>Για ερωτήσεις</b> καλέστε 210 1234567\n"Δευτέρα–Παρασκευή"'
    assert (agency.receipt_note_en, agency.refund_note_el, agency.refund_note_en) == (
        None,
        None,
        "About refunds: 210 1234567",
    )

    page = client.get(f"/treasury/{town[1]}/settings/emails").get_data(as_text=True)
    assert "&lt;b&gt;Για ερωτήσεις&lt;/b&gt;" in page and "<b>Για" not in page  # shown as typed, never as markup
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update"))
    assert sorted(entry.details) == ["receipt_note_el", "refund_note_en"]
    assert entry.details["refund_note_en"] == {"from": None, "to": "About refunds: 210 1234567"}
    audit = page_text(client.get(f"/treasury/{town[1]}/audit"))
    assert "receipt e-mail text in Greek" in audit and "refund e-mail text in English" in audit

    again = _post(client, town[1], receipt_note_el=typed, refund_note_en="About refunds: 210 1234567")
    assert "Nothing was changed." in page_text(again)


def test_a_text_too_long_is_refused_with_an_error_summary(client: FlaskClient, town: tuple[int, str]) -> None:
    response = _post(client, town[1], refund_note_en="x" * 501, receipt_note_en="kept? no: nothing is saved")
    text = page_text(response)
    assert response.status_code == 400
    assert "The texts were not saved. Please correct:" in text
    assert '<a href="#refund_note_en">Use at most 500 characters.</a>' in text
    assert 'aria-describedby="refund_note_en-hint refund_note_en-error"' in text
    assert _agency(town).receipt_note_en is None
    # 500 characters typed with Windows line ends count as what is stored.
    assert _post(client, town[1], refund_note_en=("y" * 99 + "\r\n") * 5).status_code == 200


def test_every_field_has_a_label_and_the_page_links_the_other_settings(
    client: FlaskClient, town: tuple[int, str]
) -> None:
    page = client.get(f"/treasury/{town[1]}/settings/emails").get_data(as_text=True)
    for name in ("receipt_note_el", "receipt_note_en", "refund_note_el", "refund_note_en"):
        assert f'<label for="{name}">' in page
    assert f'href="/treasury/{town[1]}/settings/credentials"' in page
    assert 'aria-current="page">Texts in payers' in page
