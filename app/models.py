"""Every model, imported once so the metadata (and Alembic) sees all tables."""

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.checkout.models import Quote, QuoteLine
from app.debts.models import Debt, Debtor, Installment
from app.api.models import ApiToken
from app.outbox.models import OutboxMessage
from app.payments.models import Payment, PaymentLine
from app.sync.models import DebtorRefresh, QuarantinedRecord, SyncRun

__all__ = [
    "Agency",
    "ApiToken",
    "DebtorRefresh",
    "OutboxMessage",
    "QuarantinedRecord",
    "SyncRun",
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
