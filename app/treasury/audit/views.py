"""The agency's audit log page and its CSV export."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Response,
    g,
    render_template,
    request,
    stream_with_context,
)

from app.audit.services import AuditPosition, audit_page, export_audit_csv
from app.db import utcnow
from app.i18n import gettext
from app.treasury.access.guard import requires_role
from app.treasury.audit.forms import AuditFilterForm
from app.treasury.audit_text import audit_action_labels, audit_details
from app.treasury.blueprint import bp

# -- audit log ---------------------------------------------------------------------------------------------


@bp.app_template_global("audit_details")
def _audit_details(action: str, details: dict[str, Any]) -> str:
    return audit_details(action, details or {})


@bp.app_template_global("audit_action")
def _audit_action_label(action: str) -> str:
    return audit_action_labels().get(action, action)


def _audit_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args, actions=list(audit_action_labels().items()))
    form.validate()
    return form


@bp.get("/<agency_code>/audit")
@requires_role("admin")
def audit(agency_code: str) -> str:
    """The agency's audit log, newest first, searchable, 50 a page by keyset."""
    form = _audit_form()
    page = audit_page(
        g.agency.id, g.agency.timezone, form.filters(), before=AuditPosition.decode(request.args.get("before"))
    )
    filter_args = {name: value for name, value in request.args.items() if name != "before" and value}
    return render_template("treasury/audit.html", form=form, page=page, filter_args=filter_args)


@bp.get("/<agency_code>/audit.csv")
@requires_role("admin")
def audit_export(agency_code: str) -> Response:
    """The filtered audit log as CSV, streamed (`?sep=semicolon` for Excel in Greek)."""
    form = _audit_form()
    header = [
        gettext("Date"),
        gettext("Staff member"),
        gettext("Action"),
        gettext("Subject"),
        gettext("Details"),
        gettext("IP address"),
    ]
    chunks = export_audit_csv(
        g.agency.id, g.agency.timezone, form.filters(), header, semicolon=request.args.get("sep") == "semicolon"
    )
    stamp = utcnow().astimezone(ZoneInfo(g.agency.timezone)).strftime("%Y%m%d-%H%M")
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{g.agency.code}-{stamp}.csv"'
    return response
