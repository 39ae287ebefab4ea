"""Log in and out, register and confirm the e-mail address, reset the password, the account page."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import services
from app.accounts.forms import (
    AccountDetailsForm,
    ChangePasswordForm,
    DeleteAccountForm,
    ForgotPasswordForm,
    LoginForm,
    LogoutForm,
    RegistrationForm,
    ResendVerificationForm,
    ResetPasswordForm,
)
from app.accounts.models import User
from app.accounts.services import authenticate, link_validity
from app.extensions import limiter
from app.i18n import gettext
from app.templating import current_language
from app.web import safe_next

bp = Blueprint("accounts", __name__, template_folder="templates")


# Limits are read from the configuration at request time, so tests (and operators) can change them.
def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _register_limit() -> str:
    return current_app.config["REGISTER_RATE_LIMIT"]


def _resend_limit() -> str:
    return current_app.config["VERIFY_RESEND_RATE_LIMIT"]


def _resend_email_limit() -> str:
    return current_app.config["VERIFY_RESEND_EMAIL_RATE_LIMIT"]


def _reset_limit() -> str:
    return current_app.config["PASSWORD_RESET_RATE_LIMIT"]


def _reset_email_limit() -> str:
    return current_app.config["PASSWORD_RESET_EMAIL_RATE_LIMIT"]


def _submitted_email() -> str:
    """Rate-limit key of the e-mail address a form names, so one inbox cannot be flooded."""
    return "email:" + (request.form.get("email") or "").strip().lower()


def _private(response: Response) -> Response:
    """Pages whose URL holds a token: never sent on in a Referer header, never cached."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _start_session(user: User) -> None:
    language = session.get("language")
    session.clear()  # a fresh session on log-in defeats session fixation
    if language:
        session["language"] = language
    login_user(user)


# -- log in and out ------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """The log-in page; an account whose address is not confirmed yet is turned away."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.show"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None and user.email_verified_at is None:
            return render_template("accounts/login.html", form=form, unverified=True), 403
        if user is not None:
            _start_session(user)
            return redirect(safe_next(form.next.data, url_for("dashboard.show")), 303)
        flash(gettext("The e-mail address or password is not right. Please try again."), "error")
    return render_template("accounts/login.html", form=form), 200 if not form.errors else 400


@bp.post("/logout")
@login_required
def logout():
    """Log out and forget the session."""
    if LogoutForm().validate_on_submit():
        logout_user()
        session.clear()
        flash(gettext("You have logged out."), "info")
    return redirect(url_for("main.home"), 303)


