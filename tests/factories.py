"""factory_boy factories for test data: small, explicit, one row each."""

from __future__ import annotations

import random
from datetime import date

import factory
from factory.alchemy import SQLAlchemyModelFactory
from stdnum.gr import vat

from app.accounts.models import TaxIdLink, User
from app.accounts.services import hash_password
from app.agencies.models import ALL_CATEGORIES, Agency
from app.catalog.models import CatalogItem
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.references import rf_for_debt
from app.extensions import db

PASSWORD = "correct horse battery staple"
#: One argon2 hash for every factory user: hashing is deliberately slow.
_PASSWORD_HASH = hash_password(PASSWORD)
#: Stems of new_afm(): random, so AFMs do not repeat across test runs sharing a database.
_stems = random.Random()


class _Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class AgencyFactory(_Base):
    class Meta:
        model = Agency

    code = factory.Sequence(lambda n: f"agency{n}")
    name_el = factory.Sequence(lambda n: f"Δήμος {n}")
    name_en = factory.Sequence(lambda n: f"Municipality {n}")
    currency = "EUR"
    timezone = "Europe/Athens"
    country = "GR"
    online_categories = factory.LazyFunction(lambda: list(ALL_CATEGORIES))
    online_kinds = None
    surcharge_policy = factory.LazyFunction(dict)
    installments_in_order = True
    #: Push-only by default: tests that pull give a connector explicitly.
    connector = factory.LazyFunction(lambda: {"type": "push"})


class DebtorFactory(_Base):
    class Meta:
        model = Debtor

    country = "GR"
    # Valid AFMs are not needed for the portal's own rows; the sync validates ERP input.
    tax_id = factory.Sequence(lambda n: f"{100000000 + n}")
    name = factory.Sequence(lambda n: f"Debtor {n}")


class DebtFactory(_Base):
    class Meta:
        model = Debt

    agency = factory.SubFactory(AgencyFactory)
    debtor = factory.SubFactory(DebtorFactory)
    external_id = factory.Sequence(lambda n: f"EXT-{n:06d}")
    category = "certified"
    kind = "property_fee"
    description = factory.Sequence(lambda n: f"Property fee {n}")
    currency = "EUR"
    principal_minor = 12000
    paid_minor = 0
    due_date = date(2026, 1, 31)
    rf_reference = factory.LazyAttribute(lambda o: rf_for_debt(o.agency.code, o.external_id))
    status = "open"


class InstallmentFactory(_Base):
    class Meta:
        model = Installment

    debt = factory.SubFactory(DebtFactory, category="settled")
    number = 1
    due_date = date(2026, 1, 31)
    amount_minor = 5000
    paid_minor = 0
    status = "open"


class UserFactory(_Base):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"citizen{n}@example.org")
    password_hash = _PASSWORD_HASH
    full_name = factory.Sequence(lambda n: f"Citizen {n}")
    language = "en"
    email_verified_at = factory.LazyFunction(utcnow)


def link(user: User, debtor: Debtor, *, verified: bool = True) -> TaxIdLink:
    """Give the user a (proven) link to the debtor's tax ID."""
    row = TaxIdLink(user=user, country=debtor.country, tax_id=debtor.tax_id, verified_at=utcnow() if verified else None)
    db.session.add(row)
    db.session.commit()
    return row


# -- treasury staff and payments (tests/treasury) ----------------------------------------------------

import pyotp  # noqa: E402 - kept with the treasury factories that need it

from app.config import TestingConfig  # noqa: E402
from app.encryption import encrypt_secret  # noqa: E402
from app.payments.models import Payment, PaymentLine  # noqa: E402
from app.payments.splits import RECEIVED_STATUSES, book_payment_splits  # noqa: E402
from app.treasury.models import StaffMembership  # noqa: E402

#: The TOTP secret of every staff member made by ``staff_member`` (tests compute codes from it).
STAFF_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


