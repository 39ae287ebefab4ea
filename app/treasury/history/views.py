"""History pages: the payments, one payment, the CSV and XLSX export."""

from __future__ import annotations

import tempfile
from zoneinfo import ZoneInfo

from flask import (
    Response,
    abort,
    g,
    render_template,
    request,
    send_file,
    stream_with_context,
)

from app.db import utcnow
from app.i18n import gettext
from app.templating import category_label, kind_label
from app.treasury.access.guard import requires_role
from app.treasury.access.services import AgencyAccess
from app.treasury.blueprint import bp
from app.treasury.history import export as exports
from app.treasury.history import services
from app.treasury.history.forms import PaymentFilterForm
from app.treasury.history.services import Cursor


def _filter_form(access: AgencyAccess) -> PaymentFilterForm:
    choices = services.filter_choices(access.agency)
    status_labels = {
        "pending": gettext("In progress"),
        "succeeded": gettext("Paid"),
        "failed": gettext("Declined"),
        "refunded": gettext("Refunded"),
        "partially_refunded": gettext("Partially refunded"),
    }
    labelled = {
        "statuses": [(status, status_labels.get(status, status)) for status in choices["statuses"]],
        "channels": [(channel, channel_label(channel)) for channel in choices["channels"]],
        "categories": [(category, category_label(category)) for category in choices["categories"]],
        "kinds": [(kind, kind_label(kind)) for kind in choices["kinds"]],
    }
    form = PaymentFilterForm(request.args, currency=access.agency.currency, choices=labelled)
    form.validate()
    return form


def channel_label(channel: str) -> str:
    """How the payment was made, in words."""
    labels = {
        "account": gettext("Account"),
        "guest": gettext("Guest"),
        "autopay": gettext("Automatic payment"),
        "api": gettext("API"),
    }
    return labels.get(channel, channel)


@bp.app_template_global("treasury_channel")
def _channel_label(channel: str) -> str:
    return channel_label(channel)


@bp.get("/<agency_code>/payments")
@requires_role("view")
def payments(agency_code: str) -> str:
    """The agency's payments, newest first, filtered, 50 a page by keyset."""
    form = _filter_form(g.access)
    page = services.payment_history(
        g.agency,
        form.filters(),
        before=Cursor.decode(request.args.get("before")),
        after=None if request.args.get("before") else Cursor.decode(request.args.get("after")),
    )
    filter_args = {name: value for name, value in request.args.items() if name not in {"before", "after"} and value}
    return render_template("treasury/payments.html", form=form, page=page, filter_args=filter_args)


@bp.get("/<agency_code>/payments/<reference>")
@requires_role("view")
def payment(agency_code: str, reference: str) -> str:
    """One payment as the agency sees it: its own lines, statuses and the ERP write-back."""
    found = services.agency_payment(g.agency, reference)
    if found is None:
        abort(404)
    return render_template("treasury/payment.html", found=found)


@bp.get("/<agency_code>/payments.csv")
@requires_role("view")
def export(agency_code: str) -> Response:
    """The filtered payments' lines of this agency as CSV, streamed (`?sep=semicolon` for Excel in Greek)."""
    form = _filter_form(g.access)
    semicolon = request.args.get("sep") == "semicolon"
    chunks = exports.export_csv(g.agency, form.filters(), semicolon=semicolon)
    stamp = utcnow().astimezone(ZoneInfo(g.agency.timezone)).strftime("%Y%m%d-%H%M")
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="payments-{g.agency.code}-{stamp}.csv"'
    return response


@bp.get("/<agency_code>/payments.xlsx")
@requires_role("view")
def export_xlsx(agency_code: str) -> Response:
    """The filtered payments' lines of this agency as an Excel workbook (the CSV's rows and columns)."""
    form = _filter_form(g.access)
    # An anonymous temporary file: the workbook is built on disk, not in memory, and the file
    # is gone once send_file has streamed it and closed it.
    workbook = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it once streamed
    try:
        exports.export_xlsx(g.agency, form.filters(), workbook)
        workbook.seek(0)
    except BaseException:
        workbook.close()
        raise
    stamp = utcnow().astimezone(ZoneInfo(g.agency.timezone)).strftime("%Y%m%d-%H%M")
    return send_file(
        workbook,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"payments-{g.agency.code}-{stamp}.xlsx",
        max_age=0,
    )
