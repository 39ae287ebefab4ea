"""Access pages: the second factor, the agencies a person can open, the staff and invitations."""

from __future__ import annotations

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
    session,
    url_for,
)
from flask_login import current_user

from app.db import utcnow
from app.extensions import limiter
from app.i18n import gettext
from app.treasury.access import services
from app.treasury.access.forms import ConfirmForm, EnrolmentForm, InviteForm, RoleForm, SecondFactorForm
from app.treasury.access.guard import SESSION_VERIFIED, requires_role, second_factor_passed
from app.treasury.access.second_factor import (
    confirm_totp_enrolment,
    provisioning_uri,
    qr_code_svg,
    remaining_recovery_codes,
    start_totp_enrolment,
    verify_second_factor,
)
from app.treasury.access.services import TreasuryError
from app.treasury.blueprint import bp
from app.treasury.models import ROLES


def _safe_next(fallback: str) -> str:
    from app.web import safe_next

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
def second_factor():
    """Enter a code from the authenticator app (or a recovery code) to open the treasury."""
    if current_user.totp_confirmed_at is None:
        return redirect(url_for("treasury.second_factor_setup"))
    if second_factor_passed():
        return redirect(url_for("treasury.index"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        result = verify_second_factor(current_user._get_current_object(), form.code.data, utcnow())
        if result != "refused":
            session[SESSION_VERIFIED] = current_user.id
            if result == "recovery_code":
                flash(
                    gettext(
                        "You used a recovery code; it will not work again. You have %(count)s left.",
                        count=remaining_recovery_codes(current_user),
                    ),
                    "info",
                )
            return redirect(_safe_next(url_for("treasury.index")), 303)
        form.code.errors.append(gettext("This code is not right, or was already used. Try the newest code."))
    return render_template("treasury/second_factor.html", form=form), 400 if form.errors else 200


@bp.route("/2fa/setup", methods=["GET", "POST"])
@limiter.limit(
    _second_factor_limit, key_func=_failed_code, methods=["POST"], deduct_when=lambda r: r.status_code == 400
)
def second_factor_setup():
    """First time: add the treasury to an authenticator app, confirm a code, keep recovery codes."""
    user = current_user._get_current_object()
    if user.totp_confirmed_at is not None:
        return redirect(url_for("treasury.second_factor"))
    secret = start_totp_enrolment(user)
    form = EnrolmentForm()
    if form.validate_on_submit():
        codes = confirm_totp_enrolment(user, form.code.data, utcnow())
        if codes is not None:
            session[SESSION_VERIFIED] = user.id
            # Shown on this response only: the codes exist nowhere else in plain text.
            page = render_template(
                "treasury/recovery_codes.html", codes=codes, next=_safe_next(url_for("treasury.index"))
            )
            return make_response(page, 200)
        form.code.errors.append(gettext("This code is not right. Check the app's clock and try the newest code."))
    qr_code = qr_code_svg(
        provisioning_uri(user, secret), gettext("QR code to add Civic Pay Treasury to an authenticator app")
    )
    page = render_template("treasury/setup.html", form=form, secret=secret, qr_code=qr_code)
    return page, 400 if form.errors else 200


# -- agencies and payments ----------------------------------------------------------------------------


@bp.get("")
def index() -> str:
    """The agencies the person can open."""
    return render_template("treasury/index.html", accesses=services.accessible_agencies(current_user))


@bp.app_template_global("treasury_role")
def _role_label(role: str) -> str:
    return services.role_label(role)


# -- staff -----------------------------------------------------------------------------------------------------


def _staff_page(invite: InviteForm | None = None, status: int = 200):
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
def staff(agency_code: str):
    """The agency's staff and pending invitations; invite, change roles, remove."""
    return _staff_page()


@bp.post("/<agency_code>/staff/invite")
@requires_role("admin", platform_admin=True)
def invite(agency_code: str):
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
def change_role(agency_code: str, membership_id: int):
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
def remove(agency_code: str, membership_id: int):
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
def revoke_invitation(agency_code: str, invitation_id: int):
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
def accept_invitation(token: str):
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
