"""Platform administration pages: the agencies, adding one with its first administrator, the audit log.

The treasury's access check (``access.guard.guard``) has already sent anonymous visitors to log in,
answered 404 to people who are not staff and sent staff to the second factor. These pages need
one thing more: that the person is a platform administrator. Anyone else, an agency's
administrator included, gets 404, as for any page that is not theirs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.audit.services import EVERY_AGENCY, AgencyScope, AuditPosition, audit_page, export_audit_csv
from app.db import utcnow
from app.domain.money import minor_unit_exponent
from app.i18n import gettext
from app.i18n import lazy_gettext as _l
from app.treasury.access.services import TreasuryError
from app.treasury.audit.forms import AuditFilterForm
from app.treasury.audit_text import audit_action_labels
from app.treasury.blueprint import bp
from app.treasury.platform import services as platform

View = TypeVar("View", bound=Callable[..., Any])

#: The platform audit page's agency filter: entries of no agency (sign-ins, platform actions).
PLATFORM_ONLY = "none"


def platform_admin_only(view: View) -> View:
    """Let only platform administrators in; 404 for everyone else (after the treasury's own check)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_platform_admin:
            abort(404)
        return view(*args, **kwargs)

    checked.treasury_platform_only = True  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


class NewAgencyForm(FlaskForm):
    """A new agency and the e-mail address of its first administrator."""

    code = StringField(
        _l("Code"),
        validators=[DataRequired(_l("Enter the agency's code.")), Length(max=40)],
        render_kw={"spellcheck": "false", "autocapitalize": "none"},
    )
    name_el = StringField(
        _l("Name in Greek"), validators=[DataRequired(_l("Enter the name in Greek.")), Length(max=200)]
    )
    name_en = StringField(
        _l("Name in English"), validators=[DataRequired(_l("Enter the name in English.")), Length(max=200)]
    )
    timezone = StringField(
        _l("Time zone"),
        default="Europe/Athens",
        validators=[DataRequired(_l("Enter the time zone."))],
        render_kw={"spellcheck": "false"},
    )
    currency = StringField(
        _l("Currency"),
        default="EUR",
        validators=[DataRequired(_l("Enter the currency."))],
        render_kw={"spellcheck": "false", "autocapitalize": "characters", "maxlength": "3"},
    )
    admin_email = EmailField(
        _l("E-mail address of its first administrator"),
        validators=[
            DataRequired(_l("Enter the e-mail address.")),
            Email(_l("Enter an e-mail address like name@example.org.")),
            Length(max=254),
        ],
    )
    submit = SubmitField(_l("Add the agency"))

    def validate_code(self, field: StringField) -> None:
        problem = platform.code_problem((field.data or "").strip().lower())
        if problem:
            raise ValidationError(problem)

    def validate_timezone(self, field: StringField) -> None:
        if not platform.known_timezone((field.data or "").strip()):
            raise ValidationError(_l("Enter a time zone like Europe/Athens."))

    def validate_currency(self, field: StringField) -> None:
        try:
            minor_unit_exponent((field.data or "").strip().upper())
        except ValueError:
            raise ValidationError(_l("Enter a currency code like EUR.")) from None


class PlatformAuditFilterForm(AuditFilterForm):
    """The platform audit log's search: the agency's search, and whose entries."""

    agency = SelectField(_l("Entries of"), validators=[Optional()])

    def __init__(self, *args, agencies: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.agency.choices = [
            ("", _l("Every agency, and the platform")),
            (PLATFORM_ONLY, _l("The platform only (no agency)")),
            *agencies,
        ]

    def scope(self, codes: dict[int, str]) -> AgencyScope:
        """Whose entries to read, as the audit services take it."""
        chosen = None if self.agency.errors else self.agency.data
        if not chosen:
            return EVERY_AGENCY
        if chosen == PLATFORM_ONLY:
            return None
        return next((agency_id for agency_id, code in codes.items() if code == chosen), EVERY_AGENCY)


# -- agencies ------------------------------------------------------------------------------------------


@bp.get("/platform")
@platform_admin_only
def platform_agencies() -> str:
    """Every agency: its staff, pending invitations, open quarantine and dead write-back messages."""
    return render_template("treasury/platform/agencies.html", overviews=platform.agencies_overview())


@bp.route("/platform/agencies/new", methods=["GET", "POST"])
@platform_admin_only
def platform_new_agency():
    """Add an agency and invite its first administrator by e-mail."""
    form = NewAgencyForm()
    if form.validate_on_submit():
        try:
            added = platform.create_agency(
                code=form.code.data,
                name_el=form.name_el.data,
                name_en=form.name_en.data,
                timezone=form.timezone.data.strip(),
                currency=form.currency.data.strip(),
                admin_email=form.admin_email.data,
                created_by=current_user._get_current_object(),
            )
        except TreasuryError as error:  # the code was taken meanwhile
            form.code.errors = [str(error)]
        else:
            email = form.admin_email.data.strip().lower()
            if added.invitation.status == "granted":
                flash(gettext("The agency has been added; %(email)s is its administrator.", email=email), "success")
            elif added.invitation.mailed:
                flash(
                    gettext("The agency has been added and we sent an invitation to %(email)s.", email=email), "success"
                )
            else:
                flash(
                    gettext(
                        "The agency has been added, but the invitation e-mail could not be sent. "
                        "Send it again from the agency's staff page."
                    ),
                    "error",
                )
            return redirect(url_for("treasury.platform_agencies"), 303)
    page = render_template("treasury/platform/new_agency.html", form=form)
    return page, 400 if form.errors else 200


# -- audit log -----------------------------------------------------------------------------------------


def _platform_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def _audit_form(codes: dict[int, str]) -> PlatformAuditFilterForm:
    labels = audit_action_labels()
    form = PlatformAuditFilterForm(
        request.args,
        actions=sorted(labels.items(), key=lambda item: item[1].casefold()),
        agencies=[(code, code) for code in sorted(codes.values())],
    )
    form.validate()
    return form


@bp.get("/platform/audit")
@platform_admin_only
def platform_audit() -> str:
    """Every audit entry, or those of the platform only, or one agency's; newest first, 50 a page."""
    codes = platform.agency_codes()
    form = _audit_form(codes)
    page = audit_page(
        form.scope(codes), _platform_timezone(), form.filters(), before=AuditPosition.decode(request.args.get("before"))
    )
    filter_args = {name: value for name, value in request.args.items() if name != "before" and value}
    return render_template(
        "treasury/platform/audit.html",
        form=form,
        page=page,
        filter_args=filter_args,
        codes=codes,
        timezone=_platform_timezone(),
    )


@bp.get("/platform/audit.csv")
@platform_admin_only
def platform_audit_export() -> Response:
    """The filtered platform audit log as CSV, with each entry's agency (`?sep=semicolon` for Excel in Greek)."""
    codes = platform.agency_codes()
    form = _audit_form(codes)
    header = [
        gettext("Date"),
        gettext("Agency"),
        gettext("Staff member"),
        gettext("Action"),
        gettext("Subject"),
        gettext("Details"),
        gettext("IP address"),
    ]
    chunks = export_audit_csv(
        form.scope(codes),
        _platform_timezone(),
        form.filters(),
        header,
        semicolon=request.args.get("sep") == "semicolon",
        agency_codes=codes,
    )
    stamp = utcnow().astimezone(ZoneInfo(_platform_timezone())).strftime("%Y%m%d-%H%M")
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="audit-platform-{stamp}.csv"'
    return response
