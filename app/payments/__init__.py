"""Payments: the ledger of what was paid (payments, lines, provider charges), card providers, refunds, history."""

from flask import Blueprint

bp = Blueprint("payments", __name__, template_folder="templates")
