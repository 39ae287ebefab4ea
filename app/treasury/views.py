"""Treasury pages: second factor, payment history and export, staff, settings, audit log, reports.

Access is checked once, in ``_guard`` (run before every treasury view), never in the views:

1. anonymous visitors go to the log-in page;
2. a person who is not staff sees 404 (only an invitation link is open to them);
3. staff who have not passed the second factor in this session go to it;
4. a route with ``<agency_code>`` answers 404 unless the person's role in that agency reaches the
   role the view declares with ``@requires_role`` ("view" when it declares none), so the agency's
   existence is not revealed. The agency and access are then on ``g``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import format_date
from flask_login import current_user

from app.audit.services import AuditPosition, audit_page, export_audit_csv
from app.agencies.models import ALL_CATEGORIES
from app.db import utcnow
from app.domain.money import Money
from app.domain.second_factors import FACTORS
from app.extensions import limiter, login_manager
from app.i18n import gettext
from app.templating import category_label, current_language, kind_label
from app.treasury import bp, reports, services
from app.treasury import settings as agency_settings
from app.treasury.audit_text import audit_action_labels, audit_details
from app.treasury.forms import (
    AuditFilterForm,
    ConfirmForm,
    CredentialsForm,
    EnrolmentForm,
    InviteForm,
    NotesForm,
    PaymentFilterForm,
    RemoveCredentialForm,
    RoleForm,
    SecondFactorForm,
    SettingsFormBase,
    SettlementForm,
    settings_form,
    withholdings_text,
)
from app.treasury.models import ROLES
from app.treasury.services import AgencyAccess, Cursor, TreasuryError

#: Session key: the id of the user who passed the second factor in this session.
SESSION_VERIFIED = "treasury_verified_user"
#: Views a staff member may open before passing the second factor.
SECOND_FACTOR_ENDPOINTS = frozenset({"treasury.second_factor", "treasury.second_factor_setup"})
#: Views open to a logged-in person who is not (yet) staff.
NON_STAFF_ENDPOINTS = frozenset({"treasury.accept_invitation"})

View = TypeVar("View", bound=Callable[..., Any])


def requires_role(role: str, *, platform_admin: bool = False) -> Callable[[View], View]:
    """Declare the least role an agency view needs; ``platform_admin`` lets platform admins in too."""

    def mark(view: View) -> View:
        view.treasury_role = role  # type: ignore[attr-defined]
        view.treasury_platform_admin = platform_admin  # type: ignore[attr-defined]
        return view

    return mark


def _staff() -> bool:
    if "treasury_is_staff" not in g:
        g.treasury_is_staff = current_user.is_authenticated and services.is_staff(current_user)
    return g.treasury_is_staff


def second_factor_passed() -> bool:
    """Whether the current person passed the treasury's second factor in this session."""
    return current_user.is_authenticated and session.get(SESSION_VERIFIED) == current_user.id


@bp.app_context_processor
def _treasury_globals() -> dict[str, Any]:
    return {"is_treasury_staff": lambda: current_user.is_authenticated and _staff()}


@bp.before_request
def _guard():  # noqa: ANN202 - None or a response
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    endpoint = request.endpoint or ""
    if endpoint in NON_STAFF_ENDPOINTS and not _staff():
        return None
    if not _staff():
        abort(404)
    if endpoint in SECOND_FACTOR_ENDPOINTS:
        return None
    if not second_factor_passed():
        target = "treasury.second_factor" if current_user.totp_confirmed_at else "treasury.second_factor_setup"
        return redirect(url_for(target, next=request.full_path if request.method == "GET" else None))
    agency_code = (request.view_args or {}).get("agency_code")
    if agency_code is None:
        return None
    view = current_app.view_functions[endpoint]
    access = services.membership_for(
        current_user,
        agency_code,
        getattr(view, "treasury_role", "view"),
        platform_admin_allowed=getattr(view, "treasury_platform_admin", False),
    )
    if access is None:
        abort(404)
    g.access = access
    g.agency = access.agency
    return None


