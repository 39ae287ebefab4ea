"""Operations pages of an agency: its sync runs, quarantined ERP records and write-back messages.

Every staff role sees them (GOV.UK Pay's spirit: a viewer sees what happened, but cannot act).
Acting needs more, declared on each view and enforced by the treasury's one access check:

* retrying the quarantine (a full read of the ERP) and dismissing a record: "admin", because
  they change what the portal takes from the agency's books, or decide that it need not;
* retrying a dead write-back message: "refund", the role of the staff who reconcile payments and
  refunds with the ERP. A retry only queues the message again, and the ERP books each line once
  (acknowledgements are idempotent by line id), so a retry can never book anything twice.
"""

from __future__ import annotations

from typing import Any

from babel.numbers import format_decimal
from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.db import utcnow
from app.i18n import gettext, ngettext
from app.i18n import lazy_gettext as _l
from app.sync.connectors import pulls_from_erp
from app.templating import current_language
from app.treasury.access.guard import requires_role
from app.treasury.audit_text import outbox_topic_label
from app.treasury.blueprint import bp
from app.treasury.operations import services as operations
from app.treasury.operations.services import OperationRefused


class DismissForm(FlaskForm):
    """Dismiss a quarantined record, saying why it needs no action."""

    reason = TextAreaField(
        _l("Why does this record need no action?"),
        validators=[
            DataRequired(_l("Say why the record needs no action.")),
            Length(max=operations.MAX_REASON_LENGTH, message=_l("Use at most 500 characters.")),
        ],
        render_kw={"rows": 3},
    )
    submit = SubmitField(_l("Dismiss the record"))


class ActionForm(FlaskForm):
    """A button with a CSRF token: retry the quarantine, retry a message."""

    submit = SubmitField(_l("Retry"))


class QuarantineFilterForm(FlaskForm):
    """Which records the quarantine page shows (a GET form)."""

    class Meta:
        csrf = False

    status = SelectField(_l("Show"), validators=[Optional()], default="open")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.status.choices = [(view, quarantine_view_label(view)) for view in operations.QUARANTINE_VIEWS]


class OutboxFilterForm(FlaskForm):
    """Which write-back messages the page shows (a GET form)."""

    class Meta:
        csrf = False

    state = SelectField(_l("State"), validators=[Optional()])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.state.choices = [("", _l("Any"))] + [
            (state, outbox_state_label(state)) for state in operations.OUTBOX_STATES
        ]


# -- words for codes ------------------------------------------------------------------------------------


def sync_kind_label(kind: str) -> str:
    """The kind of sync run in words."""
    labels = {
        "full": gettext("Full"),
        "incremental": gettext("Changes only"),
        "refresh": gettext("One debtor's refresh"),
        "push": gettext("Sent by the ERP"),
    }
    return labels.get(kind, kind)


def sync_status_label(status: str) -> str:
    """How a sync run ended, in words."""
    labels = {
        "running": gettext("Running"),
        "succeeded": gettext("Succeeded"),
        "failed": gettext("Failed"),
        "abandoned": gettext("Stopped without finishing"),
    }
    return labels.get(status, status)


def quarantine_view_label(view: str) -> str:
    """A quarantine status (or "all") in words."""
    labels = {
        "open": gettext("Open"),
        "dismissed": gettext("Dismissed"),
        "retried": gettext("Retried"),
        "all": gettext("All"),
    }
    return labels.get(view, view)


def outbox_state_label(state: str) -> str:
    """A write-back state in words."""
    labels = {
        "pending": gettext("Not sent yet"),
        "waiting": gettext("Failed, will be tried again"),
        "dead": gettext("Given up"),
        "delivered": gettext("Delivered"),
    }
    return labels.get(state, state)


def duration_text(seconds: float | None) -> str:
    """A run's wall time: "4.2 s", or "3 min 12 s"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return gettext(
            "%(seconds)s s", seconds=format_decimal(round(seconds, 1), format="0.0", locale=current_language())
        )
    minutes, rest = divmod(round(seconds), 60)
    return gettext("%(minutes)s min %(seconds)s s", minutes=minutes, seconds=rest)


@bp.app_context_processor
def _operations_helpers() -> dict[str, Any]:
    return {
        "sync_kind_label": sync_kind_label,
        "sync_status_label": sync_status_label,
        "quarantine_view_label": quarantine_view_label,
        "outbox_state_label": outbox_state_label,
        "outbox_topic_label": outbox_topic_label,
        "outbox_state": operations.message_state,
        "duration_text": duration_text,
    }


def _before() -> int | None:
    """The ``?before=`` id of an older page; None for the newest page or anything malformed."""
    value = request.args.get("before", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


# -- sync runs --------------------------------------------------------------------------------------


@bp.get("/<agency_code>/operations/sync")
@requires_role("view")
def sync_runs(agency_code: str) -> str:
    """The agency's sync runs, newest first: counts, duration, outcome and error."""
    page = operations.sync_runs(g.agency, before=_before())
    return render_template(
        "treasury/operations/sync_runs.html", page=page, open_quarantine=operations.open_quarantine_count(g.agency)
    )


