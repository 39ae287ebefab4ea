"""Audit log: an append-only record of every staff action and every change of a payment's status."""

# Importing the package makes the log append-only wherever a session is used.
from app.audit import events as _events  # noqa: F401