@bp.after_request
def _private(response: Response) -> Response:
    """Treasury pages hold personal data and payments: never cached, never referred elsewhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.app_template_filter("agency_time")
def agency_time(value: datetime | None, timezone: str) -> str:
    """A timestamp in the agency's time zone, in the request's language."""
    if value is None:
        return ""
    return format_datetime(value, format="medium", tzinfo=ZoneInfo(timezone), locale=current_language())


def _safe_next(fallback: str) -> str:
    from app.main.views import safe_next

    target = request.args.get("next")
    if target and not target.startswith(bp.url_prefix or "/treasury"):
        return fallback
    return safe_next(target, fallback)


def _failed_code() -> str:
    """Rate-limit key: the account, so changing address does not buy more guesses."""
    return f"treasury-2fa:{current_user.get_id()}"


def _second_factor_limit() -> str:
    return current_app.config["TREASURY_2FA_RATE_LIMIT"]


def _refused(response: Response) -> bool:
    """Only refused codes count towards the limit (a success answers with a redirect)."""
    return response.status_code != 303 and request.method == "POST"


# -- second factor ------------------------------------------------------------------------------------


@bp.route("/2fa", methods=["GET", "POST"])
@limiter.limit(_second_factor_limit, key_func=_failed_code, methods=["POST"], deduct_when=_refused)
def second_factor():  # noqa: ANN201 - a page or a redirect
    """Enter a code from the authenticator app (or a recovery code) to open the treasury."""
    if current_user.totp_confirmed_at is None:
        return redirect(url_for("treasury.second_factor_setup"))
    if second_factor_passed():
        return redirect(url_for("treasury.index"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        result = services.verify_second_factor(current_user._get_current_object(), form.code.data, utcnow())
        if result != "refused":
            session[SESSION_VERIFIED] = current_user.id
            if result == "recovery_code":
                flash(
                    gettext(
                        "You used a recovery code; it will not work again. You have %(count)s left.",
                        count=services.remaining_recovery_codes(current_user),
                    ),
                    "info",
                )
            return redirect(_safe_next(url_for("treasury.index")), 303)
        form.code.errors.append(gettext("This code is not right, or was already used. Try the newest code."))
    return render_template("treasury/second_factor.html", form=form), 400 if form.errors else 200


@bp.route("/2fa/setup", methods=["GET", "POST"])
@limiter.limit(_second_factor_limit, key_func=_failed_code, methods=["POST"], deduct_when=lambda r: r.status_code == 400)
def second_factor_setup():  # noqa: ANN201 - a page or a redirect
    """First time: add the treasury to an authenticator app, confirm a code, keep recovery codes."""
    user = current_user._get_current_object()
    if user.totp_confirmed_at is not None:
        return redirect(url_for("treasury.second_factor"))
    secret = services.start_totp_enrolment(user)
    form = EnrolmentForm()
    if form.validate_on_submit():
        codes = services.confirm_totp_enrolment(user, form.code.data, utcnow())
        if codes is not None:
            session[SESSION_VERIFIED] = user.id
            # Shown on this response only: the codes exist nowhere else in plain text.
            page = render_template("treasury/recovery_codes.html", codes=codes, next=_safe_next(url_for("treasury.index")))
            return make_response(page, 200)
        form.code.errors.append(gettext("This code is not right. Check the app's clock and try the newest code."))
    qr_code = services.qr_code_svg(
        services.provisioning_uri(user, secret), gettext("QR code to add Civic Pay Treasury to an authenticator app")
    )
    page = render_template("treasury/setup.html", form=form, secret=secret, qr_code=qr_code)
    return page, 400 if form.errors else 200


# -- agencies and payments ----------------------------------------------------------------------------


@bp.get("")
def index() -> str:
    """The agencies the person can open."""
    return render_template("treasury/index.html", accesses=services.accessible_agencies(current_user))


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


@bp.app_template_global("treasury_role")
def _role_label(role: str) -> str:
    return services.role_label(role)


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
    chunks = services.export_csv(g.agency, form.filters(), semicolon=semicolon)
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
    workbook = tempfile.TemporaryFile()
    try:
        services.export_xlsx(g.agency, form.filters(), workbook)
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


# -- staff -----------------------------------------------------------------------------------------------------


def _staff_page(invite: InviteForm | None = None, status: int = 200):  # noqa: ANN202 - a response tuple
    page = render_template(
        "treasury/staff.html",
        members=services.staff_of(g.agency),
        invitations=services.pending_invitations(g.agency),
        invite=invite or InviteForm(formdata=None),
        role_choices=[(role, services.role_label(role)) for role in reversed(ROLES)],
        confirm=ConfirmForm(formdata=None),
    )
    return page, status


@bp.get("/<agency_code>/staff")
@requires_role("admin", platform_admin=True)
def staff(agency_code: str):  # noqa: ANN201 - a page
    """The agency's staff and pending invitations; invite, change roles, remove."""
    return _staff_page()


