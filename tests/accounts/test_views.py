"""Log-in and log-out: wrong credentials, CSRF, rate limits, and no peeking at other accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import limiter
from app.payments.providers import get_provider
from tests.factories import PASSWORD, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import csrf_token, log_in, page_text


def test_wrong_password_says_so_without_saying_which_part(client: FlaskClient) -> None:
    user = UserFactory()
    email = user.email
    response = client.post("/login", data={"email": email, "password": "nope", "csrf_token": csrf_token(client)})
    assert "The e-mail address or password is not right." in page_text(response)
    unknown = client.post(
        "/login", data={"email": "nobody@example.org", "password": "nope", "csrf_token": csrf_token(client)}
    )
    assert "The e-mail address or password is not right." in page_text(unknown)
    assert client.get("/debts").status_code == 302  # still logged out


def test_pages_need_a_login(client: FlaskClient) -> None:
    for path in ("/debts", "/payments", "/payments/CP-XXXX-XXXX-XX", "/checkout/abc"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    user = UserFactory()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400


def test_logout_is_a_post_with_csrf(client: FlaskClient) -> None:
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    assert client.get("/logout").status_code == 405
    client.post("/logout", data={})  # no token: stays logged in
    assert client.get("/debts").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})
    assert client.get("/debts").status_code == 302


def test_next_parameter_cannot_redirect_off_site(client: FlaskClient) -> None:
    user = UserFactory()
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrf_token": csrf_token(client),
        },
    )
    assert response.headers["Location"] == "/debts"


@pytest.fixture()
def rate_limited(app: Flask) -> Iterator[None]:
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    limiter.reset()
    try:
        yield
    finally:
        limiter.reset()
        app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"


def test_login_attempts_are_rate_limited(client: FlaskClient, rate_limited: None) -> None:
    token = csrf_token(client)
    statuses = [
        client.post("/login", data={"email": "a@example.org", "password": "x", "csrf_token": token}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    assert client.get("/login").status_code == 200  # only log-in attempts are limited


def test_no_user_sees_another_users_debts_quotes_or_receipts(client: FlaskClient, app: Flask) -> None:
    from datetime import UTC, datetime

    from app.checkout.payment_flow import pay_quote
    from app.checkout.services import quote_debts
    from app.payments.providers import CardDetails

    alice_debtor, bob_debtor = DebtorFactory(), DebtorFactory()
    alice, bob = UserFactory(), UserFactory()
    link(alice, alice_debtor)
    link(bob, bob_debtor)
    DebtFactory(debtor=alice_debtor, description="Alice property fee")
    bobs = DebtFactory(debtor=bob_debtor, description="Bob water bill")
    now = datetime.now(UTC)
    card = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="Bob")
    paid_quote = quote_debts(bob.id, [f"d{bobs.id}"], now)
    receipt = pay_quote(bob.id, paid_quote.token, card, get_provider("sandbox"), now).reference
    bob_second = DebtFactory(debtor=bob_debtor, description="Bob second bill")
    open_quote = quote_debts(bob.id, [f"d{bob_second.id}"], now).token
    alice_email = alice.email

    log_in(client, alice_email, PASSWORD)
    dashboard = page_text(client.get("/debts"))
    assert "Alice property fee" in dashboard
    assert "Bob " not in dashboard
    assert client.get(f"/payments/{receipt}").status_code == 404
    assert receipt not in page_text(client.get("/payments"))
    assert client.get(f"/checkout/{open_quote}").status_code == 404
    paying = client.post(
        f"/checkout/{open_quote}/pay",
        data={"holder": "A", "number": "4242424242424242", "expiry": "12/30", "cvc": "123",
              "csrf_token": csrf_token(client, "/debts")},
    )  # fmt: skip
    assert paying.status_code == 404
