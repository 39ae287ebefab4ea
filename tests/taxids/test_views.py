"""/tax-ids through the test client: claim, prove by e-mail code or notice, lock, privacy, CSRF."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.models import TaxIdLink, User
from app.db import utcnow
from app.debts.models import Debtor
from app.extensions import db
from app.taxids.sms import RecordingSMSGateway
from tests.factories import PASSWORD, DebtFactory, DebtorFactory, UserFactory, link, new_afm
from tests.helpers import code_in, csrf_token, log_in, page_text
from tests.mail.smtp import SMTPServer

_DESTINATION = re.compile(r'name="destination"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="destination"')
_RADIO = re.compile(r'<input[^>]*type="radio"[^>]*>\s*<label for="[^"]+">([^<]+)</label>')


def citizen(client: FlaskClient) -> int:
    """A new account with no tax ID, logged in; its id."""
    user = UserFactory()
    user_id, email = user.id, user.email
    log_in(client, email, PASSWORD)
    return user_id


def link_to(user_id: int, debt: NoticeDebt | str, *, verified: bool = True) -> int:
    """Give the account a claim (proven by default) on the debt's tax ID, or on an AFM; its id."""
    afm = debt if isinstance(debt, str) else debt.afm
    debtor = db.session.scalars(select(Debtor).where(Debtor.country == "GR", Debtor.tax_id == afm)).one()
    return link(db.session.get(User, user_id), debtor, verified=verified).id


@dataclass(frozen=True)
class NoticeDebt:
    """What a test needs of a debt after requests have detached the row."""

    afm: str
    rf_reference: str
    debtor_id: int


def debt_of_new_debtor(**fields: object) -> NoticeDebt:
    """One debt of a debtor with a valid AFM, named so that a leak would show."""
    debtor = DebtorFactory(tax_id=new_afm(), name="Eleni Georgiou")
    fields.setdefault("description", "Property fee, Aegean Street 14")
    fields.setdefault("principal_minor", 18640)
    fields.setdefault("due_date", date.today() - timedelta(days=30))
    debt = DebtFactory(debtor=debtor, **fields)
    return NoticeDebt(debtor.tax_id, debt.rf_reference, debtor.id)


def claim(client: FlaskClient, afm: str, country: str = "GR"):
    token = csrf_token(client, "/tax-ids")
    return client.post("/tax-ids", data={"country": country, "number": afm, "csrf_token": token})


def claim_id(user_id: int, afm: str) -> int:
    return db.session.scalar(select(TaxIdLink.id).where(TaxIdLink.user_id == user_id, TaxIdLink.tax_id == afm))


def destinations(client: FlaskClient, link_id: int) -> dict[str, str]:
    """Masked label → form key of each destination the prove page offers."""
    html = page_text(client.get(f"/tax-ids/{link_id}"))
    keys = [first or second for first, second in _DESTINATION.findall(html)]
    labels = _RADIO.findall(html)
    assert len(keys) == len(labels), html
    return dict(zip(labels, keys, strict=True))


def send_code(client: FlaskClient, link_id: int, key: str):
    token = csrf_token(client, f"/tax-ids/{link_id}")
    return client.post(f"/tax-ids/{link_id}/send-code", data={"destination": key, "csrf_token": token})


def enter_code(client: FlaskClient, link_id: int, code: str):
    token = csrf_token(client, f"/tax-ids/{link_id}/code")
    return client.post(f"/tax-ids/{link_id}/code", data={"code": code, "csrf_token": token})


def send_notice(client: FlaskClient, link_id: int, rf_reference: str, amount: str):
    token = csrf_token(client, f"/tax-ids/{link_id}/notice")
    return client.post(
        f"/tax-ids/{link_id}/notice", data={"rf_reference": rf_reference, "amount": amount, "csrf_token": token}
    )


def email_key(client: FlaskClient, link_id: int) -> str:
    (key,) = [key for label, key in destinations(client, link_id).items() if label.startswith("By e-mail")]
    return key


# -- the list and the claim form ----------------------------------------------------------------------


def test_the_pages_need_a_login(client: FlaskClient) -> None:
    response = client.get("/tax-ids")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_menu_and_an_empty_dashboard_lead_to_adding_a_tax_id(client: FlaskClient) -> None:
    citizen(client)
    dashboard = page_text(client.get("/debts"))
    assert 'href="/tax-ids">My tax IDs</a>' in dashboard
    assert "Your account has no proven tax ID yet" in dashboard
    assert "You have no unpaid debts" not in dashboard
    listing = page_text(client.get("/tax-ids"))
    assert "You have not added a tax ID yet." in listing
    assert '<option selected value="GR">Greece</option>' in listing
    assert '<option value="CY">Cyprus</option>' in listing


