"""Forgotten passwords: the same answer for every address, signed one-hour single-use links.

Links are read from the messages a real local SMTP server (aiosmtpd) received.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.models import User
from app.extensions import db
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_token, page_text
from tests.mail.smtp import SMTPServer

NEW_PASSWORD = "violet harbour seventeen"
FORGOT = "/password/forgot"


def ask_for_reset(client: FlaskClient, email: str):
    return client.post(FORGOT, data={"email": email, "csrf_token": csrf_token(client, FORGOT)})


def reset_link(mailbox: SMTPServer, email: str) -> str:
    """The path of the newest reset link sent to ``email``."""
    mails = [mail for mail in mailbox.to(email) if "/password/reset/" in mail.text]
    assert mails, f"no reset link was sent to {email}"
    return mails[-1].link_path("/password/reset/")


def choose(client: FlaskClient, link: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    token = csrf_token(client, link) if client.get(link).status_code == 200 else csrf_token(client, FORGOT)
    return client.post(
        link,
        data={"new_password": password, "new_password_confirm": confirm or password, "csrf_token": token},
    )


def logs_in(client: FlaskClient, email: str, password: str) -> bool:
    """Whether these credentials log in (tried in a fresh browser, so ``client`` stays as it is)."""
    browser = client.application.test_client()
    response = browser.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(browser)})
    return response.status_code == 303


def reload(user_id: int) -> User:
    db.session.expire_all()
    user = db.session.get(User, user_id)
    assert user is not None
    return user


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
    client: FlaskClient, mailbox: SMTPServer
) -> None:
    UserFactory(email="john@example.org")
    known = ask_for_reset(client, "John@Example.org")
    unknown = ask_for_reset(client, "nobody@example.org")
    assert (known.status_code, known.headers["Location"]) == (unknown.status_code, unknown.headers["Location"])
    assert known.headers["Location"] == "/password/forgot/sent"
    page = page_text(client.get("/password/forgot/sent"))
    assert "If an account uses this e-mail address, we have sent it a link to choose a new password." in page
    assert "The link works for 1 hour. It can be used once." in page
    assert [mail.envelope_to for mail in mailbox.messages] == [["john@example.org"]]
    assert mailbox.only("john@example.org").subject == "Choose a new password for Civic Pay"


def test_the_link_sets_a_new_password(client: FlaskClient, mailbox: SMTPServer) -> None:
    user_id = UserFactory(email="john@example.org").id
    ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")

    form = client.get(link)
    assert form.status_code == 200 and "Choose a new password" in page_text(form)
    assert form.headers["Referrer-Policy"] == "no-referrer"
    before = datetime.now(UTC)
    response = choose(client, link)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Your new password has been saved." in page_text(client.get("/login"))

    changed = reload(user_id)
    assert changed.password_changed_at is not None and changed.password_changed_at >= before - timedelta(seconds=1)
    assert not logs_in(client, "john@example.org", PASSWORD)
    assert logs_in(client, "john@example.org", NEW_PASSWORD)
    notice = mailbox.to("john@example.org")[-1]
    assert notice.subject == "Your Civic Pay password was changed"


def test_a_link_works_only_once(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="john@example.org")
    ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")
    assert choose(client, link).status_code == 303

    again = client.get(link)
    assert again.status_code == 400
    assert "This link to choose a new password has already been used" in page_text(again)
    second = choose(client, link, "another fine passphrase")
    assert second.status_code == 400
    assert logs_in(client, "john@example.org", NEW_PASSWORD)
    assert not logs_in(client, "john@example.org", "another fine passphrase")


def test_using_the_newest_link_retires_the_older_ones(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="john@example.org")
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        ask_for_reset(client, "john@example.org")
    older = reset_link(mailbox, "john@example.org")
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        ask_for_reset(client, "john@example.org")
        newer = reset_link(mailbox, "john@example.org")
        assert older != newer
        assert client.get(older).status_code == 200  # both work until one is used
        assert choose(client, newer).status_code == 303
        assert client.get(older).status_code == 400


def test_an_expired_link_is_refused(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="john@example.org")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")

    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert client.get(link).status_code == 200
    with time_machine.travel(start + timedelta(hours=1, minutes=1), tick=False):
        response = client.get(link)
        assert response.status_code == 400
        assert "This link to choose a new password has expired." in page_text(response)
        assert 'href="/password/forgot"' in page_text(response)
        assert choose(client, link).status_code == 400
    assert logs_in(client, "john@example.org", PASSWORD)


def test_a_tampered_link_is_refused(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="john@example.org")
    ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    response = client.get(tampered)
    assert response.status_code == 400
    assert "This link to choose a new password is not valid." in page_text(response)
    assert choose(client, tampered).status_code == 400
    assert logs_in(client, "john@example.org", PASSWORD)


@pytest.mark.parametrize(
    ("password", "sentence"),
    [
        ("too short", "Choose a password of at least 12 characters."),
        ("qwerty123456", "This password is one of the most common ones"),
        ("john.smith 4ever and ever", "Your password must not contain your e-mail address"),
    ],
)
def test_the_new_password_follows_the_policy(
    client: FlaskClient, mailbox: SMTPServer, password: str, sentence: str
) -> None:
    UserFactory(email="john.smith@example.org")
    ask_for_reset(client, "john.smith@example.org")
    link = reset_link(mailbox, "john.smith@example.org")
    response = choose(client, link, password)
    assert response.status_code == 400
    assert sentence in page_text(response)
    assert client.get(link).status_code == 200  # a refused attempt does not use the link up
    assert logs_in(client, "john.smith@example.org", PASSWORD)


def test_resetting_confirms_an_unconfirmed_address(client: FlaskClient, mailbox: SMTPServer) -> None:
    """The reset link proves the address is theirs; otherwise a squatted address could never log in."""
    user_id = UserFactory(email="john@example.org", email_verified_at=None).id
    ask_for_reset(client, "john@example.org")
    assert choose(client, reset_link(mailbox, "john@example.org")).status_code == 303
    assert reload(user_id).email_verified_at is not None
    assert logs_in(client, "john@example.org", NEW_PASSWORD)


def test_links_are_built_on_public_url_not_the_request_host(
    app: Flask, client: FlaskClient, mailbox: SMTPServer
) -> None:
    """A forged Host header must not make the e-mail point to someone else's server."""
    UserFactory(email="john@example.org")
    app.config["PUBLIC_URL"] = "https://pay.example.gov/"
    forged = "http://evil.example"
    try:
        page = client.get(FORGOT, base_url=forged).get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert token
        response = client.post(
            FORGOT, data={"email": "john@example.org", "csrf_token": token.group(1)}, base_url=forged
        )
        assert response.status_code == 303
    finally:
        app.config["PUBLIC_URL"] = None
    links = mailbox.only("john@example.org").links()
    assert links and all(link.startswith("https://pay.example.gov/password/reset/") for link in links)


