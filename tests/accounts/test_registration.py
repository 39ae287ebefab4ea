"""Registration, the password policy, e-mail confirmation, and log-in of unconfirmed accounts.

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
from flask_babel import force_locale
from sqlalchemy import func, select

from app.accounts.models import User
from app.accounts.passwords import MAX_LENGTH, common_passwords, password_problem
from app.extensions import db
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_token, log_in, page_text
from tests.mail.smtp import SMTPServer

GOOD_PASSWORD = "tulip orbit canoe lantern"
CHECK_EMAIL = "/register/check-email"


def register(client: FlaskClient, email: str, password: str = GOOD_PASSWORD, **fields: str):
    data = {
        "full_name": "Eleni Georgiou",
        "email": email,
        "password": password,
        "password_confirm": password,
        "language": "en",
        "csrf_token": csrf_token(client, "/register"),
    }
    return client.post("/register", data=data | fields)


def user_by_email(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


# -- the password policy -------------------------------------------------------------------------

SHORT = "Choose a password of at least 12 characters."
LONG = f"Choose a password of at most {MAX_LENGTH} characters."
COMMON = "This password is one of the most common ones"
PATTERN = "This password is a repeated or sequential pattern"
EMAIL_PART = "Your password must not contain your e-mail address or the part before the @."


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", SHORT),
        ("eleven char", SHORT),  # 11
        ("twelve chars", None),  # exactly 12
        ("χρυσό φεγγάρ", None),  # 12 characters counted as characters, not UTF-8 bytes
        ("χρυσό φεγγά", SHORT),
        ("διάβασε το βιβλίο", None),  # Greek is as good as Latin; no composition rules
        ("all lower case words here", None),
        ("y" * 127 + "z", None),  # the maximum, 128
        ("y" * 128 + "z", LONG),
        ("password1234", COMMON),
        ("PassWord1234", COMMON),  # case does not hide a common password
        ("qwertyuiop123", COMMON),
        ("1q2w3e4r5t6y", COMMON),
        ("olympiakos1925", COMMON),
        ("aaaaaaaaaaaa", COMMON),
        ("mmmmmmmmmmmmmm", PATTERN),
        ("xyzxyzxyzxyz", PATTERN),
        ("lmnopqrstuvw", PATTERN),
        ("543210987654", PATTERN),
        ("eleni.georgiou-rocks", EMAIL_PART),
        ("My name is ELENI.GEORGIOU", EMAIL_PART),
        ("eleni.georgiou@example.org!", EMAIL_PART),
    ],
)
def test_password_policy(app_ctx: Flask, password: str, problem: str | None) -> None:
    with force_locale("en"):
        found = password_problem(password, email="eleni.georgiou@example.org", min_length=12)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


def test_short_local_parts_are_not_forbidden_words(app_ctx: Flask) -> None:
    """ "jo@example.org" must not forbid every password containing "jo"."""
    assert password_problem("join the orchestra", email="jo@example.org", min_length=12) is None


def test_minimum_length_is_configurable(app: Flask, client: FlaskClient, mailbox: SMTPServer) -> None:
    app.config["PASSWORD_MIN_LENGTH"] = 20
    try:
        response = register(client, "long@example.org", "tulip orbit canoe")  # 17
        assert "Choose a password of at least 20 characters." in page_text(response)
        assert "At least 20 characters." in page_text(client.get("/register"))  # the hint follows
    finally:
        app.config["PASSWORD_MIN_LENGTH"] = 12
    assert mailbox.messages == []


def test_common_password_list_is_large_and_lower_case() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 1000
    assert all(word == word.lower() and word.strip() == word for word in passwords)


@pytest.mark.parametrize(
    ("password", "sentence"),
    [
        ("short", SHORT),
        ("password1234", COMMON),
        ("anna.k-garden-2026", EMAIL_PART),
    ],
)
def test_registration_refuses_a_weak_password_with_its_sentence(
    client: FlaskClient, mailbox: SMTPServer, password: str, sentence: str
) -> None:
    response = register(client, "anna.k@example.org", password)
    assert response.status_code == 400
    assert sentence in page_text(response)
    assert user_by_email("anna.k@example.org") is None
    assert mailbox.messages == []


def test_registration_needs_the_same_password_twice(client: FlaskClient) -> None:
    response = register(client, "anna@example.org", password_confirm="tulip orbit canoe lantern!")
    assert response.status_code == 400
    assert "The two passwords are not the same. Type them again." in page_text(response)
    assert user_by_email("anna@example.org") is None


def test_registration_asks_for_each_missing_field(client: FlaskClient) -> None:
    response = client.post("/register", data={"csrf_token": csrf_token(client, "/register")})
    text = page_text(response)
    for sentence in ("Enter your full name.", "Enter your e-mail address.", "Choose a password."):
        assert sentence in text


# -- registering ---------------------------------------------------------------------------------


def test_registering_creates_an_unconfirmed_account_and_sends_the_link(
    client: FlaskClient, mailbox: SMTPServer
) -> None:
    response = register(client, "  Eleni.Georgiou@Example.org ")
    assert response.status_code == 303 and response.headers["Location"] == CHECK_EMAIL
    page = page_text(client.get(CHECK_EMAIL))
    assert "Check your e-mail" in page and "The link works for 2 days." in page

    user = user_by_email("eleni.georgiou@example.org")
    assert user is not None and user.email_verified_at is None
    assert (user.full_name, user.language) == ("Eleni Georgiou", "en")
    assert user.password_hash.startswith("$argon2id$") and GOOD_PASSWORD not in user.password_hash

    mail = mailbox.only("eleni.georgiou@example.org")
    assert mail.subject == "Confirm your e-mail address for Civic Pay"
    assert "Hello Eleni Georgiou," in mail.text
    assert mail.link_path("/verify/").startswith("/verify/")
    assert mail.html is not None and 'lang="en"' in mail.html


def test_the_confirmation_e_mail_speaks_the_chosen_language(client: FlaskClient, mailbox: SMTPServer) -> None:
    """The visitor browses in English but chose Greek for the account: the e-mail is Greek."""
    register(client, "maria.p@example.org", language="el", full_name="Μαρία Παπαδοπούλου")
    mail = mailbox.only("maria.p@example.org")
    assert mail.subject == "Επιβεβαιώστε τη διεύθυνση e-mail σας για το Civic Pay"
    assert "Γεια σας Μαρία Παπαδοπούλου," in mail.text
    assert "Ο σύνδεσμος ισχύει για 2 ημέρες." in mail.text
    assert mail.html is not None and 'lang="el"' in mail.html


def test_a_taken_address_is_not_revealed_and_its_owner_is_told(client: FlaskClient, mailbox: SMTPServer) -> None:
    owner = UserFactory(email="taken@example.org", full_name="Owner Name")
    owner_hash = owner.password_hash
    fresh = register(client, "new-person@example.org")
    taken = register(client, "Taken@Example.org", full_name="Someone Else")

    # The visitor cannot tell the two apart.
    assert (taken.status_code, taken.headers["Location"]) == (fresh.status_code, fresh.headers["Location"])
    assert taken.get_data() == fresh.get_data()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.email == "taken@example.org")) == 1
    unchanged = user_by_email("taken@example.org")
    assert unchanged is not None
    assert (unchanged.full_name, unchanged.password_hash) == ("Owner Name", owner_hash)

    notice = mailbox.only("taken@example.org")
    assert notice.subject == "Someone tried to create a Civic Pay account with your address"
    assert "No new account was created." in notice.text
    assert "/verify/" not in notice.text
    assert notice.link_path("/password/forgot") == "/password/forgot"
    log_in(client, "taken@example.org", PASSWORD)  # the owner's password still works


def test_registering_while_logged_in_goes_to_the_dashboard(client: FlaskClient) -> None:
    user = UserFactory()
    log_in(client, user.email, PASSWORD)
    assert client.get("/register").headers["Location"] == "/debts"


# -- confirming the address --------------------------------------------------------------------


def test_the_link_confirms_the_address_and_then_log_in_works(client: FlaskClient, mailbox: SMTPServer) -> None:
    register(client, "eleni@example.org")
    link = mailbox.only("eleni@example.org").link_path("/verify/")

    response = client.get(link)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Thank you: your e-mail address is confirmed." in page_text(client.get("/login"))
    user = user_by_email("eleni@example.org")
    assert user is not None and user.email_verified_at is not None
    log_in(client, "eleni@example.org", GOOD_PASSWORD)

    again = client.get(link)  # harmless the second time
    assert again.status_code == 303


def test_an_unconfirmed_account_cannot_log_in(client: FlaskClient, mailbox: SMTPServer) -> None:
    register(client, "eleni@example.org")
    response = client.post(
        "/login",
        data={"email": "eleni@example.org", "password": GOOD_PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 403
    text = page_text(response)
    assert "You need to confirm your e-mail address before you can log in." in text
    assert 'href="/verify/resend"' in text
    assert client.get("/debts").status_code == 302  # not logged in

    wrong = client.post(
        "/login", data={"email": "eleni@example.org", "password": "not it at all", "csrf_token": csrf_token(client)}
    )
    # A wrong password says nothing about the account's state.
    assert "You need to confirm" not in page_text(wrong)
    assert "The e-mail address or password is not right." in page_text(wrong)


def test_a_tampered_link_is_refused_with_a_way_to_get_a_new_one(client: FlaskClient, mailbox: SMTPServer) -> None:
    register(client, "eleni@example.org")
    link = mailbox.only("eleni@example.org").link_path("/verify/")
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    response = client.get(tampered)
    assert response.status_code == 400
    text = page_text(response)
    assert "This confirmation link is not valid." in text
    assert 'action="/verify/resend"' in text and "Send a new link" in text
    user = user_by_email("eleni@example.org")
    assert user is not None and user.email_verified_at is None


def test_a_link_for_another_purpose_does_not_confirm(client: FlaskClient, mailbox: SMTPServer) -> None:
    """A password reset link's token is signed with another salt: it is no confirmation."""
    register(client, "eleni@example.org")
    client.post(
        "/password/forgot", data={"email": "eleni@example.org", "csrf_token": csrf_token(client, "/password/forgot")}
    )
    reset = mailbox.to("eleni@example.org")[-1].link_path("/password/reset/")
    token = reset.rsplit("/", 1)[1]
    assert client.get(f"/verify/{token}").status_code == 400
    user = user_by_email("eleni@example.org")
    assert user is not None and user.email_verified_at is None


