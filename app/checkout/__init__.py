"""Checkout: turning a selection of debts into a stored, server-computed quote."""

from flask import Blueprint

bp = Blueprint("checkout", __name__, template_folder="templates")