def test_asking_is_rate_limited_per_address_and_per_client(
    client: FlaskClient, mailbox: SMTPServer, set_limits: Callable[..., None]
) -> None:
    set_limits(PASSWORD_RESET_EMAIL_RATE_LIMIT="2 per hour", PASSWORD_RESET_RATE_LIMIT="3 per hour")
    UserFactory(email="john@example.org")
    statuses = [ask_for_reset(client, "john@example.org").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    assert len(mailbox.to("john@example.org")) == 2  # the inbox is not flooded
    assert ask_for_reset(client, "mary@example.org").status_code == 303
    assert ask_for_reset(client, "paul@example.org").status_code == 429  # the client's limit
    assert client.get(FORGOT).status_code == 200  # only sending is limited


def test_choosing_a_password_is_rate_limited(
    client: FlaskClient, mailbox: SMTPServer, set_limits: Callable[..., None]
) -> None:
    set_limits(PASSWORD_RESET_RATE_LIMIT="2 per hour")
    UserFactory(email="john@example.org")
    ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")
    assert [choose(client, link, "short").status_code for _ in range(3)] == [400, 400, 429]


def test_forms_need_a_csrf_token(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="john@example.org")
    assert client.post(FORGOT, data={"email": "john@example.org"}).status_code == 400
    assert mailbox.messages == []
    ask_for_reset(client, "john@example.org")
    link = reset_link(mailbox, "john@example.org")
    response = client.post(link, data={"new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert "This form has expired or was sent from elsewhere." in page_text(response)
    assert logs_in(client, "john@example.org", PASSWORD)


def test_a_deleted_account_gets_no_link(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="gone@example.org", deleted_at=datetime.now(UTC))
    assert ask_for_reset(client, "gone@example.org").status_code == 303
    assert mailbox.messages == []


def test_log_in_links_to_the_forgotten_password_page(client: FlaskClient) -> None:
    assert 'href="/password/forgot"' in page_text(client.get("/login"))