def test_an_expired_link_offers_a_new_one_that_works(client: FlaskClient, mailbox: SMTPServer) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        register(client, "eleni@example.org")
    link = mailbox.only("eleni@example.org").link_path("/verify/")

    with time_machine.travel(start + timedelta(days=2, minutes=1), tick=False):
        response = client.get(link)
        assert response.status_code == 400
        text = page_text(response)
        assert "This confirmation link has expired." in text
        assert 'value="eleni@example.org"' in text  # the form is filled in for them
        user = user_by_email("eleni@example.org")
        assert user is not None and user.email_verified_at is None

        resent = client.post(
            "/verify/resend", data={"email": "eleni@example.org", "csrf_token": csrf_token(client, link)}
        )
        assert resent.status_code == 303
        new_link = mailbox.to("eleni@example.org")[-1].link_path("/verify/")
        assert new_link != link
        assert client.get(new_link).status_code == 303
    user = user_by_email("eleni@example.org")
    assert user is not None and user.email_verified_at is not None


def test_a_link_just_within_two_days_still_works(client: FlaskClient, mailbox: SMTPServer) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        register(client, "eleni@example.org")
    link = mailbox.only("eleni@example.org").link_path("/verify/")
    with time_machine.travel(start + timedelta(days=2) - timedelta(minutes=1), tick=False):
        assert client.get(link).status_code == 303


