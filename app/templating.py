"""Template filters and globals: money, dates, RF references and surcharge explanations.

Speed: a page of debts calls these a dozen times a row. Flask-Babel finds the request's
translations afresh on every ``_()`` (about 10 µs: the locale, its name, a cache look-up), so
each rendered template gets, once, the request's language and translations bound into
``_``/``gettext``/``ngettext``, the label tables and ``explain_surcharge`` (``_bound_helpers``);
the same helpers called from Python look the language up as before. Translated label tables and
constant strings are kept per language for the life of the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from flask import Flask
from flask_babel import format_date, format_datetime, get_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from app.domain.money import format_money
from app.domain.references import format_rf
from app.domain.surcharges import Period, SurchargeLine, SurchargeResult, explain
from app.i18n import LANGUAGE_NAMES


def current_language() -> str:
    """The language of this request ("el" or "en")."""
    locale = get_locale()
    return locale.language if locale else "el"


def money(amount_minor: int, currency: str) -> str:
    """Format minor units in the request's language: 12,34 € or €12.34."""
    return format_money(amount_minor, currency, current_language())


def line_from_dict(data: Mapping[str, Any]) -> SurchargeLine:
    """Rebuild a stored surcharge explanation line."""
    return SurchargeLine(
        kind=data["kind"],
        periods=data.get("periods"),
        period=Period(data["period"]) if data.get("period") else None,
        rate_percent=Decimal(data["rate_percent"]) if data.get("rate_percent") else None,
        base_minor=data.get("base_minor"),
        amount_minor=data.get("amount_minor"),
        category=data.get("category"),
        days=data.get("days"),
    )


def explain_surcharge(lines: SurchargeResult | Iterable[Mapping[str, Any]], currency: str) -> list[str]:
    """Sentences explaining a surcharge, from a live result or stored lines."""
    return _explain_in(lines, currency, current_language(), get_translations())


def _explain_in(
    lines: SurchargeResult | Iterable[Mapping[str, Any]], currency: str, language: str, translations: Any
) -> list[str]:
    if isinstance(lines, SurchargeResult):
        result = lines
    else:
        rebuilt = tuple(line_from_dict(line) for line in lines)
        result = SurchargeResult(amount_minor=0, periods=0, days_late=0, lines=rebuilt, capped=False)
    return explain(
        result,
        currency=currency,
        locale=language,
        gettext=translations.gettext,
        ngettext=translations.ngettext,
    )


def local_date(value: date) -> str:
    """A date in the request's language, medium length (3 Mar 2026 / 3 Μαρ 2026)."""
    return format_date(value, format="medium")


def local_datetime(value: datetime) -> str:
    """A timestamp in the portal's time zone and the request's language."""
    return format_datetime(value, format="medium")


def register_template_helpers(app: Flask) -> None:
    """Make the helpers available in every template."""
    app.add_template_filter(_money_filter, "money")
    app.context_processor(_bound_helpers)
    app.add_template_filter(format_rf, "rf")
    app.add_template_filter(_local_date_filter, "local_date")
    app.add_template_filter(local_datetime, "local_datetime")
    app.add_template_global(explain_surcharge, "explain_surcharge")
    app.add_template_global(current_language, "current_language")
    app.add_template_global(LANGUAGE_NAMES, "LANGUAGE_NAMES")
    app.add_template_global(category_label, "category_label")
    app.add_template_global(kind_label, "kind_label")


def category_label(category: str) -> str:
    """The debt category in words a citizen understands."""
    return _labels(current_language(), get_translations()).category(category)


def kind_label(kind: str) -> str:
    """The kind of debt in words; unknown kinds show their slug made readable."""
    return _labels(current_language(), get_translations()).kind(kind)


