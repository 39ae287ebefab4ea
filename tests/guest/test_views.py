"""Guests pay a debt by its payment code and a check detail: the pages, the money, the privacy."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.checkout.models import Quote
from app.checkout.services import quote_debts
from app.debts.models import Debt, Installment
from app.domain.references import format_rf, rf_for_debt
from app.extensions import db
from app.payments.models import Payment
from tests.factories import AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link
from tests.guest.steps import (
    DEBTOR_NAME,
    MORNING,
    TAX_ID,
    look_up,
    pay,
    receipt_path,
    review_path,
)
from tests.helpers import csrf_token, page_text
from tests.mail.smtp import SMTPServer


@pytest.fixture()
def parking_fine(client: FlaskClient) -> Debt:
    """A traffic fine whose agency asks for the vehicle plate, written in Greek capitals."""
    agency = AgencyFactory(guest_second_factor={"default": "tax_id_last4", "traffic_fine": "plate"})
    return DebtFactory(
        agency=agency,
        debtor=DebtorFactory(tax_id=TAX_ID, name=DEBTOR_NAME),
        kind="traffic_fine",
        category="uncertified",
        description="Parking in a disabled bay",
        principal_minor=8000,
        due_date=date(2026, 3, 20),
        vehicle_plate="ΙΚΑ 1234",
    )


def unknown_code() -> str:
    """A well-formed RF reference that no debt has."""
    return format_rf(rf_for_debt("nowhere", "NO-SUCH-DEBT"))


def _comparable(response, code: str) -> str:
    """The page without what the visitor typed as the code and without the CSRF token."""
    html = response.get_data(as_text=True)
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', 'name="csrf_token"', html)
    return html.replace(f'value="{code}"', 'value=""')


# -- paying ---------------------------------------------------------------------------------------


def test_a_guest_pays_by_rf_code_and_tax_id_digits_in_three_screens(client: FlaskClient, property_fee: Debt) -> None:
    debt_id = property_fee.id
    typed_code = format_rf(property_fee.rf_reference).lower()  # as copied from a notice, spaces and all
    review = review_path(look_up(client, typed_code, "2606"))

    page = page_text(client.get(review))
    assert property_fee.agency.name_en in page
    assert "Property fee" in page and "Property fee, 14 Aegean Street" in page
    assert "€120.00" in page and "€1.75" in page and "€121.75" in page
    assert "2 months late × 0.73 % of €120.00" in page  # the dashboard's explanation
    assert "E-mail for a copy of the receipt (optional)" in page

    receipt = receipt_path(pay(client, review))
    page = page_text(client.get(receipt))
    assert "Payment successful" in page and "Paid" in page and "€121.75" in page

    payment = db.session.scalars(select(Payment)).one()
    assert (payment.channel, payment.user_id, payment.amount_minor, payment.status) == (
        "guest",
        None,
        12175,
        "succeeded",
    )
    assert db.session.get(Debt, debt_id).status == "paid"
    pdf = client.get(receipt + "/receipt.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize("typed_plate", ["ika-1234", "IKA 1234", "ΙΚΑ1234", "ικα 1234", "ΙKΑ-1234"])
def test_a_parking_fine_is_found_by_its_plate_in_either_alphabet(
    client: FlaskClient, parking_fine: Debt, typed_plate: str
) -> None:
    review = review_path(look_up(client, parking_fine.rf_reference, typed_plate))
    page = page_text(client.get(review))
    assert "Traffic fine" in page and "Parking in a disabled bay" in page and "€80.00" in page
    assert client.get(receipt_path(pay(client, review))).status_code == 200


def test_a_parking_fine_refuses_the_tax_id_when_the_agency_asks_for_the_plate(
    client: FlaskClient, parking_fine: Debt
) -> None:
    response = look_up(client, parking_fine.rf_reference, "2606")
    assert response.status_code == 400
    assert "We could not find a debt with this payment code and check detail." in page_text(response)


@pytest.mark.parametrize("typed_amount", ["120,00", "120.00", "120", "€ 120,00"])
def test_a_debt_is_found_by_its_amount_where_the_agency_asks_for_it(client: FlaskClient, typed_amount: str) -> None:
    agency = AgencyFactory(guest_second_factor={"default": "amount"})
    debt = DebtFactory(agency=agency, principal_minor=12000)
    review = review_path(look_up(client, debt.rf_reference, typed_amount))
    assert client.get(receipt_path(pay(client, review))).status_code == 200
    assert look_up(client, DebtFactory(agency=agency).rf_reference, "120,01").status_code == 400


def test_the_notice_link_fills_in_the_code(client: FlaskClient, parking_fine: Debt) -> None:
    page = page_text(client.get(f"/pay/{parking_fine.rf_reference}"))
    assert f'value="{format_rf(parking_fine.rf_reference)}"' in page
    assert 'action="/pay"' in page


def test_a_settled_debt_offers_only_its_next_open_installment(client: FlaskClient) -> None:
    debt = DebtFactory(debtor=DebtorFactory(tax_id=TAX_ID), category="settled", principal_minor=15000, paid_minor=5000)
    InstallmentFactory(debt=debt, number=1, amount_minor=5000, paid_minor=5000, status="paid")
    second = InstallmentFactory(debt=debt, number=2, amount_minor=5000, due_date=date(2026, 4, 30))
    InstallmentFactory(debt=debt, number=3, amount_minor=5000, due_date=date(2026, 5, 31))
    second_id = second.id
    review = review_path(look_up(client, debt.rf_reference, "2606"))
    page = page_text(client.get(review))
    assert "installment 2" in page and "installment 3" not in page
    assert "€50.00" in page
    pay(client, review)
    assert db.session.get(Installment, second_id).status == "paid"


def test_a_debt_the_agency_keeps_offline_says_to_pay_at_the_agency(client: FlaskClient) -> None:
    agency = AgencyFactory(online_kinds=["water_bill"])
    debt = DebtFactory(agency=agency, debtor=DebtorFactory(tax_id=TAX_ID), description="Market stall 27")
    response = look_up(client, debt.rf_reference, "2606")
    assert response.status_code == 200
    page = page_text(response)
    assert "“Market stall 27” cannot be paid online. Please pay it at " + agency.name_en in page
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 0


def test_a_paid_debt_has_nothing_to_pay(client: FlaskClient) -> None:
    debt = DebtFactory(debtor=DebtorFactory(tax_id=TAX_ID), paid_minor=12000, status="paid")
    response = look_up(client, debt.rf_reference, "2606")
    assert "There is nothing left to pay on this payment code" in page_text(response)


def test_an_e_mail_copy_of_the_receipt_with_the_pdf(
    client: FlaskClient, property_fee: Debt, mailbox: SMTPServer
) -> None:
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    receipt = receipt_path(pay(client, review, email="Guest@Example.org"))
    assert "A copy of the receipt is on its way to Guest@Example.org." in page_text(client.get(receipt))
    mail = mailbox.only("Guest@Example.org")
    reference = receipt.rsplit("/", 1)[1]
    assert reference in mail.subject
    assert "€121.75" in mail.text and "/receipts/verify/" in mail.text
    attachments = list(mail.message.iter_attachments())
    assert [part.get_filename() for part in attachments] == [f"receipt-{reference}.pdf"]
    assert attachments[0].get_content().startswith(b"%PDF-")
    assert DEBTOR_NAME not in mail.text
    assert db.session.scalars(select(Quote)).one().payer_email == "guest@example.org"


# -- anti-enumeration -----------------------------------------------------------------------------


def test_a_wrong_code_and_a_wrong_check_detail_get_the_same_answer(client: FlaskClient, property_fee: Debt) -> None:
    right_code = format_rf(property_fee.rf_reference)
    wrong_code = unknown_code()
    wrong_factor = look_up(client, right_code, "9999")
    no_such_code = look_up(client, wrong_code, "9999")
    malformed_code = look_up(client, "RF00 NOT A CODE", "9999")
    assert wrong_factor.status_code == no_such_code.status_code == malformed_code.status_code == 400
    assert _comparable(wrong_factor, right_code) == _comparable(no_such_code, wrong_code)
    assert _comparable(wrong_factor, right_code) == _comparable(malformed_code, "RF00 NOT A CODE")


def test_both_failures_run_the_same_sql_statements(app, client: FlaskClient, property_fee: Debt) -> None:
    """The same statements, in the same order, whether the code exists or not: the same timing class."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        # Savepoint names count up through the test's transaction; the statements are what matter.
        statements.append(re.sub(r"sa_savepoint_\d+", "sa_savepoint", re.sub(r"\s+", " ", statement)))

    engine = db.engine_of(app)
    right_code, wrong_code = property_fee.rf_reference, rf_for_debt("nowhere", "NO-SUCH-DEBT")
    traces = []
    for code in (right_code, wrong_code, right_code, wrong_code):
        token = csrf_token(client, "/pay")
        statements.clear()
        event.listen(engine, "before_cursor_execute", record)
        try:
            response = client.post("/pay", data={"code": code, "factor": "9999", "csrf_token": token})
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert response.status_code == 400
        traces.append(list(statements))
    assert traces[0] == traces[1] and traces[2] == traces[3]
    assert any("guest_lookup_failures" in statement for statement in traces[0])


