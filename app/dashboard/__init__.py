"""The citizen's dashboard: unpaid debts of every agency, refreshed from their ERPs, ready to select and pay."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__, template_folder="templates")