def test_resending_says_the_same_for_every_address(client: FlaskClient, mailbox: SMTPServer) -> None:
    UserFactory(email="confirmed@example.org")
    register(client, "waiting@example.org")
    mailbox.clear()
    answers = []
    for email in ("waiting@example.org", "confirmed@example.org", "nobody@example.org"):
        response = client.post(
            "/verify/resend", data={"email": email, "csrf_token": csrf_token(client, "/verify/resend")}
        )
        page = page_text(client.get("/verify/resend"))
        # CSRF tokens carry their signing second: two pages a second apart differ only there.
        page = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1"', page)
        answers.append((response.status_code, response.headers["Location"], page))
    assert answers[0] == answers[1] == answers[2]
    assert "If this address has an account waiting for confirmation, we have sent it a new link." in answers[0][2]
    # Only the account that waits for confirmation gets mail.
    assert [mail.envelope_to for mail in mailbox.messages] == [["waiting@example.org"]]


# -- rate limits and CSRF ----------------------------------------------------------------------


def test_registration_is_rate_limited(client: FlaskClient, set_limits: Callable[..., None]) -> None:
    set_limits(REGISTER_RATE_LIMIT="2 per hour")
    token = csrf_token(client, "/register")
    statuses = [
        client.post("/register", data={"email": f"r{n}@example.org", "csrf_token": token}).status_code for n in range(3)
    ]
    assert statuses == [400, 400, 429]
    assert client.get("/register").status_code == 200


def test_resending_is_rate_limited_per_address_and_per_client(
    client: FlaskClient, mailbox: SMTPServer, set_limits: Callable[..., None]
) -> None:
    set_limits(VERIFY_RESEND_EMAIL_RATE_LIMIT="2 per hour", VERIFY_RESEND_RATE_LIMIT="3 per hour")
    register(client, "waiting@example.org")
    mailbox.clear()
    token = csrf_token(client, "/verify/resend")

    def resend(email: str) -> int:
        return client.post("/verify/resend", data={"email": email, "csrf_token": token}).status_code

    assert [resend("waiting@example.org") for _ in range(3)] == [303, 303, 429]
    assert len(mailbox.to("waiting@example.org")) == 2  # the inbox is not flooded
    assert resend("WAITING@example.org ") == 429  # the same address, written differently
    assert resend("other@example.org") == 303  # another address from the same client
    assert resend("third@example.org") == 429  # the client's own limit (3 sent) is reached


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/register", {"full_name": "A", "email": "a@example.org", "password": GOOD_PASSWORD,
                       "password_confirm": GOOD_PASSWORD, "language": "en"}),
        ("/verify/resend", {"email": "a@example.org"}),
    ],
)  # fmt: skip
def test_forms_need_a_csrf_token(client: FlaskClient, mailbox: SMTPServer, path: str, data: dict) -> None:
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert "This form has expired or was sent from elsewhere." in page_text(response)
    assert user_by_email("a@example.org") is None
    assert mailbox.messages == []