def test_an_invalid_afm_is_refused_with_a_sentence(client: FlaskClient) -> None:
    user = citizen(client)
    response = claim(client, "147382607")
    assert response.status_code == 400
    assert "This tax ID contains a typing mistake: its check digit does not match." in page_text(response)
    short = claim(client, "1473826")
    assert "This is not a valid AFM: a Greek tax ID has exactly 9 digits." in page_text(short)
    empty = claim(client, "  ")
    assert "Enter the tax ID number." in page_text(empty)
    assert db.session.scalars(select(TaxIdLink).where(TaxIdLink.user_id == user)).all() == []


def test_a_valid_claim_is_stored_compact_and_listed_as_unproven(client: FlaskClient) -> None:
    user = citizen(client)
    afm = new_afm()
    response = claim(client, f"EL {afm[:3]} {afm[3:6]} {afm[6:]}")
    link_id = claim_id(user, afm)
    assert response.status_code == 303 and response.headers["Location"] == f"/tax-ids/{link_id}"
    listing = page_text(client.get("/tax-ids"))
    assert f"AFM {afm}" in listing and "Not proven yet: its debts stay hidden" in listing


def test_the_list_is_in_greek_for_greek_speakers(client: FlaskClient) -> None:
    citizen(client)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "el"
    with client.session_transaction() as session:
        session["language"] = "el"
    listing = page_text(client.get("/tax-ids"))
    assert '<html lang="el">' in listing
    assert '<option selected value="GR">Ελλάδα</option>' in listing


# -- proof by e-mail code ---------------------------------------------------------------------------------


def test_the_code_from_the_email_proves_the_tax_id_and_its_debts_appear(
    client: FlaskClient, mailbox: SMTPServer
) -> None:
    debt = debt_of_new_debtor(contact_email="eleni.g@example.org")
    afm = debt.afm
    user = citizen(client)
    claim(client, afm)
    link_id = claim_id(user, afm)

    before = page_text(client.get("/debts"))
    assert "Property fee, Aegean Street 14" not in before and "Your account has no proven tax ID yet" in before
    prove_page = page_text(client.get(f"/tax-ids/{link_id}"))
    assert "By e-mail to e•••@example.org" in prove_page
    # Nothing about the debtor before proof: no address, name, debt or amount.
    for secret in ("eleni.g@example.org", "Eleni Georgiou", "Aegean", "186.40", "186,40"):
        assert secret not in prove_page

    sent = send_code(client, link_id, email_key(client, link_id))
    assert sent.status_code == 303 and sent.headers["Location"] == f"/tax-ids/{link_id}/code"
    code_page = page_text(client.get(sent.headers["Location"]))
    assert "We have sent an e-mail with a code to e•••@example.org." in code_page
    mail = mailbox.only("eleni.g@example.org")
    assert mail.subject == "Your Civic Pay code"

    proven = enter_code(client, link_id, code_in(mail.text))
    assert proven.status_code == 303 and proven.headers["Location"] == "/debts"
    after = page_text(client.get("/debts"))
    assert f"Thank you: AFM {afm} is proven. Its debts now appear on your list." in after
    assert "Property fee, Aegean Street 14" in after and "€186.40" in after
    assert "Proven on" in page_text(client.get("/tax-ids"))


def test_several_contacts_let_the_citizen_choose_and_the_sms_goes_to_the_phone(
    client: FlaskClient, sms: RecordingSMSGateway, mailbox: SMTPServer
) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org", contact_phone="+306900000101")
    DebtFactory(
        debtor=db.session.get(Debtor, debt.debtor_id), contact_email="e.georgiou@mail.gr", contact_phone="+306900000101"
    )
    user = citizen(client)
    claim(client, debt.afm)
    link_id = claim_id(user, debt.afm)
    offered = destinations(client, link_id)
    assert sorted(offered) == [
        "By e-mail to e•••@example.org",
        "By e-mail to e•••@mail.gr",
        "By text message to +30 69•• •••101",
    ]
    send_code(client, link_id, offered["By text message to +30 69•• •••101"])
    (message,) = sms.sent
    assert message.to == "+306900000101" and mailbox.messages == []
    assert enter_code(client, link_id, code_in(message.text)).headers["Location"] == "/debts"