def test_both_failures_take_at_least_the_configured_time(
    client: FlaskClient, property_fee: Debt, set_limits: Callable[..., None]
) -> None:
    import time

    set_limits(GUEST_LOOKUP_MIN_SECONDS=0.3)
    durations = {}
    with time_machine.travel(MORNING, tick=True):
        for name, code in (("wrong factor", property_fee.rf_reference), ("wrong code", unknown_code())):
            token = csrf_token(client, "/pay")
            started = time.monotonic()
            response = client.post("/pay", data={"code": code, "factor": "9999", "csrf_token": token})
            durations[name] = time.monotonic() - started
            assert response.status_code == 400
    assert all(seconds >= 0.3 for seconds in durations.values()), durations
    assert abs(durations["wrong factor"] - durations["wrong code"]) < 0.2, durations


def test_lookups_are_rate_limited_per_address(client: FlaskClient, set_limits: Callable[..., None]) -> None:
    set_limits(GUEST_LOOKUP_RATE_LIMIT="3 per hour")
    codes = [format_rf(rf_for_debt("nowhere", f"N{number}")) for number in range(5)]
    statuses = [look_up(client, code, "1234").status_code for code in codes[:4]]
    assert statuses == [400, 400, 400, 429]
    assert look_up(client, codes[4], "1234", REMOTE_ADDR="192.0.2.9").status_code == 400  # another address
    assert client.get("/pay").status_code == 200  # only look-ups are limited


