"""Log in and log out."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts.forms import LoginForm, LogoutForm
from app.accounts.services import authenticate
from app.extensions import limiter
from app.i18n import gettext
from app.main.views import safe_next

bp = Blueprint("accounts", __name__, template_folder="templates")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():  # noqa: ANN201 - a page or a redirect
    """The log-in page."""
    if current_user.is_authenticated:
        return redirect(url_for("debts.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            language = session.get("language")
            session.clear()  # a fresh session on log-in defeats session fixation
            if language:
                session["language"] = language
            login_user(user)
            return redirect(safe_next(form.next.data, url_for("debts.dashboard")), 303)
        flash(gettext("The e-mail address or password is not right. Please try again."), "error")
    return render_template("accounts/login.html", form=form), 200 if not form.errors else 400


@bp.post("/logout")
@login_required
def logout():  # noqa: ANN201 - a redirect
    """Log out and forget the session."""
    if LogoutForm().validate_on_submit():
        logout_user()
        session.clear()
        flash(gettext("You have logged out."), "info")
    return redirect(url_for("main.home"), 303)