def test_wrong_codes_count_and_the_fifth_locks_the_tax_id_until_the_lock_expires(
    client: FlaskClient, mailbox: SMTPServer
) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org")
    start = utcnow()
    with time_machine.travel(start, tick=False) as traveller:
        user = citizen(client)
        claim(client, debt.afm)
        link_id = claim_id(user, debt.afm)
        send_code(client, link_id, email_key(client, link_id))
        code = code_in(mailbox.only("eleni@example.org").text)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for left in (4, 3, 2, 1):
            response = enter_code(client, link_id, wrong)
            assert response.status_code == 400
            times = "time" if left == 1 else "times"
            assert f"This code is not right. You can try {left} more {times}." in page_text(response)
        fifth = page_text(enter_code(client, link_id, wrong))
        assert "Too many wrong answers: this tax ID is locked until" in fifth
        # Locked: the right code is refused too, and the list says so.
        assert "locked until" in page_text(enter_code(client, link_id, code))
        assert "Locked until" in page_text(client.get("/tax-ids"))
        assert "Property fee" not in page_text(client.get("/debts"))

        traveller.shift(timedelta(minutes=30, seconds=1))
        mailbox.clear()
        assert "locked" not in page_text(client.get(f"/tax-ids/{link_id}/code")).lower()
        send_code(client, link_id, email_key(client, link_id))
        new_code = code_in(mailbox.only("eleni@example.org").text)
        assert enter_code(client, link_id, new_code).headers["Location"] == "/debts"
        # Still in travelled time: the session cookie would look signed in the future otherwise.
        assert "Property fee, Aegean Street 14" in page_text(client.get("/debts"))


def test_an_expired_code_is_refused(client: FlaskClient, mailbox: SMTPServer) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org")
    with time_machine.travel(utcnow(), tick=False) as traveller:
        user = citizen(client)
        claim(client, debt.afm)
        link_id = claim_id(user, debt.afm)
        send_code(client, link_id, email_key(client, link_id))
        code = code_in(mailbox.only("eleni@example.org").text)
        traveller.shift(timedelta(minutes=10, seconds=1))
        response = enter_code(client, link_id, code)
    assert response.status_code == 400
    assert "This code has expired. Please ask for a new one." in page_text(response)
    assert "Property fee" not in page_text(client.get("/debts"))


def test_asking_for_codes_too_fast_is_refused(client: FlaskClient, mailbox: SMTPServer) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org")
    user = citizen(client)
    claim(client, debt.afm)
    link_id = claim_id(user, debt.afm)
    key = email_key(client, link_id)
    send_code(client, link_id, key)
    again = send_code(client, link_id, key)
    assert again.status_code == 429
    assert "We have just sent you a code. Please wait" in page_text(again)
    assert len(mailbox.messages) == 1


def test_codes_for_one_tax_id_are_rate_limited_across_accounts(
    app: Flask, client: FlaskClient, mailbox: SMTPServer
) -> None:
    app.config["TAXID_SEND_PER_TAX_ID_RATE_LIMIT"] = "2 per hour"
    try:
        debt = debt_of_new_debtor(contact_email="eleni@example.org")
        statuses = []
        for _ in range(3):
            user = citizen(client)
            claim(client, debt.afm)
            link_id = claim_id(user, debt.afm)
            statuses.append(send_code(client, link_id, email_key(client, link_id)).status_code)
            client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})
    finally:
        app.config.pop("TAXID_SEND_PER_TAX_ID_RATE_LIMIT")
    assert statuses == [303, 303, 429]
    assert len(mailbox.to("eleni@example.org")) == 2


# -- proof by notice ------------------------------------------------------------------------------------


def test_without_contacts_the_page_says_so_and_the_notice_proves_the_tax_id(client: FlaskClient) -> None:
    debt = debt_of_new_debtor(contact_email=None, contact_phone=None, principal_minor=12000)
    user = citizen(client)
    claim(client, debt.afm)
    link_id = claim_id(user, debt.afm)
    prove_page = page_text(client.get(f"/tax-ids/{link_id}"))
    assert "The agencies hold no e-mail address or mobile number for this tax ID" in prove_page
    assert f'href="/tax-ids/{link_id}/notice"' in prove_page

    wrong = send_notice(client, link_id, debt.rf_reference, "12,00")
    assert wrong.status_code == 400
    assert "The payment code and amount do not match a notice of this tax ID from the last two years." in page_text(
        wrong
    )
    typo = send_notice(client, link_id, "RF12 3", "120,00")
    assert "This is not a payment code as printed on notices" in page_text(typo)
    assert db.session.get(TaxIdLink, link_id).failed_attempts == 1  # the typo did not count

    proven = send_notice(client, link_id, debt.rf_reference.lower(), "120,00")
    assert proven.headers["Location"] == "/debts"
    assert "Property fee, Aegean Street 14" in page_text(client.get("/debts"))


