"""Stripe card payments against localstripe: one card entry, one charge per agency, all or nothing.

The browser's part (Stripe.js confirming the card, the 3-D Secure dialog) is done with the same
HTTP calls localstripe's Stripe.js makes; everything else goes through the app and the official SDK.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.checkout.models import Quote
from app.checkout.payment_flow import reconcile_stripe_payments
from app.debts.models import Debt
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, ProviderCharge, ProviderEvent
from app.payments.stripe_gateway import IntentState, StripeGateway, payment_intent_params
from tests.factories import PASSWORD, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import csrf_token, log_in, page_text
from tests.payments.stripe_steps import CARD_OK, call, pay_both, review, start_and_enter_card
from tests.stripe_server import (
    SECRET_KEY,
    browser_authenticate,
    browser_confirm_card_setup,
    sign,
    stripe_events,
)

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)
CARD_DECLINED = "4000 0000 0000 0341"
CARD_3DS = "4000 0027 6000 3184"


@pytest.fixture(autouse=True)
def _morning():
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


def gateway(url: str) -> StripeGateway:
    return StripeGateway(SECRET_KEY, url)


def test_review_page_offers_stripe_card_entry_and_no_card_fields_of_ours(
    client: FlaskClient, citizen: dict, localstripe_url: str
) -> None:
    page = page_text(client.get(pay_both(client, citizen)))
    assert f'src="{localstripe_url}/js.stripe.com/v3/"' in page
    assert 'id="card-element"' in page
    assert 'name="number"' not in page  # card numbers never reach this server
    assert "needs JavaScript" in page  # said plainly, for browsers without it


def test_two_agencies_one_card_entry_one_captured_charge_each(
    client: FlaskClient, citizen: dict, localstripe_url: str
) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    step = call(client, review_url, "charge", payment=reference)
    assert step.json["status"] == "succeeded"
    assert step.json["redirect"] == f"/payments/{reference}"

    payment = db.session.scalars(select(Payment)).one()
    assert (payment.status, payment.provider, payment.card_last4, payment.card_brand) == (
        "succeeded",
        "stripe",
        "4242",
        "visa",
    )
    by_agency = {charge.agency.code: charge for charge in payment.charges}
    lines = {line.agency.code: line.amount_minor for line in payment.lines}
    assert {code: c.amount_minor for code, c in by_agency.items()} == lines
    assert sum(lines.values()) == payment.amount_minor
    for code, charge in by_agency.items():
        intent = gateway(localstripe_url).retrieve_payment_intent(charge.provider_reference)
        assert (intent.status, intent.amount, intent.currency) == ("succeeded", lines[code], "EUR")
        assert intent.metadata == {"payment": reference, "agency": code, "charge": str(charge.id)}
        assert charge.status == "captured"
    assert all(debt.status == "paid" for debt in db.session.scalars(select(Debt)))
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) >= 2  # one ack per line
    assert "Payment successful" in page_text(client.get(step.json["redirect"]))


def test_charging_again_changes_nothing(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    assert call(client, review_url, "charge", payment=reference).json["status"] == "succeeded"
    again = call(client, review_url, "charge", payment=reference)
    assert again.json["status"] == "succeeded"
    assert db.session.scalar(select(func.count()).select_from(ProviderCharge)) == 2
    # A second start for the used quote is refused: the quote was paid.
    assert call(client, review_url, "start").status_code == 409


def test_declined_card_frees_the_debts_and_a_retry_succeeds(
    client: FlaskClient, citizen: dict, localstripe_url: str
) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_DECLINED)
    step = call(client, review_url, "charge", payment=reference)
    assert step.json["status"] == "failed"
    assert (
        step.json["message"] == "The card was declined by the bank. Nothing was charged. Try again or use another card."
    )
    failed = db.session.scalars(select(Payment)).one()
    assert failed.status == "failed" and failed.failure_reason == "card_declined"
    assert all(debt.pending_payment_id is None and debt.status == "open" for debt in db.session.scalars(select(Debt)))
    # Nothing stays authorised at Stripe.
    for charge in failed.charges:
        if charge.provider_reference:
            assert gateway(localstripe_url).retrieve_payment_intent(charge.provider_reference).status in (
                "canceled",
                "requires_payment_method",
            )

    retry = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    assert retry != reference
    assert call(client, review_url, "charge", payment=retry).json["status"] == "succeeded"
    statuses = sorted(p.status for p in db.session.scalars(select(Payment)))
    assert statuses == ["failed", "succeeded"]


def test_three_d_secure_passed_in_the_browser(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_3DS)
    step = call(client, review_url, "charge", payment=reference)
    assert step.json["status"] == "requires_action"
    assert len(step.json["action_secrets"]) == 2  # one per agency's charge
    for secret in step.json["action_secrets"]:
        browser_authenticate(localstripe_url, secret, success=True)
    done = call(client, review_url, "finish", payment=reference)
    assert done.json["status"] == "succeeded"
    assert db.session.scalars(select(Payment)).one().status == "succeeded"


def test_three_d_secure_failed_charges_nothing(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_3DS)
    step = call(client, review_url, "charge", payment=reference)
    first, second = step.json["action_secrets"]
    browser_authenticate(localstripe_url, first, success=True)
    browser_authenticate(localstripe_url, second, success=False)
    done = call(client, review_url, "finish", payment=reference)
    assert done.json["status"] == "failed"
    assert "3-D Secure" in done.json["message"]
    payment = db.session.scalars(select(Payment)).one()
    assert payment.status == "failed"
    # The authorised half is released, not captured.
    statuses = {gateway(localstripe_url).retrieve_payment_intent(c.provider_reference).status for c in payment.charges}
    assert "succeeded" not in statuses
    assert all(debt.pending_payment_id is None for debt in db.session.scalars(select(Debt)))


def test_reload_before_card_entry_reuses_the_payment(client: FlaskClient, citizen: dict) -> None:
    review_url = pay_both(client, citizen)
    first = call(client, review_url, "start").json
    second = call(client, review_url, "start").json
    assert first["payment"] == second["payment"]
    assert first["client_secret"] == second["client_secret"]
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_another_citizen_cannot_drive_my_payment(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})
    stranger = UserFactory()
    log_in(client, stranger.email, PASSWORD)
    for step in ("start", "charge", "finish"):
        assert call(client, review_url, step, payment=reference).status_code == 404
    assert db.session.scalars(select(Payment)).one().status == "pending"


def test_a_payment_of_another_quote_is_not_found(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    water, parking = citizen["debts"]
    first_url = review(client, [f"d{water}"])
    reference = start_and_enter_card(client, localstripe_url, first_url, CARD_OK)
    other_url = review(client, [f"d{parking}"])
    assert call(client, other_url, "charge", payment=reference).status_code == 404


def test_the_sandbox_card_form_is_closed_when_stripe_is_on(client: FlaskClient, citizen: dict) -> None:
    review_url = pay_both(client, citizen)
    data = {
        "holder": "M",
        "number": CARD_OK,
        "expiry": "12/30",
        "cvc": "123",
        "csrf_token": csrf_token(client, review_url),
    }
    assert client.post(review_url + "/pay", data=data).status_code == 404


def test_an_amount_changed_at_the_provider_is_never_captured() -> None:
    from app.checkout.payment_flow import _apply

    charge = ProviderCharge(amount_minor=1000, currency="EUR", status="creating")
    _apply(charge, IntentState(id="pi_x", status="requires_capture", amount=999, currency="EUR", client_secret=None))
    assert (charge.status, charge.failure_code) == ("failed", "amount_mismatch")


def test_connected_account_gets_a_destination_charge() -> None:
    common = {"amount_minor": 500, "currency": "EUR", "customer": "cus_1", "payment_method": "pm_1", "metadata": {}}
    platform = payment_intent_params(**common, destination=None)
    assert "transfer_data" not in platform and platform["capture_method"] == "manual" and platform["currency"] == "eur"
    agency = payment_intent_params(**common, destination="acct_123")
    assert agency["transfer_data"] == {"destination": "acct_123"} and agency["on_behalf_of"] == "acct_123"


# -- webhooks and the reconciler --------------------------------------------------------------------


def deliver(client: FlaskClient, agency_code: str, event: dict, secret: str | None = None):
    payload = json.dumps(event).encode()
    header = sign(payload) if secret is None else sign(payload, secret)
    return client.post(
        f"/webhooks/stripe/{agency_code}",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def crash_after_capture(client: FlaskClient, localstripe_url: str, citizen: dict) -> int:
    """A payment whose charges Stripe captured while our process died before recording it."""
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_3DS)
    step = call(client, review_url, "charge", payment=reference)
    for secret in step.json["action_secrets"]:
        browser_authenticate(localstripe_url, secret, success=True)
    payment = db.session.scalars(select(Payment)).one()
    for charge in payment.charges:
        gateway(localstripe_url).capture_payment_intent(charge.provider_reference, idempotency_key="crash")
    assert payment.status == "pending"
    return payment.id


def succeeded_events(localstripe_url: str, payment_id: int) -> list[dict]:
    payment = db.session.get(Payment, payment_id)
    ours = {charge.provider_reference for charge in payment.charges}
    return [e for e in stripe_events(localstripe_url, "payment_intent.succeeded") if e["data"]["object"]["id"] in ours]


def test_webhook_records_a_payment_the_browser_never_reported(
    client: FlaskClient, citizen: dict, localstripe_url: str
) -> None:
    payment_id = crash_after_capture(client, localstripe_url, citizen)
    events = succeeded_events(localstripe_url, payment_id)
    assert len(events) == 2
    for event in events:
        code = event["data"]["object"]["metadata"]["agency"]
        answer = deliver(client, code, event)
        assert answer.status_code == 200 and answer.json["processed"]
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).status == "succeeded"
    assert all(debt.status == "paid" for debt in db.session.scalars(select(Debt)))


def test_the_same_webhook_twice_is_processed_once(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    payment_id = crash_after_capture(client, localstripe_url, citizen)
    event = succeeded_events(localstripe_url, payment_id)[0]
    code = event["data"]["object"]["metadata"]["agency"]
    assert deliver(client, code, event).json["processed"] is True
    again = deliver(client, code, event)
    assert again.status_code == 200 and again.json == {
        "received": True,
        "processed": False,
        "detail": "already processed",
    }
    assert db.session.scalar(select(func.count()).select_from(ProviderEvent)) == 1


def test_webhook_after_the_browser_changes_nothing(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    assert call(client, review_url, "charge", payment=reference).json["status"] == "succeeded"
    payment = db.session.scalars(select(Payment)).one()
    payment_id, completed = payment.id, payment.completed_at
    for event in succeeded_events(localstripe_url, payment_id):
        assert deliver(client, event["data"]["object"]["metadata"]["agency"], event).status_code == 200
    db.session.expire_all()
    again = db.session.get(Payment, payment_id)
    assert (again.status, again.completed_at) == ("succeeded", completed)
    acks = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == "erp_payment_ack")
    assert db.session.scalar(acks) == 2  # one per agency, not one more per webhook


def test_forged_or_unsigned_webhooks_are_refused(client: FlaskClient, citizen: dict, localstripe_url: str) -> None:
    payment_id = crash_after_capture(client, localstripe_url, citizen)
    event = succeeded_events(localstripe_url, payment_id)[0]
    code = event["data"]["object"]["metadata"]["agency"]
    assert deliver(client, code, event, secret="whsec_forged").status_code == 400
    unsigned = client.post(f"/webhooks/stripe/{code}", data=json.dumps(event), content_type="application/json")
    assert unsigned.status_code == 400
    stale = json.dumps(event).encode()
    old = client.post(
        f"/webhooks/stripe/{code}",
        data=stale,
        headers={"Stripe-Signature": sign(stale, timestamp=int(MORNING.timestamp()) - 3600)},
    )
    assert old.status_code == 400  # a replayed old delivery
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).status == "pending"
    assert db.session.scalar(select(func.count()).select_from(ProviderEvent)) == 0


def test_an_agency_endpoint_ignores_another_agencys_payment(
    client: FlaskClient, citizen: dict, localstripe_url: str
) -> None:
    payment_id = crash_after_capture(client, localstripe_url, citizen)
    event = succeeded_events(localstripe_url, payment_id)[0]
    other = "south" if event["data"]["object"]["metadata"]["agency"] == "north" else "north"
    answer = deliver(client, other, event)
    assert answer.json["detail"] == "another agency's payment"
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).status == "pending"
    # Stripe sends each event to every endpoint: the right agency's still processes it.
    right = deliver(client, event["data"]["object"]["metadata"]["agency"], event)
    assert right.json["processed"] is True
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).status == "succeeded"


def test_reconciler_finishes_what_no_webhook_reported(
    client: FlaskClient, citizen: dict, localstripe_url: str, stripe_app: Flask
) -> None:
    """The citizen passed 3-D Secure and closed the browser; no webhook came."""
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_3DS)
    for secret in call(client, review_url, "charge", payment=reference).json["action_secrets"]:
        browser_authenticate(localstripe_url, secret, success=True)
    with stripe_app.app_context():
        assert reconcile_stripe_payments(MORNING + timedelta(minutes=1)).checked == 0  # too early to ask
        report = reconcile_stripe_payments(MORNING + timedelta(minutes=11))
    assert (report.checked, report.succeeded) == (1, 1)
    assert db.session.scalars(select(Payment)).one().status == "succeeded"


def test_reconciler_gives_up_an_abandoned_card_entry(client: FlaskClient, citizen: dict, stripe_app: Flask) -> None:
    review_url = pay_both(client, citizen)
    call(client, review_url, "start")  # then the citizen walked away before typing the card
    with stripe_app.app_context():
        assert reconcile_stripe_payments(MORNING + timedelta(minutes=30)).abandoned == 0
        report = reconcile_stripe_payments(MORNING + timedelta(minutes=61))
    assert report.abandoned == 1
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.status, payment.failure_reason) == ("failed", "abandoned")
    assert all(debt.pending_payment_id is None for debt in db.session.scalars(select(Debt)))
    quote = db.session.scalars(select(Quote)).one()
    assert quote.status == "open"  # the citizen may still pay it today


def test_flask_worker_tick_reconciles_and_flask_payments_reconcile_reports(
    client: FlaskClient, citizen: dict, localstripe_url: str, stripe_app: Flask, _morning
) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_OK)
    assert reference
    _morning.move_to(MORNING + timedelta(minutes=61))  # the card was entered, then nothing came
    result = stripe_app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 checked, 0 succeeded, 0 failed, 1 abandoned, 0 errors" in result.output
    assert db.session.scalars(select(Payment)).one().status == "failed"


def test_flask_payments_reconcile_without_stripe_repairs_only_the_sandbox(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "Sandbox payments: 0 checked" in result.output and "Card payments" not in result.output


def test_flask_worker_once_finishes_a_payment_the_browser_left(
    client: FlaskClient, citizen: dict, localstripe_url: str, stripe_app: Flask, _morning
) -> None:
    review_url = pay_both(client, citizen)
    reference = start_and_enter_card(client, localstripe_url, review_url, CARD_3DS)
    for secret in call(client, review_url, "charge", payment=reference).json["action_secrets"]:
        browser_authenticate(localstripe_url, secret, success=True)
    _morning.move_to(MORNING + timedelta(minutes=11))
    result = stripe_app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "card payments: 1 checked, 1 succeeded" in result.output
    assert db.session.scalars(select(Payment)).one().status == "succeeded"


@pytest.mark.postgres_only
def test_two_concurrent_stripe_checkouts_of_one_debt_make_one_charge(
    stripe_app: Flask, committed_db: None, localstripe_url: str
) -> None:
    """Two family members who both proved the tax ID pay the same debt at the same instant."""
    import threading

    from app.checkout.payment_flow import authorize_stripe_payment, begin_stripe_payment
    from app.checkout.services import CheckoutError, get_user_quote, quote_debts

    with stripe_app.app_context():
        debtor = DebtorFactory()
        first, second = UserFactory(), UserFactory()
        link(first, debtor)
        link(second, debtor)
        debt = DebtFactory(debtor=debtor, principal_minor=8000, due_date=date(2026, 5, 31))
        quotes = [(user.id, quote_debts(user.id, [f"d{debt.id}"], MORNING).token) for user in (first, second)]
        debt_id = debt.id
        db.session.commit()  # the quotes, for the two payers' own sessions (a request would commit them)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def pay(user_id: int, token: str) -> None:
        with stripe_app.app_context():
            barrier.wait()
            try:
                quote = get_user_quote(user_id, token)
                start = begin_stripe_payment(
                    quote, user_id=user_id, channel="account", gateway=gateway(localstripe_url), now=MORNING
                )
            except CheckoutError as error:
                outcomes.append(error.code)
                return
            browser_confirm_card_setup(localstripe_url, start.setup_client_secret, CARD_OK)
            outcomes.append(authorize_stripe_payment(start.payment.id, gateway(localstripe_url)).status)

    threads = [threading.Thread(target=pay, args=quote) for quote in quotes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["succeeded", "taken"]
    with stripe_app.app_context():
        assert db.session.get(Debt, debt_id).status == "paid"
        charges = db.session.scalars(select(ProviderCharge)).all()
        assert len(charges) == 1 and charges[0].status == "captured"