def test_lookups_are_rate_limited_per_code_from_any_address(
    client: FlaskClient, property_fee: Debt, set_limits: Callable[..., None]
) -> None:
    set_limits(GUEST_LOOKUP_CODE_RATE_LIMIT="2 per hour", GUEST_LOCK_AFTER=100)
    spellings = [property_fee.rf_reference, format_rf(property_fee.rf_reference).lower(), property_fee.rf_reference]
    statuses = [
        look_up(client, code, "0000", REMOTE_ADDR=f"192.0.2.{number}").status_code
        for number, code in enumerate(spellings, start=1)
    ]
    assert statuses == [400, 400, 429]
    assert look_up(client, unknown_code(), "0000").status_code == 400  # other codes still work


def test_a_code_locks_after_repeated_wrong_details_without_saying_so(
    client: FlaskClient, property_fee: Debt, set_limits: Callable[..., None], morning
) -> None:
    set_limits(GUEST_LOCK_AFTER=5, GUEST_LOCK_MINUTES=30)
    code = property_fee.rf_reference
    for _ in range(5):
        assert look_up(client, code, "0000").status_code == 400
    locked = look_up(client, code, "2606")  # the right detail, too late
    never_seen = look_up(client, unknown_code(), "2606")
    assert locked.status_code == 400
    assert _comparable(locked, code) == _comparable(never_seen, unknown_code())
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 0

    morning.move_to(MORNING + timedelta(minutes=29))
    assert look_up(client, code, "2606").status_code == 400  # still locked
    morning.move_to(MORNING + timedelta(minutes=31))
    assert look_up(client, code, "2606").status_code == 303  # the lock has run out


