"""The citizen's dashboard page."""

from __future__ import annotations

from flask import render_template, request
from flask_login import current_user, login_required

from app.checkout.forms import SelectionForm
from app.dashboard import bp
from app.dashboard.services import dashboard_for_user
from app.db import utcnow


@bp.get("/debts")
@login_required
def show() -> str:
    """Every unpaid debt of the citizen's tax IDs, grouped by agency, with today's surcharge."""
    category = request.args.get("category") or None
    kind = request.args.get("kind") or None
    dashboard = dashboard_for_user(current_user.id, utcnow(), category=category, kind=kind)
    return render_template(
        "dashboard/dashboard.html",
        dashboard=dashboard,
        groups=dashboard.groups,
        freshness=dashboard.freshness,
        form=SelectionForm(),
        chosen_category=category,
        chosen_kind=kind,
    )
