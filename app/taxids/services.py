"""Claiming a tax ID for an account and proving the claim, before any of its debts is shown.

A claim (a ``TaxIdLink`` with ``verified_at`` null) is proven in one of two ways:

* a one-time 6-digit code sent to an e-mail address or mobile number that an agency's ERP holds
  for that tax ID (``Debt.contact_email`` / ``contact_phone``); only its SHA-256 is stored;
* the RF payment code and the amount of a notice issued to that tax ID in the last two years.

Wrong codes and wrong notices count towards one limit per claim: after ``TAXID_MAX_ATTEMPTS``
the claim is locked for ``TAXID_LOCK_MINUTES``. Nothing here tells a claimant a debtor's name or
amounts; the only hint given before proof is the masked destinations of the code, or that there
are no debts to prove the claim with.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from stdnum import get_cc_module
from stdnum.exceptions import InvalidChecksum, ValidationError

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor
from app.domain.amounts import parse_amount as parse_shared_amount
from app.domain.amounts import to_minor_units as shared_to_minor_units
from app.domain.money import minor_unit_exponent
from app.domain.references import InvalidReference, normalise_rf
from app.extensions import db
from app.i18n import gettext, ngettext
from app.mail import MailDeliveryError, send_mail
from app.sync.connectors import pulls_from_erp
from app.sync.refresh import refresh_debtor
from app.taxids.sms import SMSDeliveryError, sms_gateway
from app.unit_of_work import commit_early

log = logging.getLogger("civicpay.taxids")

#: Defaults of the settings read with current_app.config.get (an agency may tighten them).
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_LOCK_MINUTES = 30
DEFAULT_CODE_MINUTES = 10
DEFAULT_RESEND_SECONDS = 60
#: A notice proves a claim only if its debt fell due at most this long ago (the ERP contract has
#: no issue date; the due date is the closest date printed on every notice).
NOTICE_MAX_AGE_DAYS = 2 * 365
#: Seconds each agency's ERP gets to answer when a claim asks it for the debtor's latest debts.
REFRESH_TIMEOUT_SECONDS = 2.0

PROOF_EMAIL = "email_code"
PROOF_SMS = "sms_code"
PROOF_NOTICE = "notice"

#: The states a claim can be in; ``claim_state`` is the one place that decides.
PROVEN = "proven"
LOCKED = "locked"
AWAITING_CODE = "awaiting_code"
UNPROVEN = "unproven"


# -- settings --------------------------------------------------------------------------------------


def max_attempts() -> int:
    """Wrong codes or notices allowed before a claim is locked (TAXID_MAX_ATTEMPTS)."""
    return int(current_app.config.get("TAXID_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def lock_duration() -> timedelta:
    """How long a claim stays locked after too many wrong answers (TAXID_LOCK_MINUTES)."""
    return timedelta(minutes=int(current_app.config.get("TAXID_LOCK_MINUTES", DEFAULT_LOCK_MINUTES)))


def code_validity() -> timedelta:
    """How long a one-time code works (TAXID_CODE_MINUTES)."""
    return timedelta(minutes=int(current_app.config.get("TAXID_CODE_MINUTES", DEFAULT_CODE_MINUTES)))


def resend_interval() -> timedelta:
    """The least time between two codes for one claim (TAXID_RESEND_SECONDS)."""
    return timedelta(seconds=int(current_app.config.get("TAXID_RESEND_SECONDS", DEFAULT_RESEND_SECONDS)))


# -- errors ----------------------------------------------------------------------------------------


class ClaimNotFound(LookupError):
    """No claim with this id belongs to this account (the views answer 404)."""


class InvalidTaxId(ValueError):
    """The number is not a tax ID of the country; ``reason`` is "length", "checksum" or "format"."""

    def __init__(self, country: str, reason: str) -> None:
        super().__init__(f"not a valid {country} tax ID ({reason})")
        self.country = country
        self.reason = reason


class ProofError(Exception):
    """A proof step was refused; ``code`` says why, ``details`` carry what the sentence needs.

    Codes: "already_proven", "locked" (until), "wrong_code" / "wrong_notice" (attempts_left),
    "expired", "no_code", "too_soon" (seconds), "unknown_destination", "not_delivered",
    "no_debts".
    """

    def __init__(self, code: str, **details: object) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


# -- tax ID numbers -----------------------------------------------------------------------------


#: ISO 3166 codes that stdnum knows a VAT number for but that are no country (the EU's VAT
#: numbers carry a member state's prefix instead).
_NOT_COUNTRIES = frozenset({"EU"})


@cache
def supported_countries() -> tuple[str, ...]:
    """ISO 3166 alpha-2 codes (upper case) for which python-stdnum validates a tax (VAT) number."""
    import pkgutil

    import stdnum

    codes = []
    for module in pkgutil.iter_modules(stdnum.__path__):
        name = module.name
        if len(name) == 2 and module.ispkg and name.upper() not in _NOT_COUNTRIES and get_cc_module(name, "vat"):
            codes.append(name.upper())
    return tuple(sorted(codes))


def normalise_tax_id(country: str, number: str) -> str:
    """The tax ID in compact form without the country prefix; raises InvalidTaxId.

    Greek AFMs are checked with stdnum.gr.vat: "EL 147 382 606" becomes "147382606".
    """
    country = (country or "").upper()
    if country not in supported_countries():
        raise InvalidTaxId(country, "country")
    module = get_cc_module(country.lower(), "vat")
    try:
        compact = module.compact(number or "")
        module.validate(compact)
    except InvalidChecksum:
        raise InvalidTaxId(country, "checksum") from None
    except ValidationError as error:
        reason = "length" if type(error).__name__ == "InvalidLength" else "format"
        raise InvalidTaxId(country, reason) from None
    if not compact or len(compact) > 32:
        raise InvalidTaxId(country, "length")
    return compact


# -- amounts as printed on a notice ---------------------------------------------------------------


#: Notices print euros and cents: an amount is read with at most two decimals, so "120,505"
#: (three digits after the only separator) can only group thousands.
NOTICE_DECIMALS = 2


def parse_decimal_amount(text: str) -> Decimal:
    """The amount a person typed as printed: "120,00", "120.00", "120", "1.234,56", "€ 1,234.56".

    Read by the portal's one amount parser (``app.domain.amounts``); raises ValueError (its
    AmountError) when the text is not an amount.
    """
    return parse_shared_amount(text, max_decimals=NOTICE_DECIMALS)


def to_minor_units(value: Decimal, currency: str) -> int:
    """Minor units of ``value`` in ``currency``; ValueError if it has more decimals than the currency."""
    return shared_to_minor_units(value, minor_unit_exponent(currency))


def parse_amount(text: str, currency: str) -> int:
    """Minor units of ``currency`` from an amount typed as printed on a notice; raises ValueError."""
    return to_minor_units(parse_decimal_amount(text), currency)


# -- masking contact details ------------------------------------------------------------------------

MASK = "•"
#: ITU country calling codes of one and two digits; every other code has three (they are
#: prefix-free, so the first digits decide).
_ONE_DIGIT_CALLING_CODES = frozenset({"1", "7"})
_TWO_DIGIT_CALLING_CODES = frozenset(
    [
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    ]
)


def compact_phone(phone: str) -> str:
    """Spaces, dashes, dots and brackets out; a leading 00 becomes +."""
    compact = re.sub(r"[\s\-.()/]", "", phone or "")
    return "+" + compact[2:] if compact.startswith("00") else compact


def mask_email(address: str) -> str:
    """The first letter and the domain of an address: "m•••@example.org"."""
    local, _, domain = address.strip().rpartition("@")
    if not local:
        return MASK * 3
    return f"{local[0]}{MASK * 3}@{domain}"


def mask_phone(phone: str) -> str:
    """The calling code, the first two and last three digits of a number: "+30 69•• •••101"."""
    compact = compact_phone(phone)
    prefix, national = "", compact
    if compact.startswith("+"):
        digits = compact[1:]
        length = 1 if digits[:1] in _ONE_DIGIT_CALLING_CODES else 2 if digits[:2] in _TWO_DIGIT_CALLING_CODES else 3
        prefix, national = f"+{digits[:length]} ", digits[length:]
    if len(national) < 7:
        return prefix + MASK * max(len(national) - 2, 3) + national[-2:]
    masked = national[:2] + MASK * (len(national) - 5) + national[-3:]
    return prefix + masked[:4] + " " + masked[4:]


# -- claims ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimState:
    """Where a claim stands: one of PROVEN, LOCKED, AWAITING_CODE, UNPROVEN."""

    link: TaxIdLink
    state: str
    #: Until when it is locked (LOCKED) or the code works (AWAITING_CODE); else None.
    until: datetime | None = None


def claim_state(link: TaxIdLink, now: datetime) -> ClaimState:
    """The state of a claim at ``now``; locks and codes simply lapse with time."""
    if link.verified_at is not None:
        return ClaimState(link, PROVEN)
    if link.locked_until is not None and link.locked_until > now:
        return ClaimState(link, LOCKED, link.locked_until)
    if link.code_hash is not None and link.code_expires_at is not None and link.code_expires_at > now:
        return ClaimState(link, AWAITING_CODE, link.code_expires_at)
    return ClaimState(link, UNPROVEN)


def claims_of_user(user_id: int, now: datetime) -> list[ClaimState]:
    """The account's tax IDs, oldest first, each with its state."""
    links = db.session.scalars(
        select(TaxIdLink).where(TaxIdLink.user_id == user_id).order_by(TaxIdLink.created_at, TaxIdLink.id)
    )
    return [claim_state(link, now) for link in links]


