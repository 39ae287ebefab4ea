"""The checkout pages: tampering, expiry and declines give a clear message and change nothing."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.checkout.models import Quote
from app.debts.models import Debt
from app.extensions import db
from app.payments.models import Payment
from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import csrf_token, log_in, page_text

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)  # 10:00 in Athens


@pytest.fixture(autouse=True)
def _morning():
    """Freeze the clock before logging in: a session signed in the future would be refused."""
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


@pytest.fixture()
def maria(client: FlaskClient):
    debtor, user = DebtorFactory(), UserFactory(language="en")
    link(user, debtor)
    agency = AgencyFactory()
    late = DebtFactory(agency=agency, debtor=debtor, principal_minor=12000, due_date=date(2026, 1, 31))
    future = DebtFactory(agency=agency, debtor=debtor, principal_minor=3000, due_date=date(2026, 5, 31))
    ids = (late.id, future.id)  # plain ids: each request ends the session and detaches objects
    log_in(client, user.email, PASSWORD)
    return ids


def select_debts(client: FlaskClient, keys: list[str], **extra: str):
    data = {"item": keys, "csrf_token": csrf_token(client, "/debts"), **extra}
    return client.post("/checkout", data=data)


def pay(client: FlaskClient, review_url: str, number: str = "4242 4242 4242 4242", **extra: str):
    data = {"holder": "Maria P", "number": number, "expiry": "12/30", "cvc": "123"}
    data.update(extra)
    data["csrf_token"] = csrf_token(client, review_url)
    return client.post(review_url + "/pay", data=data)


def test_amounts_sent_by_the_browser_are_ignored(client: FlaskClient, maria) -> None:
    late, _future = maria
    response = select_debts(client, [f"d{late}"], amount="1", total_minor="1", total="0.01")
    assert response.status_code == 303
    review_url = response.headers["Location"]
    assert "121,75 €" in page_text(client.get(review_url)) or "€121.75" in page_text(client.get(review_url))
    paid = pay(client, review_url, amount_minor="1", total_minor="1")
    assert paid.status_code == 303
    payment = db.session.scalars(select(Payment)).one()
    assert payment.amount_minor == 12175  # 120,00 € + 2 months × 0.73 %


def test_a_tampered_debt_id_gets_a_message_and_no_quote(client: FlaskClient, maria) -> None:
    strangers = DebtFactory(debtor=DebtorFactory(), description="Somebody else fee")
    response = select_debts(client, [f"d{strangers.id}"])
    assert response.headers["Location"].endswith("/debts")
    dashboard = page_text(client.get("/debts"))
    assert "is no longer open or is not yours" in dashboard
    assert "Somebody else fee" not in dashboard
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 0


def test_selecting_nothing_asks_to_select(client: FlaskClient, maria) -> None:
    response = select_debts(client, [])
    assert response.status_code == 303
    assert "Select at least one debt to pay." in page_text(client.get("/debts"))


def test_an_expired_quote_is_refused_and_nothing_is_charged(client: FlaskClient, maria) -> None:
    late, _future = maria
    with time_machine.travel(datetime(2026, 3, 1, 21, 50, tzinfo=UTC), tick=False):  # 23:50 Athens
        review_url = select_debts(client, [f"d{late}"]).headers["Location"]
        form_page = client.get(review_url)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form_page.get_data(as_text=True)).group(1)
    with time_machine.travel(datetime(2026, 3, 1, 22, 5, tzinfo=UTC), tick=False):  # 00:05 next day
        response = client.post(
            review_url + "/pay",
            data={"holder": "M", "number": "4242424242424242", "expiry": "12/30", "cvc": "123", "csrf_token": token},
        )
        assert response.status_code == 409
        assert "this summary has expired" in page_text(response)
        assert "this summary has expired" in page_text(client.get(review_url))
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    assert db.session.get(Debt, late).status == "open"


def test_a_declined_card_says_so_and_the_debt_stays_open(client: FlaskClient, maria) -> None:
    late, _future = maria
    review_url = select_debts(client, [f"d{late}"]).headers["Location"]
    response = pay(client, review_url, number="4000 0000 0000 0002")
    assert response.status_code == 402
    assert "The card was declined by the bank. Nothing was charged." in page_text(response)
    stored = db.session.get(Debt, late)
    assert (stored.status, stored.pending_payment_id) == ("open", None)
    assert pay(client, review_url).status_code == 303  # retry with a good card works


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("number", "4242 4242 4242 4241", "This card number is not valid"),
        ("expiry", "13/30", "Enter the expiry date as MM/YY"),
        ("expiry", "01/20", "This card has expired."),
        ("cvc", "12", "3 or 4 digits"),
    ],
)
def test_card_form_errors_are_sentences_and_charge_nothing(
    client: FlaskClient, maria, field: str, value: str, message: str
) -> None:
    late, _future = maria
    review_url = select_debts(client, [f"d{late}"]).headers["Location"]
    response = pay(client, review_url, **{field: value})
    assert response.status_code == 400
    assert message in page_text(response)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_the_spine_through_the_pages(client: FlaskClient, maria) -> None:
    late, future = maria
    dashboard = page_text(client.get("/debts"))
    assert "2 months late × 0.73 % of €120.00" in dashboard
    review_url = select_debts(client, [f"d{late}", f"d{future}"]).headers["Location"]
    review = page_text(client.get(review_url))
    assert "€151.75" in review  # 121,75 € + 30,00 €
    receipt_url = pay(client, review_url).headers["Location"]
    receipt = page_text(client.get(receipt_url))
    assert "Payment successful" in receipt and "Paid" in receipt
    reference = receipt_url.rsplit("/", 1)[1]
    assert reference in page_text(client.get("/payments"))
    assert f'value="d{late}"' not in page_text(client.get("/debts"))


def test_forms_without_a_csrf_token_are_refused(client: FlaskClient, maria) -> None:
    late, _future = maria
    response = client.post("/checkout", data={"item": [f"d{late}"]})
    assert response.status_code == 400
    assert "This form has expired" in page_text(response)
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 0
