"""Treasury console: agency staff and their roles, second factor, payment history and export."""

from flask import Blueprint

bp = Blueprint("treasury", __name__, template_folder="templates", url_prefix="/treasury")
