"""Checkout: a selection of debts or items becomes a server-priced quote, and a quote becomes a payment."""

from flask import Blueprint

bp = Blueprint("checkout", __name__, template_folder="templates")
