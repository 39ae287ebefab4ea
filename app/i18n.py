"""Language and time-zone selection, and translation helpers usable outside templates."""

from __future__ import annotations

from babel import support
from flask import Request, current_app, request, session
from flask_babel import get_locale, gettext, lazy_gettext, ngettext
from flask_login import current_user
from wtforms.i18n import messages_path

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


#: WTForms' own messages per locale, read from its catalogue once per process.
_FORM_TRANSLATIONS: dict[str, support.Translations] = {}


class CachedFormTranslationsRequest(Request):
    """A request that hands Flask-WTF the form messages of its locale from a per-process cache.

    Flask-WTF looks for ``request.wtforms_translations`` and, when it is missing, reads WTForms'
    catalogue from disk (about 0.5 ms) on every request that builds a form with choices, such as
    the dashboard's. Here the attribute is there already, loaded once per locale.
    """

    @property
    def wtforms_translations(self) -> support.Translations:
        key = str(get_locale())
        translations = _FORM_TRANSLATIONS.get(key)
        if translations is None:
            translations = _FORM_TRANSLATIONS[key] = support.Translations.load(messages_path(), [key], domain="wtforms")
        return translations

    @wtforms_translations.setter
    def wtforms_translations(self, _value: support.Translations) -> None:
        pass  # Flask-WTF stores what it read; the cache above already holds it