def test_an_unknown_code_locks_too_so_a_lock_reveals_nothing(
    client: FlaskClient, set_limits: Callable[..., None]
) -> None:
    from app.guest.models import GuestLookupFailure

    set_limits(GUEST_LOCK_AFTER=2)
    code = unknown_code()
    look_up(client, code, "1111")
    look_up(client, code, "2222")
    row = db.session.scalars(select(GuestLookupFailure)).one()
    assert row.failures == 2 and row.locked_until is not None
    assert code not in row.code_hash and len(row.code_hash) == 64  # only a hash is stored


def test_a_success_clears_earlier_failures(
    client: FlaskClient, property_fee: Debt, set_limits: Callable[..., None]
) -> None:
    from app.guest.models import GuestLookupFailure

    set_limits(GUEST_LOCK_AFTER=3)
    for _ in range(2):
        look_up(client, property_fee.rf_reference, "0000")
    review_path(look_up(client, property_fee.rf_reference, "2606"))
    assert db.session.scalar(select(func.count()).select_from(GuestLookupFailure)) == 0


# -- privacy and tampering ------------------------------------------------------------------------


def test_guest_pages_never_show_the_debtor_or_their_other_debts(client: FlaskClient, property_fee: Debt) -> None:
    pages = [look_up(client, property_fee.rf_reference, "0000")]
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    pages.append(client.get(review))
    receipt = receipt_path(pay(client, review))
    pages.append(client.get(receipt))
    pdf = client.get(receipt + "/receipt.pdf")
    for response in pages:
        text = page_text(response)
        assert DEBTOR_NAME not in text
        assert TAX_ID not in text
        assert "Another debt of the same person" not in text
    assert DEBTOR_NAME.encode() not in pdf.data and TAX_ID.encode() not in pdf.data


def test_amounts_sent_by_the_browser_are_ignored(client: FlaskClient, property_fee: Debt) -> None:
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    receipt_path(pay(client, review, amount="1", total_minor="1", amount_minor="1"))
    assert db.session.scalars(select(Payment)).one().amount_minor == 12175


def test_a_made_up_or_another_sessions_quote_token_is_not_found(app, client: FlaskClient, property_fee: Debt) -> None:
    other_code = DebtFactory(debtor=property_fee.debtor).rf_reference
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    made_up = re.sub(r"[A-Za-z0-9_-]{43}$", "A" * 43, review)
    assert client.get(made_up).status_code == 404
    assert pay(client, made_up).status_code == 404

    stranger = app.test_client()
    stranger.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    other = review_path(look_up(client, other_code, "2606"))
    assert stranger.get(other).status_code == 404
    token = csrf_token(stranger, "/pay")
    data = {"holder": "X", "number": "4242424242424242", "expiry": "12/30", "cvc": "123", "csrf_token": token}
    assert stranger.post(other, data=data).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0  # nothing was charged


def test_an_account_quote_cannot_be_paid_as_a_guest(client: FlaskClient, app) -> None:
    debtor, user = DebtorFactory(), UserFactory()
    link(user, debtor)
    debt = DebtFactory(debtor=debtor)
    with app.test_request_context():
        token = quote_debts(user.id, [f"d{debt.id}"], MORNING).token
    with client.session_transaction() as session:
        session["guest_quotes"] = [token]  # even if a session somehow held it
    assert client.get(f"/pay/review/{token}").status_code == 404