class StaffMembershipFactory(_Base):
    class Meta:
        model = StaffMembership

    user = factory.SubFactory(UserFactory)
    agency = factory.SubFactory(AgencyFactory)
    role = "view"


def staff_member(agency: Agency | None, role: str = "view", *, enrolled: bool = True, **user_fields) -> User:
    """A person on the agency's staff (none if ``agency`` is None), with TOTP set up unless told not."""
    user = UserFactory(**user_fields)
    if enrolled:
        user.totp_secret = encrypt_secret(STAFF_TOTP_SECRET, key=TestingConfig.SECRET_KEY)
        user.totp_confirmed_at = utcnow()
        db.session.commit()
    if agency is not None:
        StaffMembershipFactory(user=user, agency=agency, role=role)
    return user


def totp_code(at=None) -> str:
    """The code an authenticator app shows for STAFF_TOTP_SECRET at a moment (default: now)."""
    totp = pyotp.TOTP(STAFF_TOTP_SECRET)
    return totp.at(at) if at is not None else totp.now()


_payment_numbers = iter(range(1, 10**9))


def paid_payment(
    *debts_and_amounts,
    created_at=None,
    status: str = "succeeded",
    channel: str = "account",
    provider_reference: str | None = None,
    card_last4: str = "4242",
    commit: bool = True,
) -> Payment:
    """A payment of the given (debt, principal_minor[, surcharge_minor]) lines, possibly across agencies."""
    number = next(_payment_numbers)
    created_at = created_at or utcnow()
    payment = Payment(
        reference=f"CP-T{number:03d}-{number % 9973:04d}-{number % 97:02d}",
        currency="EUR",
        amount_minor=0,
        status=status,
        provider="sandbox",
        provider_reference=provider_reference or f"sbx_{number:06d}",
        card_brand="visa",
        card_last4=card_last4,
        channel=channel,
        created_at=created_at,
        completed_at=created_at if status == "succeeded" else None,
    )
    for item in debts_and_amounts:
        debt, principal, surcharge = (*item, 0) if len(item) == 2 else item
        payment.lines.append(
            PaymentLine(
                agency_id=debt.agency_id,
                debt_id=debt.id,
                principal_minor=principal,
                surcharge_minor=surcharge,
                amount_minor=principal + surcharge,
            )
        )
    payment.amount_minor = sum(line.amount_minor for line in payment.lines)
    db.session.add(payment)
    if status in RECEIVED_STATUSES:
        # As the payment.succeeded listener does: the split is booked with the payment.
        db.session.flush()
        book_payment_splits(payment)
    if commit:
        db.session.commit()
    return payment


class CatalogItemFactory(_Base):
    """A ticket at 15,00 € with no capacity limit, on sale now, of a new agency."""

    class Meta:
        model = CatalogItem

    agency = factory.SubFactory(AgencyFactory)
    code = factory.Sequence(lambda n: f"item-{n}")
    kind = "ticket"
    name_el = factory.Sequence(lambda n: f"Συναυλία {n}")
    name_en = factory.Sequence(lambda n: f"Concert {n}")
    description_el = ""
    description_en = ""
    currency = "EUR"
    price_minor = 1500
    min_minor = None
    max_minor = None
    capacity = None
    max_per_order = 10
    questions = factory.LazyFunction(list)
    requires_account = False
    active = True


def donation_item(**fields) -> CatalogItem:
    """An open-amount donation from 5,00 € to 500,00 €."""
    values = {"kind": "donation", "price_minor": None, "min_minor": 500, "max_minor": 50000, "max_per_order": 1}
    values.update(fields)
    return CatalogItemFactory(**values)


def new_afm() -> str:
    """A valid Greek AFM nobody else in the test run uses (a random stem and its check digit)."""
    stem = f"{_stems.randrange(10_000_000, 100_000_000)}"
    return stem + vat.calc_check_digit(stem)