def has_proven_tax_id(user_id: int) -> bool:
    """Whether the account has proven at least one tax ID."""
    statement = select(TaxIdLink.id).where(TaxIdLink.user_id == user_id, TaxIdLink.verified_at.is_not(None))
    return db.session.scalar(statement.limit(1)) is not None


def get_claim(user_id: int, link_id: int) -> TaxIdLink:
    """The account's own claim; raises ClaimNotFound for anybody else's (or none)."""
    link = db.session.scalar(select(TaxIdLink).where(TaxIdLink.id == link_id, TaxIdLink.user_id == user_id))
    if link is None:
        raise ClaimNotFound(link_id)
    return link


def _claim_for_update(user_id: int, link_id: int) -> TaxIdLink:
    """The account's own claim, row-locked so that two attempts at once both count."""
    link = db.session.scalar(
        select(TaxIdLink)
        .where(TaxIdLink.id == link_id, TaxIdLink.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if link is None:
        db.session.rollback()
        raise ClaimNotFound(link_id)
    return link


@dataclass(frozen=True)
class ClaimResult:
    """A claim just made, or the one the account already had for that tax ID."""

    link: TaxIdLink
    created: bool


def claim_tax_id(user_id: int, country: str, number: str, now: datetime | None = None) -> ClaimResult:
    """Add an unproven tax ID to the account (or find the one there); raises InvalidTaxId.

    The agencies' ERPs are asked for the debtor's latest debts (where our copy is stale), so that
    a notice received this morning can already prove the claim.
    """
    now = now or utcnow()
    tax_id = normalise_tax_id(country, number)
    country = country.upper()
    statement = select(TaxIdLink).where(
        TaxIdLink.user_id == user_id, TaxIdLink.country == country, TaxIdLink.tax_id == tax_id
    )
    link = db.session.scalar(statement)
    if link is not None:
        return ClaimResult(link, created=False)
    link = TaxIdLink(user_id=user_id, country=country, tax_id=tax_id, failed_attempts=0, created_at=now)
    try:
        with db.session.begin_nested():  # a savepoint: the race below undoes only this insert
            db.session.add(link)
    except IntegrityError:  # the same claim sent twice at once: keep the first
        return ClaimResult(db.session.scalars(statement).one(), created=False)
    # The ERPs may take seconds to answer: on SQLite an uncommitted insert would keep every other
    # writer waiting that long, and the claim is worth keeping even if asking them fails.
    commit_early("the claim stands before the ERPs are asked, and no write waits on their answers")
    _refresh_from_erps(country, tax_id, now)
    return ClaimResult(link, created=True)


def _refresh_from_erps(country: str, tax_id: str, now: datetime) -> None:
    for agency in db.session.scalars(select(Agency).order_by(Agency.id)).all():
        if pulls_from_erp(agency):
            outcome = refresh_debtor(agency, country, tax_id, now, timeout=REFRESH_TIMEOUT_SECONDS)
            if outcome.error:
                log.info("claim: agency %s could not be refreshed: %s", agency.code, outcome.error)


def remove_claim(user_id: int, link_id: int) -> None:
    """Take a tax ID off the account (proven or not); its debts stop showing at once."""
    db.session.delete(get_claim(user_id, link_id))
    db.session.flush()


# -- where a code can go -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """An address an ERP holds for the debtor, named on forms by an opaque ``key``."""

    key: str
    #: PROOF_EMAIL or PROOF_SMS.
    method: str
    address: str
    masked: str


@dataclass(frozen=True)
class ProofOptions:
    """What a claimant may use to prove a claim (never the addresses in clear)."""

    claim: ClaimState
    destinations: list[Destination]
    #: Whether any debt of this tax ID is known; False: there is nothing to prove the claim with.
    has_debts: bool


def _destination_key(link: TaxIdLink, method: str, address: str) -> str:
    # Keyed by the secret: a plain hash would let a claimant test guesses of the address.
    secret = current_app.config["SECRET_KEY"].encode()
    message = f"{link.id}:{method}:{address}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:20]


def _destinations(link: TaxIdLink) -> list[Destination]:
    rows = db.session.execute(
        select(Debt.contact_email, Debt.contact_phone)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .where(Debtor.country == link.country, Debtor.tax_id == link.tax_id)
        .distinct()
    ).all()
    emails = sorted({email.strip().lower() for email, _ in rows if email and "@" in email})
    phones = sorted({compact_phone(phone) for _, phone in rows if phone and compact_phone(phone)})
    found = [Destination(_destination_key(link, PROOF_EMAIL, e), PROOF_EMAIL, e, mask_email(e)) for e in emails]
    found += [Destination(_destination_key(link, PROOF_SMS, p), PROOF_SMS, p, mask_phone(p)) for p in phones]
    return found


def _has_debts(link: TaxIdLink) -> bool:
    statement = (
        select(Debt.id)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .where(Debtor.country == link.country, Debtor.tax_id == link.tax_id)
        .limit(1)
    )
    return db.session.scalar(statement) is not None


def proof_options(user_id: int, link_id: int, now: datetime | None = None) -> ProofOptions:
    """The masked destinations a code can go to, and whether a notice could prove the claim."""
    link = get_claim(user_id, link_id)
    state = claim_state(link, now or utcnow())
    if state.state == PROVEN:
        return ProofOptions(state, [], has_debts=True)
    destinations = _destinations(link)
    return ProofOptions(state, destinations, has_debts=bool(destinations) or _has_debts(link))


# -- state changes ----------------------------------------------------------------------------------


def _refuse_unless_open(link: TaxIdLink, now: datetime) -> None:
    state = claim_state(link, now)
    if state.state == PROVEN:
        db.session.rollback()
        raise ProofError("already_proven")
    if state.state == LOCKED:
        db.session.rollback()
        raise ProofError("locked", until=state.until)


def _mark_proven(link: TaxIdLink, method: str, now: datetime) -> None:
    link.verified_at = now
    link.proof_method = method
    link.code_hash = None
    link.code_expires_at = None
    link.failed_attempts = 0
    link.locked_until = None


def _count_failure(link: TaxIdLink, now: datetime, code: str) -> ProofError:
    """Count a wrong answer; the last allowed one locks the claim and voids its code."""
    link.failed_attempts = (link.failed_attempts or 0) + 1
    left = max_attempts() - link.failed_attempts
    if left <= 0:
        link.locked_until = now + lock_duration()
        link.failed_attempts = 0
        link.code_hash = None
        link.code_expires_at = None
        commit_early("the lock stands even if the caller lets the ProofError through as a server error")
        log.info("tax ID claim %s locked after too many wrong answers", link.id)
        return ProofError("locked", until=link.locked_until)
    commit_early("a wrong answer counts towards the lock even if the caller lets the ProofError through")
    return ProofError(code, attempts_left=left)


# -- proof by one-time code -------------------------------------------------------------------------


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class SentCode:
    """Where the code went (masked) and until when it works."""

    destination: Destination
    expires_at: datetime


def send_code(user_id: int, link_id: int, destination_key: str, now: datetime | None = None) -> SentCode:
    """Send a new one-time code to one of the ERPs' addresses for the claim; raises ProofError.

    A new code replaces the previous one, and at most one is sent per TAXID_RESEND_SECONDS.
    """
    now = now or utcnow()
    link = _claim_for_update(user_id, link_id)
    _refuse_unless_open(link, now)
    if link.code_expires_at is not None:
        next_allowed = link.code_expires_at - code_validity() + resend_interval()
        if next_allowed > now:
            db.session.rollback()
            raise ProofError("too_soon", seconds=max(1, int((next_allowed - now).total_seconds() + 0.999)))
    destination = next((d for d in _destinations(link) if hmac.compare_digest(d.key, destination_key or "")), None)
    if destination is None:
        db.session.rollback()
        raise ProofError("unknown_destination")
    code = f"{secrets.randbelow(10**6):06d}"
    link.code_hash = _hash_code(code)
    link.code_expires_at = now + code_validity()
    link.proof_method = destination.method
    account = db.session.get(User, user_id)
    try:
        db.session.flush()
        _deliver(destination, code, link, account.email if account else "")
    except (MailDeliveryError, SMSDeliveryError) as error:
        db.session.rollback()
        log.warning("tax ID claim %s: the code could not be sent: %s", link_id, error)
        raise ProofError("not_delivered", method=destination.method) from error
    return SentCode(destination, link.code_expires_at)


def _deliver(destination: Destination, code: str, link: TaxIdLink, account_email: str) -> None:
    minutes = int(code_validity().total_seconds() // 60)
    if destination.method == PROOF_SMS:
        text = ngettext(
            "Civic Pay: your code for tax ID %(tax_id)s is %(code)s. It works for %(num)d minute. "
            "If you did not ask for it, ignore this message.",
            "Civic Pay: your code for tax ID %(tax_id)s is %(code)s. It works for %(num)d minutes. "
            "If you did not ask for it, ignore this message.",
            minutes,
            tax_id=link.tax_id,
            code=code,
        )
        sms_gateway().send(destination.address, text)
        return
    subject = gettext("Your Civic Pay code")
    body = "\n\n".join(
        [
            gettext("Your code: %(code)s", code=code),
            gettext(
                "Someone with the Civic Pay account %(account)s asked to see the debts of tax ID %(tax_id)s. "
                "An agency has this e-mail address on record for that tax ID, so we sent the code here.",
                account=account_email,
                tax_id=link.tax_id,
            ),
            ngettext(
                "If it was you, type the code on the page where you asked for it, within %(num)d minute.",
                "If it was you, type the code on the page where you asked for it, within %(num)d minutes.",
                minutes,
            ),
            gettext(
                "If it was not you, do not give the code to anyone and ignore this message: "
                "without the code nobody can see the debts of this tax ID."
            ),
            "Civic Pay",
        ]
    )
    send_mail(destination.address, subject, body)


_SIX_DIGITS = re.compile(r"\d{6}")


def verify_code(user_id: int, link_id: int, code: str, now: datetime | None = None) -> TaxIdLink:
    """Prove the claim with the code received; raises ProofError (a wrong code counts)."""
    now = now or utcnow()
    link = _claim_for_update(user_id, link_id)
    _refuse_unless_open(link, now)
    if link.code_hash is None or link.code_expires_at is None:
        db.session.rollback()
        raise ProofError("no_code")
    if link.code_expires_at <= now:
        db.session.rollback()
        raise ProofError("expired")
    typed = re.sub(r"\s", "", code or "")
    # compare_digest on the hashes: the time taken says nothing about how close a guess was.
    if not (_SIX_DIGITS.fullmatch(typed) and hmac.compare_digest(_hash_code(typed), link.code_hash)):
        raise _count_failure(link, now, "wrong_code")
    _mark_proven(link, link.proof_method or PROOF_EMAIL, now)
    db.session.flush()
    log.info("tax ID claim %s proven by code", link.id)
    return link


# -- proof by a payment notice ----------------------------------------------------------------------


def verify_notice(user_id: int, link_id: int, rf_reference: str, amount: str, now: datetime | None = None) -> TaxIdLink:
    """Prove the claim with the RF code and principal of a notice of the last two years.

    Raises InvalidReference or ValueError for text that cannot be a reference or an amount (not
    counted), and ProofError for a wrong answer (counted towards the lock).
    """
    now = now or utcnow()
    reference = normalise_rf(rf_reference)
    value = parse_decimal_amount(amount)
    link = _claim_for_update(user_id, link_id)
    _refuse_unless_open(link, now)
    oldest_due: date = now.date() - timedelta(days=NOTICE_MAX_AGE_DAYS)
    candidates = db.session.scalars(
        select(Debt)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .where(
            Debtor.country == link.country,
            Debtor.tax_id == link.tax_id,
            Debt.rf_reference == reference,
            Debt.due_date >= oldest_due,
        )
    ).all()
    matched = False
    for debt in candidates:
        try:
            matched = matched or to_minor_units(value, debt.currency) == debt.principal_minor
        except ValueError:  # more decimals than the debt's currency has: not this notice
            continue
    if not matched:
        raise _count_failure(link, now, "wrong_notice")
    _mark_proven(link, PROOF_NOTICE, now)
    db.session.flush()
    log.info("tax ID claim %s proven by notice", link.id)
    return link


__all__ = [
    "ClaimNotFound",
    "InvalidReference",
    "InvalidTaxId",
    "ProofError",
    "claim_tax_id",
    "claims_of_user",
    "has_proven_tax_id",
    "proof_options",
    "remove_claim",
    "send_code",
    "verify_code",
    "verify_notice",
]
