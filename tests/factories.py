"""factory_boy factories for test data: small, explicit, one row each."""

from __future__ import annotations

from datetime import date

import factory
from factory.alchemy import SQLAlchemyModelFactory

from app.accounts.models import TaxIdLink, User
from app.accounts.services import hash_password
from app.agencies.models import ALL_CATEGORIES, Agency
from app.db import utcnow
from app.debts.models import Debt, Debtor, Installment
from app.domain.references import rf_for_debt
from app.extensions import db

PASSWORD = "correct horse battery staple"
#: One argon2 hash for every factory user: hashing is deliberately slow.
_PASSWORD_HASH = hash_password(PASSWORD)


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
    row = TaxIdLink(
        user=user, country=debtor.country, tax_id=debtor.tax_id, verified_at=utcnow() if verified else None
    )
    db.session.add(row)
    db.session.commit()
    return row