class _Labels:
    """The label tables of one language, translated once."""

    def __init__(self, translations: Any) -> None:
        gettext = translations.ugettext
        self.translations = translations
        self.categories = {
            "certified": gettext("Certified debt"),
            "settled": gettext("Installment arrangement"),
            "uncertified": gettext("Bill (not yet certified)"),
        }
        self.kinds = {
            "property_fee": gettext("Property fee"),
            "cleaning_lighting_fee": gettext("Cleaning and lighting fee"),
            "traffic_fine": gettext("Traffic fine"),
            "market_stall_rent": gettext("Market stall rent"),
            "water_bill": gettext("Water bill"),
        }

    def category(self, category: str) -> str:
        return self.categories.get(category, category)

    def kind(self, kind: str) -> str:
        label = self.kinds.get(kind)
        return label if label is not None else kind.replace("_", " ").capitalize()


#: Per language: its label tables (rebuilt if Flask-Babel loads its translations afresh).
_LABELS: dict[str, _Labels] = {}


def _labels(language: str, translations: Any) -> _Labels:
    labels = _LABELS.get(language)
    if labels is None or labels.translations is not translations:
        labels = _LABELS[language] = _Labels(translations)
    return labels


# -- helpers bound to one template's language ---------------------------------------------------


class _Bound:
    """The request's language and translations, bound into the template helpers once per render.

    ``gettext``/``ngettext`` behave exactly as Jinja's "newstyle" gettext that Flask-Babel
    installs (the translation is marked safe and %-formatted with escaped variables, always);
    a string without variables is translated and formatted once per language and kept.
    """

    def __init__(self, language: str, translations: Any) -> None:
        self.language = language
        self.translations = translations
        self.labels = _labels(language, translations)
        #: (autoescape, msgid) -> the formatted translation of a string without variables.
        self.constants: dict[tuple[bool, str], str] = {}
        self.context = {
            "_": self.gettext,
            "gettext": self.gettext,
            "ngettext": self.ngettext,
            "current_language": self.current_language,
            "category_label": self.labels.category,
            "kind_label": self.labels.kind,
            "explain_surcharge": self.explain_surcharge,
            "_bound_language": language,
        }

    def current_language(self) -> str:
        return self.language

    @pass_context
    def gettext(self, context: Context, string: str, /, **variables: Any) -> str:
        autoescape = context.eval_ctx.autoescape
        if not variables:
            key = (autoescape, string)
            text = self.constants.get(key)
            if text is None:
                text = self.constants[key] = self._format(self.translations.ugettext(string), autoescape, variables)
            return text
        return self._format(self.translations.ugettext(string), autoescape, variables)

    @pass_context
    def ngettext(self, context: Context, singular: str, plural: str, num: int, /, **variables: Any) -> str:
        variables.setdefault("num", num)
        return self._format(self.translations.ungettext(singular, plural, num), context.eval_ctx.autoescape, variables)

    @staticmethod
    def _format(text: str, autoescape: bool, variables: dict[str, Any]) -> str:
        # As jinja2.ext's newstyle gettext: always a format string, variables escaped in HTML.
        return (Markup(text) if autoescape else text) % variables

    def explain_surcharge(self, lines: SurchargeResult | Iterable[Mapping[str, Any]], currency: str) -> list[str]:
        return _explain_in(lines, currency, self.language, self.translations)


#: Per language: its bound helpers (rebuilt if Flask-Babel loads its translations afresh).
_BOUND: dict[str, _Bound] = {}


def _bound_helpers() -> dict[str, Any]:
    """Context processor: this render's helpers, bound to the request's language."""
    language = current_language()
    translations = get_translations()
    bound = _BOUND.get(language)
    if bound is None or bound.translations is not translations:
        bound = _BOUND[language] = _Bound(language, translations)
    return bound.context


@pass_context
def _money_filter(context: Context, amount_minor: int, currency: str) -> str:
    """The ``money`` filter: money() in the language bound to the template, if any."""
    language = context.get("_bound_language")
    return format_money(amount_minor, currency, language or current_language())


@pass_context
def _local_date_filter(context: Context, value: date) -> str:
    """The ``local_date`` filter: local_date(), kept per day and language (due dates repeat)."""
    language = context.get("_bound_language")
    if language is None or type(value) is not date:
        return local_date(value)
    return _local_date_in(value, language)


@lru_cache(maxsize=4096)
def _local_date_in(value: date, language: str) -> str:
    # Called only while rendering in ``language``, so local_date() writes that language.
    return local_date(value)
