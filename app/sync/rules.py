"""The merge rules of a sync: what a debt becomes when its ERP record changes.

Pure functions of plain values, shared by the row path (``apply.apply_batch``) and the
set-based writes (``set_based``), so both follow exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from erp_connectors.base import DebtRecord, InstallmentRecord

FLAG_PAID_WHILE_PAYING = (
    "The ERP reports this debt closed ({reason}) while an online payment was in progress: "
    "check that it was not paid twice."
)


def erp_status(record: DebtRecord) -> tuple[str, str | None]:
    """The status and close reason a new debt takes from its ERP record."""
    if record.status == "cancelled":
        return "cancelled", "cancelled"
    if record.status == "paid" or (record.principal_minor > 0 and record.paid_minor >= record.principal_minor):
        return "paid", "paid_at_agency"
    return "open", None


@dataclass(frozen=True, slots=True)
class Merged:
    """A debt's paid amount and status after merging a changed ERP record, and what that was."""

    paid_minor: int
    status: str
    closed_reason: str | None
    closed_at: datetime | None
    review_reason: str | None
    #: the SyncRun counter it counts towards: "updated", "closed" or "flagged"
    outcome: str
    reason: str | None


def merged_status(
    status: str,
    closed_reason: str | None,
    closed_at: datetime | None,
    review_reason: str | None,
    paid_minor: int,
    held: bool,
    record: DebtRecord,
    now: datetime,
) -> Merged:
    """Merge a changed ERP record into a debt's paid amount and status (``held``: a payment holds it now)."""
    outcome = "updated"
    reason: str | None = None
    # Paid amounts only grow: an ERP that has not yet heard of an online payment must not undo it.
    paid = min(max(paid_minor, record.paid_minor), record.principal_minor)
    reported, close_reason = erp_status(record)
    if reported != "open" and status == "open":
        if held:
            review_reason = reason = FLAG_PAID_WHILE_PAYING.format(reason=close_reason)
            outcome = "flagged"
        else:
            status, closed_reason, closed_at = reported, close_reason, now
            outcome = "closed"
    elif reported == "open" and status != "open" and closed_reason is not None:
        if paid < record.principal_minor:
            # The ERP reopened a debt it had closed (a counter payment reversed, a cancellation undone).
            status, closed_reason, closed_at = "open", None, None
    elif reported == "open" and paid >= record.principal_minor and status == "open":
        status = "paid"
    return Merged(paid, status, closed_reason, closed_at, review_reason, outcome, reason)


def merged_installment_paid(paid_minor: int, source: InstallmentRecord) -> int:
    """An installment's paid amount after a sync: the larger of ours and the ERP's, within its amount."""
    return min(max(paid_minor, source.paid_minor), source.amount_minor)
