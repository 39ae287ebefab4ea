"""Every model, imported once so the metadata (and Alembic) sees all tables."""

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.checkout.models import Quote, QuoteLine
from app.debts.models import Debt, Debtor, Installment
from app.payments.models import Payment, PaymentLine

__all__ = [
    "Agency",
    "Debt",
    "Debtor",
    "Installment",
    "Payment",
    "PaymentLine",
    "Quote",
    "QuoteLine",
    "TaxIdLink",
    "User",
]