@bp.post("/<agency_code>/staff/invite")
@requires_role("admin", platform_admin=True)
def invite(agency_code: str):  # noqa: ANN201 - a page or a redirect
    """Invite an e-mail address with a role: granted at once if it has an account, else e-mailed."""
    form = InviteForm()
    if not form.validate_on_submit():
        return _staff_page(invite=form, status=400)
    try:
        outcome = services.invite_staff(g.agency, form.email.data, form.role.data, current_user._get_current_object())
    except TreasuryError as error:  # e.g. re-inviting the last administrator with a lesser role
        flash(str(error), "error")
        return redirect(url_for("treasury.staff", agency_code=agency_code), 303)
    if outcome.status == "granted":
        flash(gettext("%(email)s already had an account and is now on the staff.", email=form.email.data), "success")
    elif outcome.mailed:
        flash(gettext("We sent an invitation to %(email)s.", email=form.email.data), "success")
    else:
        flash(gettext("The invitation was saved but the e-mail could not be sent. Please try again later."), "error")
    return redirect(url_for("treasury.staff", agency_code=agency_code), 303)


@bp.post("/<agency_code>/staff/<int:membership_id>/role")
@requires_role("admin", platform_admin=True)
def change_role(agency_code: str, membership_id: int):  # noqa: ANN201 - a redirect
    """Change one staff member's role."""
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.change_member_role(g.agency, membership_id, form.role.data)
    except LookupError:
        abort(404)
    except TreasuryError as error:
        flash(str(error), "error")
    else:
        flash(gettext("The role has been changed."), "success")
    return redirect(url_for("treasury.staff", agency_code=agency_code), 303)


@bp.post("/<agency_code>/staff/<int:membership_id>/remove")
@requires_role("admin", platform_admin=True)
def remove(agency_code: str, membership_id: int):  # noqa: ANN201 - a redirect
    """Take someone off the agency's staff."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        services.remove_agency_member(g.agency, membership_id)
    except LookupError:
        abort(404)
    except TreasuryError as error:
        flash(str(error), "error")
    else:
        flash(gettext("The person is no longer on the staff."), "success")
    return redirect(url_for("treasury.staff", agency_code=agency_code), 303)


@bp.post("/<agency_code>/staff/invitations/<int:invitation_id>/revoke")
@requires_role("admin", platform_admin=True)
def revoke_invitation(agency_code: str, invitation_id: int):  # noqa: ANN201 - a redirect
    """Cancel an invitation not accepted yet; its link stops working."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        services.revoke_invitation(g.agency, invitation_id)
    except LookupError:
        abort(404)
    flash(gettext("The invitation has been cancelled."), "success")
    return redirect(url_for("treasury.staff", agency_code=agency_code), 303)


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):  # noqa: ANN201 - a page or a redirect
    """Accept an e-mailed invitation, logged in with the address it was sent to."""
    user = current_user._get_current_object()
    form = ConfirmForm()
    if form.validate_on_submit():
        check = services.accept_invitation(token, user)
        if check.status == "valid":
            g.pop("treasury_is_staff", None)
            flash(gettext("You are now on the treasury staff. Set up your second sign-in step to continue."), "success")
            return redirect(url_for("treasury.index"), 303)
    else:
        check = services.check_invitation(token, user)
    status = 200 if check.status == "valid" else 400
    page = render_template("treasury/invitation.html", check=check, form=form, token=token)
    response = make_response(page, status)
    return response


