"""Claiming and proving tax IDs: numbers, amounts, masks, codes, notices and the lock."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import TaxIdLink
from app.debts.services import open_items_for_user
from app.extensions import db
from app.taxids import services
from app.taxids.services import ClaimNotFound, InvalidTaxId, ProofError
from app.taxids.sms import FileSMSGateway, RecordingSMSGateway, SMSDeliveryError
from tests.factories import DebtFactory, DebtorFactory, UserFactory, new_afm
from tests.helpers import code_in
from tests.mail.smtp import SMTPServer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("app_ctx")


def claimed(user_id: int, afm: str, now: datetime = NOW) -> TaxIdLink:
    return services.claim_tax_id(user_id, "GR", afm, now).link


def debtor_with_debt(**debt: object):
    """A debtor with a valid AFM and one debt (contact details as the ERP holds them)."""
    debtor = DebtorFactory(tax_id=new_afm(), name="Eleni Georgiou")
    return DebtFactory(debtor=debtor, **debt)


# -- tax ID numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "typed", "stored"),
    [
        ("GR", "147382606", "147382606"),
        ("GR", "EL 147 382 606", "147382606"),
        ("GR", "GR147382606", "147382606"),
        ("gr", " 147-382-606 ", "147382606"),
        ("GR", "47382603", "047382603"),  # the old 8-digit form gains its leading zero
        ("DE", "DE 136,695,976", "136695976"),
        ("CY", "CY-10259033P", "10259033P"),
    ],
)
def test_valid_tax_ids_are_stored_compact_without_the_country_prefix(country: str, typed: str, stored: str) -> None:
    assert services.normalise_tax_id(country, typed) == stored


@pytest.mark.parametrize(
    ("country", "typed", "reason"),
    [
        ("GR", "147382607", "checksum"),  # one digit off
        ("GR", "1473826", "length"),
        ("GR", "1473826060", "length"),
        ("GR", "14738260A", "format"),
        ("GR", "", "format"),
        ("DE", "136695977", "checksum"),
        ("XX", "147382606", "country"),
        ("EU", "147382606", "country"),
    ],
)
def test_invalid_tax_ids_are_refused_with_the_reason(country: str, typed: str, reason: str) -> None:
    with pytest.raises(InvalidTaxId) as refused:
        services.normalise_tax_id(country, typed)
    assert refused.value.reason == reason


def test_the_countries_offered_are_those_stdnum_checks() -> None:
    countries = services.supported_countries()
    assert {"GR", "CY", "DE", "FR", "IT"} <= set(countries)
    assert "EU" not in countries and "US" not in countries


# -- amounts as printed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("120,00", 12000),
        ("120.00", 12000),
        ("120", 12000),
        ("120,5", 12050),
        ("0,07", 7),
        ("1.234,56", 123456),
        ("1,234.56", 123456),
        ("1 234,56", 123456),
        ("1.234", 123400),
        ("€ 120,00", 12000),
        ("120,00 €", 12000),
        ("120,00\u00a0€", 12000),
    ],
)
def test_amounts_are_read_as_printed_on_notices(typed: str, minor: int) -> None:
    assert services.parse_amount(typed, "EUR") == minor


@pytest.mark.parametrize("typed", ["", "abc", "12.34.56", "1.234.567,5.0", "-120", "1,234,56"])
def test_text_that_is_no_amount_is_refused(typed: str) -> None:
    with pytest.raises(ValueError):
        services.parse_amount(typed, "EUR")


# -- masks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "masked"),
    [("maria@example.org", "m•••@example.org"), ("Jo@mail.gr", "J•••@mail.gr"), ("x@y.gr", "x•••@y.gr")],
)
def test_emails_are_masked(address: str, masked: str) -> None:
    assert services.mask_email(address) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+306900000101", "+30 69•• •••101"),
        ("0030 690 000 0101", "+30 69•• •••101"),
        ("+35799123456", "+357 99•• •456"),
        ("+14155550123", "+1 41•• •••123"),
        ("6900000101", "69•• •••101"),
    ],
)
def test_phones_are_masked(phone: str, masked: str) -> None:
    assert services.mask_phone(phone) == masked


# -- claims -----------------------------------------------------------------------------------------


def test_a_claim_is_unproven_and_shows_no_debt() -> None:
    user = UserFactory()
    debt = debtor_with_debt()
    link = claimed(user.id, debt.debtor.tax_id)
    assert link.verified_at is None and link.user_id == user.id
    assert services.claim_state(link, NOW).state == services.UNPROVEN
    assert open_items_for_user(user.id, NOW) == []
    assert not services.has_proven_tax_id(user.id)


def test_claiming_twice_keeps_one_claim_and_several_accounts_may_claim_one_tax_id() -> None:
    debt = debtor_with_debt()
    first, second = UserFactory(), UserFactory()
    one = services.claim_tax_id(first.id, "GR", debt.debtor.tax_id, NOW)
    again = services.claim_tax_id(first.id, "GR", "EL" + debt.debtor.tax_id, NOW)
    other = services.claim_tax_id(second.id, "GR", debt.debtor.tax_id, NOW)
    assert one.created and not again.created and again.link.id == one.link.id
    assert other.created and other.link.id != one.link.id


def test_an_account_cannot_reach_another_accounts_claim() -> None:
    owner, stranger = UserFactory(), UserFactory()
    link = claimed(owner.id, debtor_with_debt().debtor.tax_id)
    for attempt in (
        lambda: services.get_claim(stranger.id, link.id),
        lambda: services.proof_options(stranger.id, link.id, NOW),
        lambda: services.verify_code(stranger.id, link.id, "123456", NOW),
        lambda: services.verify_notice(stranger.id, link.id, "RF18539007547034", "1", NOW),
        lambda: services.remove_claim(stranger.id, link.id),
    ):
        with pytest.raises(ClaimNotFound):
            attempt()
    assert services.get_claim(owner.id, link.id).id == link.id


# -- destinations -----------------------------------------------------------------------------------


def test_destinations_are_every_contact_the_erps_hold_masked_and_deduplicated() -> None:
    debt = debtor_with_debt(contact_email="Maria@Example.org", contact_phone="+30 690 000 0101")
    DebtFactory(debtor=debt.debtor, contact_email="maria@example.org", contact_phone="+306900000101")
    DebtFactory(debtor=debt.debtor, contact_email="papa@mail.gr", contact_phone=None)
    other = debtor_with_debt(contact_email="someone.else@example.org")
    user = UserFactory()
    options = services.proof_options(user.id, claimed(user.id, debt.debtor.tax_id).id, NOW)
    assert [(d.method, d.masked) for d in options.destinations] == [
        ("email_code", "m•••@example.org"),
        ("email_code", "p•••@mail.gr"),
        ("sms_code", "+30 69•• •••101"),
    ]
    assert options.has_debts
    assert all(other.contact_email not in d.address for d in options.destinations)
    # The form names destinations by keys that are not the addresses.
    assert all(re.fullmatch(r"[0-9a-f]{20}", d.key) and d.address not in d.key for d in options.destinations)


def test_without_contacts_the_notice_is_the_way_and_without_debts_there_is_nothing() -> None:
    user = UserFactory()
    quiet = debtor_with_debt(contact_email=None, contact_phone=None)
    options = services.proof_options(user.id, claimed(user.id, quiet.debtor.tax_id).id, NOW)
    assert options.destinations == [] and options.has_debts
    unknown = services.proof_options(user.id, claimed(user.id, new_afm()).id, NOW)
    assert unknown.destinations == [] and not unknown.has_debts


# -- codes -------------------------------------------------------------------------------------------


def send_by_email(user_id: int, link: TaxIdLink, now: datetime = NOW) -> services.SentCode:
    options = services.proof_options(user_id, link.id, now)
    destination = next(d for d in options.destinations if d.method == "email_code")
    return services.send_code(user_id, link.id, destination.key, now)


def test_a_code_by_email_proves_the_claim_and_only_its_hash_is_stored(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(contact_email="maria.p@example.org")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    sent = send_by_email(user.id, link)
    assert sent.destination.masked == "m•••@example.org"
    assert sent.expires_at == NOW + timedelta(minutes=10)
    mail = mailbox.only("maria.p@example.org")
    code = code_in(mail.text)
    assert user.email in mail.text and debt.debtor.tax_id in mail.text
    stored = db.session.scalars(select(TaxIdLink).where(TaxIdLink.id == link.id)).one()
    assert stored.code_hash is not None and len(stored.code_hash) == 64 and code not in stored.code_hash
    assert stored.proof_method == "email_code"
    services.verify_code(user.id, link.id, code, NOW + timedelta(minutes=9))
    proven = services.get_claim(user.id, link.id)
    assert proven.verified_at == NOW + timedelta(minutes=9) and proven.code_hash is None
    assert [item.debt.id for group in open_items_for_user(user.id, NOW) for item in group.items] == [debt.id]


def test_a_code_by_text_message_goes_to_the_phone_chosen(sms: RecordingSMSGateway) -> None:
    debt = debtor_with_debt(contact_email="a@example.org", contact_phone="+306912345678")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    phone = next(d for d in services.proof_options(user.id, link.id, NOW).destinations if d.method == "sms_code")
    services.send_code(user.id, link.id, phone.key, NOW)
    (message,) = sms.to("+306912345678")
    services.verify_code(user.id, link.id, code_in(message.text), NOW)
    assert services.get_claim(user.id, link.id).proof_method == "sms_code"


def test_a_key_the_service_did_not_offer_sends_nothing(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(contact_email="a@example.org")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    with pytest.raises(ProofError) as refused:
        services.send_code(user.id, link.id, "a@example.org", NOW)
    assert refused.value.code == "unknown_destination"
    assert mailbox.messages == []


def test_an_expired_code_is_refused_even_when_right(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(contact_email="a@example.org")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    send_by_email(user.id, link)
    code = code_in(mailbox.only("a@example.org").text)
    with pytest.raises(ProofError) as refused:
        services.verify_code(user.id, link.id, code, NOW + timedelta(minutes=10))
    assert refused.value.code == "expired"
    assert services.get_claim(user.id, link.id).verified_at is None


def test_five_wrong_codes_lock_the_claim_for_thirty_minutes(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(contact_email="a@example.org")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    send_by_email(user.id, link)
    code = code_in(mailbox.only("a@example.org").text)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    outcomes = []
    for _ in range(5):
        with pytest.raises(ProofError) as refused:
            services.verify_code(user.id, link.id, wrong, NOW)
        outcomes.append((refused.value.code, refused.value.details.get("attempts_left")))
    assert outcomes == [("wrong_code", 4), ("wrong_code", 3), ("wrong_code", 2), ("wrong_code", 1), ("locked", None)]
    locked = services.get_claim(user.id, link.id)
    assert locked.locked_until == NOW + timedelta(minutes=30)
    assert services.claim_state(locked, NOW).state == services.LOCKED
    # Locked: even the right code is refused, and no new code is sent.
    with pytest.raises(ProofError, match="locked"):
        services.verify_code(user.id, link.id, code, NOW + timedelta(minutes=1))
    with pytest.raises(ProofError, match="locked"):
        send_by_email(user.id, link, NOW + timedelta(minutes=29))
    # The lock lapses; the code was voided with it, a new one works.
    later = NOW + timedelta(minutes=30, seconds=1)
    assert services.claim_state(services.get_claim(user.id, link.id), later).state == services.UNPROVEN
    with pytest.raises(ProofError, match="no_code"):
        services.verify_code(user.id, link.id, code, later)
    mailbox.clear()
    send_by_email(user.id, link, later)
    services.verify_code(user.id, link.id, code_in(mailbox.only("a@example.org").text), later)
    assert services.get_claim(user.id, link.id).verified_at == later


def test_the_limits_come_from_the_settings(app: Flask, mailbox: SMTPServer) -> None:
    app.config.update(TAXID_MAX_ATTEMPTS=2, TAXID_LOCK_MINUTES=5)
    try:
        debt = debtor_with_debt(contact_email="a@example.org")
        user = UserFactory()
        link = claimed(user.id, debt.debtor.tax_id)
        send_by_email(user.id, link)
        for expected in ("wrong_code", "locked"):
            with pytest.raises(ProofError, match=expected):
                services.verify_code(user.id, link.id, "not-it", NOW)
        assert services.get_claim(user.id, link.id).locked_until == NOW + timedelta(minutes=5)
    finally:
        app.config.pop("TAXID_MAX_ATTEMPTS")
        app.config.pop("TAXID_LOCK_MINUTES")


def test_a_new_code_waits_a_minute_and_replaces_the_old_one(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(contact_email="a@example.org")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    send_by_email(user.id, link)
    first = code_in(mailbox.only("a@example.org").text)
    with pytest.raises(ProofError) as refused:
        send_by_email(user.id, link, NOW + timedelta(seconds=20))
    assert (refused.value.code, refused.value.details["seconds"]) == ("too_soon", 40)
    assert len(mailbox.messages) == 1
    mailbox.clear()
    send_by_email(user.id, link, NOW + timedelta(seconds=60))
    second = code_in(mailbox.only("a@example.org").text)
    if first != second:  # one chance in a million that they are the same
        with pytest.raises(ProofError, match="wrong_code"):
            services.verify_code(user.id, link.id, first, NOW + timedelta(seconds=61))
    services.verify_code(user.id, link.id, second, NOW + timedelta(seconds=62))


class _BrokenGateway:
    """An SMS gateway that is down (stands in for a provider outage)."""

    def send(self, to: str, text: str) -> None:
        raise SMSDeliveryError("the provider did not answer")


def test_a_code_that_could_not_be_sent_is_not_kept(app: Flask) -> None:
    debt = debtor_with_debt(contact_email=None, contact_phone="+306912345678")
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    (phone,) = services.proof_options(user.id, link.id, NOW).destinations
    app.config["SMS_GATEWAY"] = _BrokenGateway()
    try:
        with pytest.raises(ProofError, match="not_delivered"):
            services.send_code(user.id, link.id, phone.key, NOW)
    finally:
        app.config.pop("SMS_GATEWAY")
    stored = services.get_claim(user.id, link.id)
    assert stored.code_hash is None and stored.code_expires_at is None  # and no waiting for a resend


def test_the_file_gateway_writes_each_message_to_a_file(tmp_path: Path) -> None:
    FileSMSGateway(tmp_path / "sms").send("+306912345678", "Civic Pay: your code is 123456.")
    (written,) = (tmp_path / "sms").glob("*.txt")
    assert written.read_text(encoding="utf-8") == "To: +306912345678\n\nCivic Pay: your code is 123456.\n"


# -- notices -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["120,00", "120.00", "120", "€120,00"])
def test_the_rf_code_and_amount_of_a_recent_notice_prove_the_claim(amount: str) -> None:
    debt = debtor_with_debt(principal_minor=12000, paid_minor=5000, due_date=date(2025, 5, 31))
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    spaced = " ".join(debt.rf_reference[i : i + 4] for i in range(0, len(debt.rf_reference), 4)).lower()
    services.verify_notice(user.id, link.id, spaced, amount, NOW)
    proven = services.get_claim(user.id, link.id)
    assert proven.verified_at == NOW and proven.proof_method == "notice"


def test_wrong_notices_count_towards_the_same_lock_as_codes(mailbox: SMTPServer) -> None:
    debt = debtor_with_debt(principal_minor=12000, due_date=date(2025, 5, 31), contact_email="a@example.org")
    elsewhere = debtor_with_debt(principal_minor=12000, due_date=date(2025, 5, 31))
    old = DebtFactory(debtor=debt.debtor, principal_minor=5000, due_date=date(2024, 2, 1))
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    send_by_email(user.id, link)
    code = code_in(mailbox.only("a@example.org").text)
    wrong_answers = [
        (debt.rf_reference, "120,01"),  # the amount is off by a cent
        (debt.rf_reference, "12,00"),
        (elsewhere.rf_reference, "120,00"),  # someone else's notice
        (old.rf_reference, "50,00"),  # more than two years old
    ]
    for rf_reference, amount in wrong_answers:
        with pytest.raises(ProofError, match="wrong_notice"):
            services.verify_notice(user.id, link.id, rf_reference, amount, NOW)
    with pytest.raises(ProofError, match="locked"):  # the fifth wrong answer, this time a code
        services.verify_code(user.id, link.id, f"{(int(code) + 1) % 1_000_000:06d}", NOW)
    with pytest.raises(ProofError, match="locked"):
        services.verify_notice(user.id, link.id, debt.rf_reference, "120,00", NOW)
    assert services.get_claim(user.id, link.id).verified_at is None


def test_typing_mistakes_in_a_notice_are_not_counted() -> None:
    debt = debtor_with_debt()
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    with pytest.raises(services.InvalidReference):
        services.verify_notice(user.id, link.id, "RF00 1234", "120,00", NOW)
    with pytest.raises(ValueError):
        services.verify_notice(user.id, link.id, debt.rf_reference, "a hundred", NOW)
    assert services.get_claim(user.id, link.id).failed_attempts == 0


def test_a_proven_claim_cannot_be_proven_again_and_can_be_removed() -> None:
    debt = debtor_with_debt()
    user = UserFactory()
    link = claimed(user.id, debt.debtor.tax_id)
    services.verify_notice(user.id, link.id, debt.rf_reference, "120,00", NOW)
    db.session.commit()  # the request's unit of work: the refusal below rolls back only its own
    with pytest.raises(ProofError, match="already_proven"):
        services.verify_notice(user.id, link.id, debt.rf_reference, "120,00", NOW)
    assert services.has_proven_tax_id(user.id)
    services.remove_claim(user.id, link.id)
    assert open_items_for_user(user.id, NOW) == [] and not services.has_proven_tax_id(user.id)
