"""Accounts in a real browser: register, confirm by the e-mailed link, log in, the account page.

The portal sends its mail by SMTP to a local aiosmtpd server; every link is read from there.
Every page is checked with axe-core, including the error states.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from playwright.sync_api import Page, expect

from tests.e2e.steps import PASSWORD, Snap, assert_accessible, emailed_link, log_in, register
from tests.mail.smtp import SMTPServer


def main_menu_link(page: Page, name: str):
    return page.get_by_role("navigation", name="Main menu").get_by_role("link", name=name, exact=True)


def test_register_confirm_log_in_and_edit_the_account(page: Page, mailbox: SMTPServer, snap: Snap) -> None:
    page.goto("/")
    main_menu_link(page, "Register").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")

    page.get_by_role("button", name="Create account").click()  # empty: every error shown and tied
    name = page.get_by_label("Full name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description("Enter your full name.")
    assert_accessible(page)
    snap(page, "01-register-errors")

    register(page, "eleni@example.org", password="password1234")
    expect(page.get_by_label("Password", exact=True)).to_have_accessible_description(
        re.compile(r"This password is one of the most common ones")
    )
    register(page, "eleni@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    assert_accessible(page)
    snap(page, "02-check-email")

    page.goto(emailed_link(mailbox, "eleni@example.org", "/verify/"))
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status")).to_have_text(re.compile("your e-mail address is confirmed"))
    assert_accessible(page)
    snap(page, "03-confirmed")

    log_in(page, "eleni@example.org", PASSWORD)
    main_menu_link(page, "My account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    assert_accessible(page)
    snap(page, "04-account")

    page.get_by_label("Mobile phone (optional)").fill("691 234")
    page.get_by_role("button", name="Save changes").click()
    phone = page.get_by_label("Mobile phone (optional)")
    expect(phone).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    snap(page, "05-account-errors")

    phone.fill("+30 691 234 5678")
    page.get_by_label("By text message (SMS)").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Your details have been saved.")
    expect(page.get_by_label("Mobile phone (optional)")).to_have_value("+306912345678")
    expect(page.get_by_label("By text message (SMS)")).to_be_checked()


def test_unconfirmed_log_in_and_an_expired_link(page: Page, mailbox: SMTPServer, snap: Snap) -> None:
    start = datetime.now(UTC)
    page.goto("/register")
    register(page, "nikos@example.org", name="Nikos Pappas")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    link = emailed_link(mailbox, "nikos@example.org", "/verify/")

    page.goto("/login")
    page.get_by_label("E-mail address").fill("nikos@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("You need to confirm your e-mail address")
    assert_accessible(page)
    snap(page, "01-login-unconfirmed")

    # Two days and a bit later (the portal runs in this process, so its clock moves too).
    with time_machine.travel(start + timedelta(days=2, minutes=5)):
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("This link cannot be used")
        expect(page.get_by_text("This confirmation link has expired.")).to_be_visible()
        expect(page.get_by_label("E-mail address")).to_have_value("nikos@example.org")
        assert_accessible(page)
        snap(page, "02-verify-expired")
        mailbox.clear()
        page.get_by_role("button", name="Send a new link").click()
        expect(page.get_by_role("status")).to_contain_text("we have sent it a new link")
        assert_accessible(page)
        page.goto(emailed_link(mailbox, "nikos@example.org", "/verify/"))
        expect(page).to_have_url(re.compile(r"/login$"))
        log_in(page, "nikos@example.org", PASSWORD)


def test_forgotten_password(page: Page, mailbox: SMTPServer, snap: Snap) -> None:
    page.goto("/register")
    register(page, "maria.k@example.org", name="Maria K")
    page.goto(emailed_link(mailbox, "maria.k@example.org", "/verify/"))

    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    assert_accessible(page)
    snap(page, "01-forgot")
    mailbox.clear()
    page.get_by_label("E-mail address").fill("maria.k@example.org")
    page.get_by_role("button", name="Send me a reset link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    assert_accessible(page)
    snap(page, "02-forgot-sent")

    link = emailed_link(mailbox, "maria.k@example.org", "/password/reset/")
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    assert_accessible(page)
    snap(page, "03-reset")
    page.get_by_label("New password", exact=True).fill("maria.k the great")
    page.get_by_label("New password again").fill("maria.k the great")
    page.get_by_role("button", name="Save the new password").click()
    new_password = page.get_by_label("New password", exact=True)
    expect(new_password).to_have_accessible_description(re.compile("must not contain your e-mail address"))
    assert_accessible(page)
    snap(page, "04-reset-errors")

    new_password.fill("quiet meadow at dawn")
    page.get_by_label("New password again").fill("quiet meadow at dawn")
    page.get_by_role("button", name="Save the new password").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("Your new password has been saved."))
    log_in(page, "maria.k@example.org", "quiet meadow at dawn")

    page.goto(link)  # used once: no more
    expect(page.get_by_role("heading", level=1)).to_have_text("This link cannot be used")
    assert_accessible(page)
    snap(page, "05-reset-used")