# -- agency settings -------------------------------------------------------------------------------------


def _factor_label(factor: str) -> str:
    labels = {
        "tax_id_last4": gettext("Last four characters of the tax ID"),
        "plate": gettext("Vehicle registration plate"),
        "amount": gettext("The amount of the debt"),
    }
    return labels.get(factor, factor)


def _decimal_text(amount_minor: int | None, currency: str) -> str:
    return "" if amount_minor is None else str(Money(amount_minor, currency).to_decimal())


def _settings_initial(current: agency_settings.AgencySettings, kinds: list[str], today: date) -> dict[str, Any]:
    """The form's values on GET: the saved settings and an example debt 75 days overdue."""
    currency = g.agency.currency
    policy = current.surcharge_policy
    initial: dict[str, Any] = {
        "online_categories": current.online_categories,
        "all_kinds": current.online_kinds is None,
        "online_kinds": kinds if current.online_kinds is None else current.online_kinds,
        "rate_percent": str(policy.rate_percent),
        "period": policy.period.value,
        "started_period_counts_whole": policy.started_period_counts_whole,
        "grace_days": policy.grace_days,
        "cap_amount": _decimal_text(policy.cap_minor, currency),
        "cap_percent": "" if policy.cap_percent is None else str(policy.cap_percent),
        "minimum": _decimal_text(policy.minimum_minor or None, currency),
        "rounding": policy.rounding,
        "surcharged_categories": sorted(policy.categories),
        "installments_in_order": current.installments_in_order,
        "factor_default": current.guest_second_factor.get("default") or "tax_id_last4",
        "preview_principal": _decimal_text(10000, currency),
        "preview_category": "certified",
        "preview_due_date": today - timedelta(days=75),
        "preview_on": today,
    }
    initial["withholdings_default"] = withholdings_text(current.withholdings.get("default"), currency)
    for kind in kinds:
        initial[f"factor_{kind}"] = current.guest_second_factor.get(kind, "")
        initial[f"withholdings_{kind}"] = withholdings_text(current.withholdings.get(kind), currency)
    return initial


@bp.route("/<agency_code>/settings", methods=["GET", "POST"])
@requires_role("admin")
def settings(agency_code: str):  # noqa: ANN201 - a page or a redirect
    """What is payable online, the surcharge policy with a preview, guest second factors."""
    agency = g.agency
    current = agency_settings.current_settings(agency)
    kinds = agency_settings.known_kinds(agency)
    form_class = settings_form(kinds, {"start_after_days": current.surcharge_policy.start_after_days})
    labels = {
        "categories": {category: category_label(category) for category in ALL_CATEGORIES},
        "kinds": {kind: kind_label(kind) for kind in kinds},
        "factors": {factor: _factor_label(factor) for factor in FACTORS},
    }
    initial = None if request.method == "POST" else _settings_initial(current, form_class.kinds, _agency_today())
    form: SettingsFormBase = form_class(data=initial, currency=agency.currency, labels=labels)
    status, policy = 200, current.surcharge_policy
    if form.is_submitted():
        if not form.validate():
            status, policy = 400, None
        else:
            policy = form.policy()
            if form.save.data:
                if agency_settings.update_settings(agency, form.agency_settings()):
                    flash(gettext("The settings have been saved."), "success")
                else:
                    flash(gettext("Nothing was changed."), "info")
                return redirect(url_for("treasury.settings", agency_code=agency_code), 303)
    preview = None
    example = form.preview_values()
    if policy is not None and example is not None:
        principal, due_date, on, category = example
        preview = agency_settings.preview_surcharge(
            policy, principal_minor=principal, due_date=due_date, on=on, category=category
        )
    page = render_template(
        "treasury/settings.html", form=form, preview=preview, example=example, factor_label=_factor_label
    )
    return page, status


