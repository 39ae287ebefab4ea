"""Report pages: settlement (and its CSV), adoption."""

from __future__ import annotations

from datetime import timedelta

from babel.numbers import format_decimal
from flask import (
    Response,
    abort,
    g,
    render_template,
    request,
)
from flask_babel import format_date

from app.i18n import gettext
from app.templating import current_language
from app.treasury.access.guard import agency_today, requires_role
from app.treasury.blueprint import bp
from app.treasury.reports import services as reports
from app.treasury.reports.forms import SettlementForm


def _settlement_days() -> tuple[SettlementForm, reports.SettlementReport | None]:
    """The form read from ``?from=&to=`` (default: the last seven days) and its report, if valid."""
    form = SettlementForm(request.args)
    valid = form.validate()
    today = agency_today()
    date_to = form.date_to.data or today
    date_from = form.date_from.data or min(date_to, today) - timedelta(days=6)
    if not form.date_from.data:
        form.date_from.data = date_from
    if not form.date_to.data:
        form.date_to.data = date_to
    if not valid or date_to < date_from or (date_to - date_from).days >= reports.MAX_SETTLEMENT_DAYS:
        if not form.errors:
            form.date_to.errors = [gettext("The end date must not be before the start date.")]
        return form, None
    return form, reports.settlement_report(g.agency, date_from, date_to)


@bp.get("/<agency_code>/settlement")
@requires_role("view")
def settlement(agency_code: str):
    """Per local day and kind of debt: payment lines, gross, withholdings, refunds, fees, net; totals that add up."""
    form, report = _settlement_days()
    page = render_template("treasury/settlement.html", form=form, report=report)
    return page, 200 if report is not None else 400


@bp.get("/<agency_code>/settlement.csv")
@requires_role("view")
def settlement_export(agency_code: str) -> Response:
    """The settlement report as CSV (`?sep=semicolon` for Excel in Greek)."""
    form, report = _settlement_days()
    if report is None:
        abort(400)
    header = [
        gettext("Date"),
        gettext("Kind"),
        gettext("Payment lines"),
        gettext("Gross"),
        *(gettext("Withheld: %(beneficiary)s", beneficiary=name) for name in report.beneficiaries),
        gettext("Agency's part"),
        gettext("Refunds"),
        gettext("Fees"),
        gettext("Net"),
        gettext("Currency"),
    ]
    chunks = reports.settlement_csv(
        report, g.agency.currency, header, gettext("Total"), semicolon=request.args.get("sep") == "semicolon"
    )
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    name = f"settlement-{g.agency.code}-{report.date_from.isoformat()}-{report.date_to.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.app_template_filter("treasury_percent")
def percent_figure(value) -> str:
    """A share with one decimal in the request's language: 12.5 or 12,5."""
    return format_decimal(value, format="0.0", locale=current_language())


@bp.get("/<agency_code>/adoption")
@requires_role("view")
def adoption(agency_code: str) -> str:
    """How much of what the agency lets citizens pay online is paid online, over twelve months."""
    report = reports.adoption_report(g.agency, agency_today())
    return render_template(
        "treasury/adoption.html",
        report=report,
        month_label=lambda month, pattern="LLL yyyy": format_date(month, pattern),
    )