# -- registration and e-mail confirmation ---------------------------------------------------------


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(_register_limit, methods=["POST"])
def register():
    """Create an account; the same "check your e-mail" page follows whether or not it existed."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.show"))
    form = RegistrationForm()
    if request.method == "GET":
        form.language.data = current_language()
    if form.validate_on_submit():
        services.register_account(
            email=form.email.data,
            password=form.password.data,
            full_name=form.full_name.data,
            language=form.language.data,
        )
        return redirect(url_for("accounts.check_email"), 303)
    return render_template("accounts/register.html", form=form), 400 if form.errors else 200


@bp.get("/register/check-email")
def check_email() -> str:
    """After registering: look for our message."""
    validity = link_validity(current_app.config["EMAIL_VERIFY_MAX_AGE"])
    return render_template("accounts/check_email.html", validity=validity)


@bp.get("/verify/<token>")
def verify_email(token: str):
    """Follow the confirmation link of the e-mail."""
    result = services.verify_email(token)
    if result.status == "verified":
        flash(gettext("Thank you: your e-mail address is confirmed. You can log in now."), "success")
        return _private(redirect(url_for("accounts.login"), 303))
    if result.status == "already":
        flash(gettext("Your e-mail address was already confirmed. You can log in."), "info")
        return _private(redirect(url_for("accounts.login"), 303))
    form = ResendVerificationForm(formdata=None, data={"email": result.email or ""})
    page = render_template("accounts/verify_failed.html", form=form, expired=result.status == "expired")
    return _private(make_response(page, 400))


@bp.route("/verify/resend", methods=["GET", "POST"])
@limiter.limit(_resend_limit, methods=["POST"])
@limiter.limit(_resend_email_limit, methods=["POST"], key_func=_submitted_email)
def resend_verification():
    """Send the confirmation link again; the answer never says whether the address has an account."""
    form = ResendVerificationForm()
    if form.validate_on_submit():
        services.resend_verification(form.email.data)
        flash(
            gettext("If this address has an account waiting for confirmation, we have sent it a new link.")
            + " "
            + link_validity(current_app.config["EMAIL_VERIFY_MAX_AGE"]),
            "success",
        )
        return redirect(url_for("accounts.resend_verification"), 303)
    return render_template("accounts/resend_verification.html", form=form), 400 if form.errors else 200


# -- forgotten password -------------------------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_reset_limit, methods=["POST"])
@limiter.limit(_reset_email_limit, methods=["POST"], key_func=_submitted_email)
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        return redirect(url_for("accounts.forgot_password_sent"), 303)
    return render_template("accounts/forgot_password.html", form=form), 400 if form.errors else 200


@bp.get("/password/forgot/sent")
def forgot_password_sent() -> str:
    """After asking for a reset link."""
    validity = link_validity(current_app.config["PASSWORD_RESET_MAX_AGE"])
    return render_template("accounts/forgot_password_sent.html", validity=validity)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_reset_limit, methods=["POST"])
def reset_password(token: str):
    """Choose a new password through the link of the e-mail (once, within the hour)."""
    status, user = services.check_reset_token(token)
    if user is None:
        page = render_template("accounts/reset_failed.html", status=status)
        return _private(make_response(page, 400))
    form = ResetPasswordForm(email=user.email)
    if form.validate_on_submit():
        if services.reset_password(token, form.new_password.data) is None:
            # Used by another request in the meantime.
            return _private(make_response(render_template("accounts/reset_failed.html", status="used"), 400))
        flash(gettext("Your new password has been saved. You can log in with it now."), "success")
        return _private(redirect(url_for("accounts.login"), 303))
    page = render_template("accounts/reset_password.html", form=form, token=token)
    return _private(make_response(page, 400 if form.errors else 200))


# -- the account page ----------------------------------------------------------------------------------


def _account_page(
    details: AccountDetailsForm | None = None,
    password: ChangePasswordForm | None = None,
    delete: DeleteAccountForm | None = None,
    status: int = 200,
):
    """The account page with the one submitted form (and its errors) and the others fresh."""
    if details is None:
        details = AccountDetailsForm(formdata=None, obj=current_user)
    page = render_template(
        "accounts/account.html",
        details=details,
        password=password or ChangePasswordForm(formdata=None),
        delete=delete or DeleteAccountForm(formdata=None),
    )
    return page, status


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Name, phone, language and notification choices."""
    if request.method == "GET":
        return _account_page()
    form = AccountDetailsForm()
    if not form.validate_on_submit():
        return _account_page(details=form, status=400)
    services.update_account(
        current_user._get_current_object(),
        full_name=form.full_name.data,
        phone=form.phone.data,
        language=form.language.data,
        notify_email=form.notify_email.data,
        notify_sms=form.notify_sms.data,
    )
    session["language"] = form.language.data  # show the page in the language just chosen
    flash(gettext("Your details have been saved."), "success")
    return redirect(url_for("accounts.account"), 303)


@bp.post("/account/password")
@login_required
@limiter.limit(_login_limit)
def change_password():
    """Change the password; the current one is needed."""
    form = ChangePasswordForm(email=current_user.email)
    if not form.validate_on_submit():
        return _account_page(password=form, status=400)
    user = current_user._get_current_object()
    if not services.change_password(user, form.current_password.data, form.new_password.data):
        form.current_password.errors.append(gettext("Your current password is not right."))
        return _account_page(password=form, status=400)
    flash(gettext("Your password has been changed."), "success")
    return redirect(url_for("accounts.account"), 303)


@bp.post("/account/delete")
@login_required
@limiter.limit(_login_limit)
def delete_account():
    """Delete the account for good (payments stay with the agencies); then log out."""
    form = DeleteAccountForm()
    if not form.validate_on_submit():
        return _account_page(delete=form, status=400)
    if not services.delete_account(current_user._get_current_object(), form.delete_password.data):
        form.delete_password.errors.append(gettext("Your password is not right."))
        return _account_page(delete=form, status=400)
    logout_user()
    session.clear()
    flash(gettext("Your account has been deleted. Thank you for using Civic Pay."), "success")
    return redirect(url_for("main.home"), 303)
