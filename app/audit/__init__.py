"""Audit log: an append-only record of every staff action and every change of a payment's status."""

# Importing the package registers the listeners (a payment's status changes are recorded
# wherever they happen, without the payments package knowing about the audit log).
from app.audit import events as _events  # noqa: F401
