"""Front page, language switch and error pages."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.accounts.services import set_language
from app.i18n import gettext
from app.main.forms import LanguageForm
from app.web import safe_next

bp = Blueprint("main", __name__, template_folder="templates")


@bp.get("/")
def home() -> str:
    """What the portal is and where to start."""
    return render_template("main/home.html")


@bp.post("/language")
def change_language():
    """Remember the chosen language for this visitor (and their account)."""
    form = LanguageForm()
    target = safe_next(form.next.data, url_for("main.home"))
    if not form.validate_on_submit():
        flash(gettext("The form expired. Please try again."), "error")
        return redirect(target)
    language = form.language.data
    if language not in current_app.config["LANGUAGES"]:
        flash(gettext("That language is not available. Choose Ελληνικά or English."), "error")
        return redirect(target), 303
    session["language"] = language
    if current_user.is_authenticated:
        set_language(current_user, language)
    return redirect(target, 303)


def register_error_pages(app: Flask) -> None:
    """Plain-language error pages in the visitor's language."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        message = gettext(
            "This form has expired or was sent from elsewhere. Please go back, reload the page and try again."
        )
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: gettext("Something in the request was not right. Please go back and try again."),
            403: gettext("You do not have access to this page."),
            404: gettext("We could not find this page. It may have moved, or the link may be wrong."),
            405: gettext("This page cannot be used that way."),
            429: gettext("Too many attempts. Please wait a minute and try again."),
        }
        code = error.code or 500
        message = messages.get(code, gettext("Something went wrong on our side. Please try again later."))
        return render_template("error.html", code=code, message=message), code

    if app.testing:
        return  # let tests see the real exception

    @app.errorhandler(Exception)
    def server_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        message = gettext("Something went wrong on our side. Please try again later.")
        return render_template("error.html", code=500, message=message), 500