# -- quarantine ---------------------------------------------------------------------------------------


@bp.get("/<agency_code>/operations/quarantine")
@requires_role("view")
def quarantine(agency_code: str) -> str:
    """The agency's quarantined records of one status, with their reasons; retry them all."""
    form = QuarantineFilterForm(request.args)
    view = form.status.data if form.validate() and form.status.data else "open"
    page = operations.quarantine(g.agency, view, before=_before())
    return render_template(
        "treasury/operations/quarantine.html",
        form=form,
        view=view,
        page=page,
        open_quarantine=operations.open_quarantine_count(g.agency),
        retry_form=ActionForm(formdata=None),
        pulls_from_erp=pulls_from_erp(g.agency),
    )


def _record_page(record_id: int, form: DismissForm | None = None, status: int = 200):
    try:
        found = operations.quarantined_record(g.agency, record_id)
    except LookupError:
        abort(404)
    page = render_template(
        "treasury/operations/quarantined_record.html",
        record=found,
        payload=operations.readable_payload(found.raw),
        form=form or DismissForm(formdata=None),
        open_quarantine=operations.open_quarantine_count(g.agency),
    )
    return page, status


@bp.get("/<agency_code>/operations/quarantine/<int:record_id>")
@requires_role("view")
def quarantined_record(agency_code: str, record_id: int):
    """One quarantined record: why, the payload as received, and who dismissed it and why."""
    return _record_page(record_id)


@bp.post("/<agency_code>/operations/quarantine/<int:record_id>/dismiss")
@requires_role("admin")
def dismiss_quarantined(agency_code: str, record_id: int):
    """Dismiss one open record with a reason (recorded in the audit log)."""
    form = DismissForm()
    if not form.validate_on_submit():
        return _record_page(record_id, form, 400)
    try:
        operations.dismiss_quarantined(g.agency, record_id, form.reason.data, user_id=current_user.id, now=utcnow())
    except LookupError:
        abort(404)
    except OperationRefused as refused:
        flash(str(refused), "error")
        return redirect(url_for("treasury.quarantined_record", agency_code=agency_code, record_id=record_id), 303)
    flash(gettext("The record has been dismissed."), "success")
    return redirect(url_for("treasury.quarantine", agency_code=agency_code), 303)


@bp.post("/<agency_code>/operations/quarantine/retry")
@requires_role("admin")
def retry_quarantine(agency_code: str):
    """Read the agency's ERP again in full; the open records are retried."""
    if not ActionForm().validate_on_submit():
        abort(400)
    target = url_for("treasury.quarantine", agency_code=agency_code)
    try:
        retry = operations.retry_quarantine(g.agency, user_id=current_user.id, now=utcnow())
    except OperationRefused as refused:
        flash(str(refused), "error")
        return redirect(target, 303)
    run = retry.run
    flash(
        ngettext(
            "The ERP was read again for %(num)s record: %(created)s new, %(updated)s updated; "
            "%(quarantined)s still quarantined.",
            "The ERP was read again for %(num)s records: %(created)s new, %(updated)s updated; "
            "%(quarantined)s still quarantined.",
            retry.records,
            created=run.created,
            updated=run.updated,
            quarantined=run.quarantined,
        ),
        "success",
    )
    return redirect(target, 303)


# -- write-back (outbox) -----------------------------------------------------------------------------


@bp.get("/<agency_code>/operations/outbox")
@requires_role("view")
def outbox(agency_code: str) -> str:
    """The agency's write-back messages by state: attempts, last error; retry dead ones."""
    form = OutboxFilterForm(request.args)
    state = form.state.data if form.validate() and form.state.data else None
    page = operations.outbox_messages(g.agency, state, before=_before())
    return render_template(
        "treasury/operations/outbox.html",
        form=form,
        state=state,
        page=page,
        counts=operations.outbox_counts(g.agency),
        retry_form=ActionForm(formdata=None),
        can_retry=g.access.can("refund"),
        open_quarantine=operations.open_quarantine_count(g.agency),
    )


@bp.post("/<agency_code>/operations/outbox/<int:message_id>/retry")
@requires_role("refund")
def retry_outbox_message(agency_code: str, message_id: int):
    """Queue a dead write-back message again; the worker delivers it at its next tick."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        message = operations.retry_dead_letter(g.agency, message_id, user_id=current_user.id, now=utcnow())
    except LookupError:
        abort(404)
    except OperationRefused as refused:
        flash(str(refused), "error")
    else:
        flash(gettext("Message %(number)s is queued again and will be sent shortly.", number=message.id), "success")
    return redirect(url_for("treasury.outbox", agency_code=agency_code, **_kept_filters()), 303)


def _kept_filters() -> dict[str, str]:
    """The list's filter, carried through the retry form so the person returns to the same list."""
    state = request.args.get("state", "")
    return {"state": state} if state in operations.OUTBOX_STATES else {}