@bp.route("/<agency_code>/settings/credentials", methods=["GET", "POST"])
@requires_role("admin")
def credentials(agency_code: str):  # noqa: ANN201 - a page or a redirect
    """The agency's Stripe connected account, secret key and webhook signing secret (write-only)."""
    form = CredentialsForm(data=None if request.method == "POST" else {"stripe_account": g.agency.stripe_account})
    if form.validate_on_submit():
        changed = agency_settings.save_credentials(
            g.agency, stripe_account=form.stripe_account.data, secrets=form.secrets(), now=utcnow()
        )
        flash(gettext("The credentials have been saved.") if changed else gettext("Nothing was changed."),
              "success" if changed else "info")  # fmt: skip
        return redirect(url_for("treasury.credentials", agency_code=agency_code), 303)
    page = render_template(
        "treasury/credentials.html",
        form=form,
        statuses=agency_settings.credential_statuses(g.agency),
        webhook_url=_webhook_url(g.agency.code),
    )
    return page, 400 if form.errors else 200


def _webhook_url(agency_code: str) -> str:
    """The agency's webhook endpoint as Stripe must call it (on PUBLIC_URL when set)."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for("webhooks.stripe_webhook", agency_code=agency_code)
    return url_for("webhooks.stripe_webhook", agency_code=agency_code, _external=True)


@bp.post("/<agency_code>/settings/credentials/remove")
@requires_role("admin")
def remove_credential(agency_code: str):  # noqa: ANN201 - a redirect
    """Forget a stored secret, or the connected account (the button's ``credential``)."""
    form = RemoveCredentialForm()
    if not form.validate_on_submit():
        abort(400)
    removed = agency_settings.remove_credential(g.agency, form.credential.data)
    flash(gettext("Removed.") if removed else gettext("Nothing was changed."), "success" if removed else "info")
    return redirect(url_for("treasury.credentials", agency_code=agency_code), 303)


@bp.route("/<agency_code>/settings/emails", methods=["GET", "POST"])
@requires_role("admin")
def email_notes(agency_code: str):  # noqa: ANN201 - a page or a redirect
    """Texts the agency adds to its payers' receipt and refund e-mails, in Greek and English."""
    form = NotesForm(data=None if request.method == "POST" else agency_settings.current_notes(g.agency))
    if form.validate_on_submit():
        if agency_settings.update_notes(g.agency, form.notes()):
            flash(gettext("The texts have been saved."), "success")
        else:
            flash(gettext("Nothing was changed."), "info")
        return redirect(url_for("treasury.email_notes", agency_code=agency_code), 303)
    page = render_template("treasury/email_notes.html", form=form)
    return page, 400 if form.errors else 200


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


# -- settlement and adoption -----------------------------------------------------------------------------


def _agency_today() -> date:
    return utcnow().astimezone(ZoneInfo(g.agency.timezone)).date()


def _settlement_days() -> tuple[SettlementForm, reports.SettlementReport | None]:
    """The form read from ``?from=&to=`` (default: the last seven days) and its report, if valid."""
    form = SettlementForm(request.args)
    valid = form.validate()
    today = _agency_today()
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
def settlement(agency_code: str):  # noqa: ANN201 - a page
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
def percent_figure(value) -> str:  # noqa: ANN001 - a Decimal
    """A share with one decimal in the request's language: 12.5 or 12,5."""
    return format_decimal(value, format="0.0", locale=current_language())


@bp.get("/<agency_code>/adoption")
@requires_role("view")
def adoption(agency_code: str) -> str:
    """How much of what the agency lets citizens pay online is paid online, over twelve months."""
    report = reports.adoption_report(g.agency, _agency_today())
    return render_template(
        "treasury/adoption.html",
        report=report,
        month_label=lambda month, pattern="LLL yyyy": format_date(month, pattern),
    )
