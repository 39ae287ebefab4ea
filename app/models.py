"""Every model, imported once so the metadata (and Alembic) sees all tables."""

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.api.models import ApiToken
from app.audit.models import AuditEntry
from app.catalog.models import CatalogItem, Ticket
from app.checkout.models import Quote, QuoteLine
from app.debts.models import Debt, Debtor, Installment
from app.guest.models import GuestLookupFailure
from app.outbox.models import OutboxMessage
from app.payments.models import (
    Payment,
    PaymentLine,
    ProviderCharge,
    ProviderEvent,
    SandboxCharge,
    SplitDayTotal,
    SplitEntry,
)
from app.sync.models import DebtorRefresh, QuarantinedRecord, SyncRun
from app.treasury.models import StaffInvitation, StaffMembership, StaffRecoveryCode

__all__ = [
    "Agency",
    "ApiToken",
    "AuditEntry",
    "CatalogItem",
    "Debt",
    "Debtor",
    "DebtorRefresh",
    "GuestLookupFailure",
    "Installment",
    "OutboxMessage",
    "Payment",
    "PaymentLine",
    "ProviderCharge",
    "ProviderEvent",
    "QuarantinedRecord",
    "Quote",
    "QuoteLine",
    "SandboxCharge",
    "SplitDayTotal",
    "SplitEntry",
    "StaffInvitation",
    "StaffMembership",
    "StaffRecoveryCode",
    "SyncRun",
    "TaxIdLink",
    "Ticket",
    "User",
]
