"""Debts: the citizen's dashboard of unpaid debts with today's surcharge."""

from flask import Blueprint

bp = Blueprint("debts", __name__, template_folder="templates")