def test_a_guest_cannot_see_another_guests_receipt(app, client: FlaskClient, property_fee: Debt) -> None:
    receipt = receipt_path(pay(client, review_path(look_up(client, property_fee.rf_reference, "2606"))))
    stranger = app.test_client()
    assert stranger.get(receipt).status_code == 404
    assert stranger.get(receipt + "/receipt.pdf").status_code == 404
    assert client.get(receipt).status_code == 200


def test_a_declined_card_keeps_the_debt_open_and_can_be_retried(client: FlaskClient, property_fee: Debt) -> None:
    debt_id = property_fee.id
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    declined = pay(client, review, number="4000 0000 0000 0002")
    assert declined.status_code == 402
    assert "The card was declined by the bank. Nothing was charged." in page_text(declined)
    assert db.session.get(Debt, debt_id).pending_payment_id is None
    receipt_path(pay(client, review))
    assert "This payment has already been made." in page_text(client.get(review))


def test_the_code_of_a_debt_being_paid_elsewhere_says_so(client: FlaskClient, property_fee: Debt, app) -> None:
    first = review_path(look_up(client, property_fee.rf_reference, "2606"))
    second = review_path(look_up(client, property_fee.rf_reference, "2606"))  # e.g. a second tab
    receipt_path(pay(client, first))
    response = pay(client, second)
    assert response.status_code == 409
    assert "already paid or a payment for it is in progress" in page_text(response)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


# -- finding a receipt later ----------------------------------------------------------------------


def _find(client: FlaskClient, reference: str, detail: str, **environ: str):
    data = {"reference": reference, "detail": detail, "csrf_token": csrf_token(client, "/pay/receipt")}
    return client.post("/pay/receipt", data=data, environ_overrides=environ or None)


@pytest.mark.parametrize("detail", ["guest@example.org", "GUEST@example.org ", "4242", "•••• 4242"])
def test_a_receipt_is_found_later_by_number_and_email_or_card_digits(
    app, client: FlaskClient, property_fee: Debt, detail: str
) -> None:
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    reference = receipt_path(pay(client, review, email="guest@example.org")).rsplit("/", 1)[1]
    later = app.test_client()  # another day, another browser
    later.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    typed = reference.replace("-", " ").lower()
    response = _find(later, typed, detail)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/pay/receipt/{reference}")
    assert "€121.75" in page_text(later.get(response.headers["Location"]))


def test_a_wrong_detail_and_an_unknown_number_get_the_same_answer(client: FlaskClient, property_fee: Debt) -> None:
    review = review_path(look_up(client, property_fee.rf_reference, "2606"))
    reference = receipt_path(pay(client, review, email="guest@example.org")).rsplit("/", 1)[1]
    wrong_detail = _find(client, reference, "other@example.org")
    wrong_digits = _find(client, reference, "1111")
    unknown = _find(client, "CP-AAAA-BBBB-CC", "other@example.org")
    assert wrong_detail.status_code == wrong_digits.status_code == unknown.status_code == 400
    assert _comparable(wrong_detail, reference) == _comparable(unknown, "CP-AAAA-BBBB-CC")
    assert "We could not find a receipt with this number" in page_text(wrong_digits)


def test_receipt_lookups_are_rate_limited(client: FlaskClient, set_limits: Callable[..., None]) -> None:
    set_limits(GUEST_RECEIPT_RATE_LIMIT="2 per hour")
    statuses = [_find(client, f"CP-AAAA-BBBB-C{n}", "1234").status_code for n in range(3)]
    assert statuses == [400, 400, 429]


# -- the way in -----------------------------------------------------------------------------------


def test_anonymous_visitors_find_the_guest_payment_from_every_page(client: FlaskClient) -> None:
    assert 'href="/pay"' in page_text(client.get("/"))
    assert "Pay without an account" in page_text(client.get("/login"))


def test_forms_need_a_csrf_token(client: FlaskClient, property_fee: Debt) -> None:
    response = client.post("/pay", data={"code": property_fee.rf_reference, "factor": "2606"})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Quote)) == 0
