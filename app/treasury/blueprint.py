"""The treasury's blueprints: every room adds its routes to ``bp``; the door check is on ``tickets_bp``.

Nothing here imports a view: ``app.treasury.register_blueprints`` imports the rooms' views (which
add their routes) and registers both, so these two objects are all a view module needs.
"""

from flask import Blueprint

bp = Blueprint("treasury", __name__, template_folder="templates", url_prefix="/treasury")

#: The door's ticket check, at /tickets/check: outside any agency, behind the same access check.
tickets_bp = Blueprint("tickets", __name__)