def test_a_tax_id_without_debts_is_told_so_only_after_a_valid_claim(client: FlaskClient) -> None:
    user = citizen(client)
    afm = new_afm()
    claim(client, afm)
    page = page_text(client.get(f"/tax-ids/{claim_id(user, afm)}"))
    assert "We could not find debts for this tax ID." in page
    assert "Prove with a payment notice" not in page


# -- privacy ---------------------------------------------------------------------------------------------


def test_another_accounts_tax_id_cannot_be_seen_or_proven_by_url(client: FlaskClient, mailbox: SMTPServer) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org")
    theirs = link_to(UserFactory().id, debt, verified=False)
    citizen(client)
    assert debt.afm not in page_text(client.get("/tax-ids"))
    for path in (f"/tax-ids/{theirs}", f"/tax-ids/{theirs}/code", f"/tax-ids/{theirs}/notice"):
        assert client.get(path).status_code == 404, path
    token = csrf_token(client, "/tax-ids")
    posts = {
        f"/tax-ids/{theirs}/send-code": {"destination": "x"},
        f"/tax-ids/{theirs}/code": {"code": "123456"},
        f"/tax-ids/{theirs}/notice": {"rf_reference": debt.rf_reference, "amount": "186,40"},
        f"/tax-ids/{theirs}/remove": {},
    }
    for path, data in posts.items():
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 404, path
    stored = db.session.get(TaxIdLink, theirs)
    db.session.refresh(stored)
    assert stored.verified_at is None and stored.code_hash is None and stored.failed_attempts == 0
    assert mailbox.messages == []


def test_a_family_may_prove_the_same_tax_id_from_two_accounts(client: FlaskClient) -> None:
    debt = debt_of_new_debtor(contact_email=None, principal_minor=12000)
    for _ in range(2):
        user = citizen(client)
        claim(client, debt.afm)
        send_notice(client, claim_id(user, debt.afm), debt.rf_reference, "120")
        assert "Property fee, Aegean Street 14" in page_text(client.get("/debts"))
        client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})


def test_removing_a_tax_id_hides_its_debts_again(client: FlaskClient) -> None:
    debt = debt_of_new_debtor()
    user = citizen(client)
    proven = link_to(user, debt)
    assert "Property fee, Aegean Street 14" in page_text(client.get("/debts"))
    token = csrf_token(client, "/tax-ids")
    response = client.post(f"/tax-ids/{proven}/remove", data={"csrf_token": token})
    assert response.status_code == 303
    assert f"AFM {debt.afm} has been removed from your account." in page_text(client.get("/tax-ids"))
    assert "Property fee" not in page_text(client.get("/debts"))


def test_every_form_needs_its_csrf_token(client: FlaskClient, mailbox: SMTPServer) -> None:
    debt = debt_of_new_debtor(contact_email="eleni@example.org")
    user = citizen(client)
    mine = link_to(user, debt, verified=False)
    key = email_key(client, mine)
    posts = {
        "/tax-ids": {"country": "GR", "number": new_afm()},
        f"/tax-ids/{mine}/send-code": {"destination": key},
        f"/tax-ids/{mine}/code": {"code": "123456"},
        f"/tax-ids/{mine}/notice": {"rf_reference": debt.rf_reference, "amount": "186,40"},
        f"/tax-ids/{mine}/remove": {},
    }
    for path, data in posts.items():
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "This form has expired or was sent from elsewhere." in page_text(response), path
    stored = db.session.get(TaxIdLink, mine)
    db.session.refresh(stored)
    assert stored.verified_at is None and stored.code_hash is None and stored.failed_attempts == 0
    assert len(db.session.scalars(select(TaxIdLink).where(TaxIdLink.user_id == user)).all()) == 1
    assert mailbox.messages == []


@pytest.mark.parametrize("path", ["/tax-ids/{id}/code", "/tax-ids/{id}/notice", "/tax-ids/{id}"])
def test_a_proven_tax_id_sends_the_citizen_back_to_the_list(client: FlaskClient, path: str) -> None:
    user = citizen(client)
    proven = link_to(user, debt_of_new_debtor())
    response = client.get(path.format(id=proven))
    assert response.status_code == 303 and response.headers["Location"] == "/tax-ids"
    assert "This tax ID is already proven" in page_text(client.get("/tax-ids"))
