"""Language and time-zone selection, and translation helpers usable outside templates."""

from __future__ import annotations

from flask import current_app, request, session
from flask_babel import gettext, lazy_gettext, ngettext
from flask_login import current_user

__all__ = ["gettext", "lazy_gettext", "ngettext", "select_locale", "select_timezone", "LANGUAGE_NAMES"]

#: Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"el": "Ελληνικά", "en": "English"}


def select_locale() -> str:
    """The visitor's chosen language, else their account's, else the browser's best match."""
    languages = current_app.config["LANGUAGES"]
    chosen = session.get("language")
    if chosen in languages:
        return chosen
    if current_user and current_user.is_authenticated and current_user.language in languages:
        return current_user.language
    return request.accept_languages.best_match(languages) or languages[0]


def select_timezone() -> str:
    """Times are shown in the portal's default zone (agencies may differ per page)."""
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]
