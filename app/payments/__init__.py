"""Payments: charging a quote through a card provider, and the citizen's history."""

from flask import Blueprint

bp = Blueprint("payments", __name__, template_folder="templates")
