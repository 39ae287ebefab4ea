"""Treasury console: agency staff and their roles, second factor, payment history and export."""

from flask import Blueprint

bp = Blueprint("treasury", __name__, template_folder="templates", url_prefix="/treasury")

# Pages that add routes to this blueprint (after ``bp`` exists: they import it, and the views).
from app.treasury import operations, platform  # noqa: E402, F401
