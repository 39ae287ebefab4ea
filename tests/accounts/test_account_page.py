"""The account page: details and notification choices, changing the password, deleting the account."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.accounts.models import TaxIdLink, User
from app.extensions import db, limiter
from app.payments.models import Payment
from tests.factories import PASSWORD, DebtorFactory, UserFactory, link
from tests.helpers import csrf_token, log_in, page_text
from tests.mail.smtp import SMTPServer

NEW_PASSWORD = "violet harbour seventeen"


def reload(user_id: int) -> User:
    db.session.expire_all()
    user = db.session.get(User, user_id)
    assert user is not None
    return user


def logs_in(client: FlaskClient, email: str, password: str) -> bool:
    """Whether these credentials log in (in a fresh browser, so ``client`` keeps its session)."""
    browser = client.application.test_client()
    response = browser.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(browser)})
    return response.status_code == 303


@pytest.fixture()
def citizen(client: FlaskClient) -> tuple[int, str]:
    """A logged-in citizen: (id, e-mail)."""
    user = UserFactory(email="eleni@example.org", full_name="Eleni Georgiou")
    log_in(client, user.email, PASSWORD)
    return user.id, user.email


def save_details(client: FlaskClient, **fields: str):
    data = {"full_name": "Eleni Georgiou", "phone": "", "language": "en", "notify_email": "y"}
    return client.post("/account", data=data | fields | {"csrf_token": csrf_token(client, "/account")})


def test_the_account_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    token = csrf_token(client)
    for path in ("/account", "/account/password", "/account/delete"):
        response = client.post(path, data={"csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_the_menu_offers_register_or_my_account(client: FlaskClient) -> None:
    logged_out = page_text(client.get("/"))
    assert 'href="/register"' in logged_out and 'href="/account"' not in logged_out
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    logged_in = page_text(client.get("/"))
    assert 'href="/account"' in logged_in and 'href="/register"' not in logged_in


def test_the_page_shows_the_current_details(client: FlaskClient, citizen: tuple[int, str]) -> None:
    page = page_text(client.get("/account"))
    assert "You log in with eleni@example.org." in page
    assert 'value="Eleni Georgiou"' in page


def test_details_are_saved_and_the_phone_normalised(client: FlaskClient, citizen: tuple[int, str]) -> None:
    user_id, _ = citizen
    response = save_details(
        client, full_name="Eleni K. Georgiou", phone="+30 691-234 5678", notify_sms="y", notify_email=""
    )
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert "Your details have been saved." in page_text(client.get("/account"))
    user = reload(user_id)
    assert (user.full_name, user.phone, user.notify_email, user.notify_sms) == (
        "Eleni K. Georgiou", "+306912345678", False, True,
    )  # fmt: skip


def test_an_international_prefix_00_is_accepted(client: FlaskClient, citizen: tuple[int, str]) -> None:
    save_details(client, phone="0044 20 7946 0018")
    assert reload(citizen[0]).phone == "+442079460018"


def test_choosing_greek_switches_the_pages_and_the_account(client: FlaskClient, citizen: tuple[int, str]) -> None:
    save_details(client, language="el")
    assert reload(citizen[0]).language == "el"
    assert '<html lang="el">' in page_text(client.get("/account"))


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"phone": "6912345678"}, "Enter the number with + and the country code, for example +30 691 234 5678."),
        ({"phone": "+30 69A"}, "Enter the number with + and the country code"),
        ({"phone": "+0 123 456 789"}, "Enter the number with + and the country code"),
        ({"phone": "+30 691 234 5678 9012 34"}, "Enter the number with + and the country code"),
        ({"notify_sms": "y"}, "To get text messages, enter your mobile phone number."),
        ({"full_name": "  "}, "Enter your full name."),
        ({"language": "de"}, "Not a valid choice"),
    ],
)
def test_bad_details_are_refused_with_a_sentence(
    client: FlaskClient, citizen: tuple[int, str], fields: dict, sentence: str
) -> None:
    response = save_details(client, **fields)
    assert response.status_code == 400
    assert sentence in page_text(response)
    user = reload(citizen[0])
    assert (user.full_name, user.phone, user.notify_sms) == ("Eleni Georgiou", None, False)


# -- changing the password ---------------------------------------------------------------------


def change(client: FlaskClient, current: str, new: str, confirm: str | None = None):
    data = {"current_password": current, "new_password": new, "new_password_confirm": confirm or new}
    return client.post("/account/password", data=data | {"csrf_token": csrf_token(client, "/account")})


def test_changing_the_password_needs_the_current_one(
    client: FlaskClient, citizen: tuple[int, str], mailbox: SMTPServer
) -> None:
    response = change(client, "not my password", NEW_PASSWORD)
    assert response.status_code == 400
    assert "Your current password is not right." in page_text(response)
    assert logs_in(client, citizen[1], PASSWORD)
    assert mailbox.messages == []


@pytest.mark.parametrize(
    ("new", "sentence"),
    [
        ("short", "Choose a password of at least 12 characters."),
        ("iloveyou2024", "This password is one of the most common ones"),
        ("eleni and the sea", "Your password must not contain your e-mail address"),
    ],
)
def test_the_new_password_follows_the_policy(
    client: FlaskClient, citizen: tuple[int, str], new: str, sentence: str
) -> None:
    response = change(client, PASSWORD, new)
    assert response.status_code == 400
    assert sentence in page_text(response)
    assert logs_in(client, citizen[1], PASSWORD)


def test_a_changed_password_works_and_old_reset_links_die(
    client: FlaskClient, citizen: tuple[int, str], mailbox: SMTPServer
) -> None:
    user_id, email = citizen
    client.post("/password/forgot", data={"email": email, "csrf_token": csrf_token(client, "/password/forgot")})
    reset = mailbox.only(email).link_path("/password/reset/")
    mailbox.clear()

    response = change(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303
    assert "Your password has been changed." in page_text(client.get("/account"))
    assert reload(user_id).password_changed_at is not None
    assert not logs_in(client, email, PASSWORD)
    assert logs_in(client, email, NEW_PASSWORD)
    assert mailbox.only(email).subject == "Your Civic Pay password was changed"
    assert client.get(reset).status_code == 400  # the reset link sent before no longer works


# -- deleting the account ----------------------------------------------------------------------


def delete(client: FlaskClient, password: str = PASSWORD, confirm: bool = True):
    data = {"delete_password": password, "csrf_token": csrf_token(client, "/account")}
    if confirm:
        data["confirm"] = "y"
    return client.post("/account/delete", data=data)


def test_deleting_needs_the_password_and_the_tick(client: FlaskClient, citizen: tuple[int, str]) -> None:
    wrong = delete(client, "not my password")
    assert wrong.status_code == 400 and "Your password is not right." in page_text(wrong)
    unticked = delete(client, confirm=False)
    assert unticked.status_code == 400
    assert "Tick the box to confirm that you want to delete your account." in page_text(unticked)
    assert reload(citizen[0]).deleted_at is None
    assert client.get("/account").status_code == 200  # still logged in


def test_deleting_pseudonymises_the_account_and_keeps_the_payments(
    app: Flask, client: FlaskClient, citizen: tuple[int, str], mailbox: SMTPServer
) -> None:
    user_id, email = citizen
    user = reload(user_id)
    user.phone = "+306912345678"
    link(user, DebtorFactory())
    payment = Payment(
        reference="CP-TEST-0001-AA", user_id=user_id, status="succeeded", currency="EUR",
        amount_minor=12345, provider="sandbox", card_brand="visa", card_last4="4242",
    )  # fmt: skip
    db.session.add(payment)
    db.session.commit()
    other_browser = app.test_client()
    log_in(other_browser, email, PASSWORD)

    response = delete(client)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Your account has been deleted." in page_text(client.get("/"))

    gone = reload(user_id)
    assert gone.email == f"deleted-{user_id}@invalid"
    assert gone.full_name == "Deleted account"
    assert gone.phone is None
    assert gone.deleted_at is not None
    assert not gone.password_hash.startswith("$argon2")
    assert db.session.scalar(select(func.count()).select_from(TaxIdLink).where(TaxIdLink.user_id == user_id)) == 0
    kept = db.session.scalar(select(Payment).where(Payment.reference == "CP-TEST-0001-AA"))
    assert kept is not None and (kept.user_id, kept.amount_minor, kept.status) == (user_id, 12345, "succeeded")

    # Logged out here and in every other browser; the old credentials do nothing any more.
    assert client.get("/account").status_code == 302
    assert other_browser.get("/debts").status_code == 302
    assert not logs_in(client, email, PASSWORD)
    assert not logs_in(client, f"deleted-{user_id}@invalid", PASSWORD)
    assert mailbox.only(email).subject == "Your Civic Pay account was deleted"


def test_the_address_of_a_deleted_account_can_register_again(
    client: FlaskClient, citizen: tuple[int, str], mailbox: SMTPServer
) -> None:
    delete(client)
    mailbox.clear()
    password = "a brand new beginning"
    client.post(
        "/register",
        data={"full_name": "Eleni G.", "email": citizen[1], "password": password, "password_confirm": password,
              "language": "en", "csrf_token": csrf_token(client, "/register")},
    )  # fmt: skip
    mail = mailbox.only(citizen[1])
    assert mail.subject == "Confirm your e-mail address for Civic Pay"
    assert client.get(mail.link_path("/verify/")).status_code == 303
    assert logs_in(client, citizen[1], password)


# -- limits and CSRF -----------------------------------------------------------------------------


@pytest.fixture()
def login_limit(app: Flask) -> Iterator[Callable[[str], None]]:
    saved = app.config["LOGIN_RATE_LIMIT"]

    def set_(value: str) -> None:
        app.config["LOGIN_RATE_LIMIT"] = value
        limiter.reset()

    try:
        yield set_
    finally:
        app.config["LOGIN_RATE_LIMIT"] = saved
        limiter.reset()


def test_guessing_the_current_password_is_rate_limited(
    client: FlaskClient, citizen: tuple[int, str], login_limit: Callable[[str], None]
) -> None:
    login_limit("2 per minute")
    assert [change(client, f"guess {n}", NEW_PASSWORD).status_code for n in range(3)] == [400, 400, 429]
    assert [delete(client, f"guess {n}").status_code for n in range(3)] == [400, 400, 429]
    assert reload(citizen[0]).deleted_at is None


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/account", {"full_name": "Mallory", "language": "en"}),
        ("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                               "new_password_confirm": NEW_PASSWORD}),
        ("/account/delete", {"delete_password": PASSWORD, "confirm": "y"}),
    ],
)  # fmt: skip
def test_forms_need_a_csrf_token(client: FlaskClient, citizen: tuple[int, str], path: str, data: dict) -> None:
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert "This form has expired or was sent from elsewhere." in page_text(response)
    user = reload(citizen[0])
    assert (user.full_name, user.deleted_at) == ("Eleni Georgiou", None)
    assert logs_in(client, citizen[1], PASSWORD)
