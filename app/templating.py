"""Template filters and globals: money, dates, RF references and surcharge explanations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask
from flask_babel import format_date, format_datetime, get_locale, get_translations

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
    if isinstance(lines, SurchargeResult):
        result = lines
    else:
        rebuilt = tuple(line_from_dict(line) for line in lines)
        result = SurchargeResult(amount_minor=0, periods=0, days_late=0, lines=rebuilt, capped=False)
    translations = get_translations()
    return explain(
        result,
        currency=currency,
        locale=current_language(),
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
    app.add_template_filter(money, "money")
    app.add_template_filter(format_rf, "rf")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(local_datetime, "local_datetime")
    app.add_template_global(explain_surcharge, "explain_surcharge")
    app.add_template_global(current_language, "current_language")
    app.add_template_global(LANGUAGE_NAMES, "LANGUAGE_NAMES")
    app.add_template_global(category_label, "category_label")
    app.add_template_global(kind_label, "kind_label")


def category_label(category: str) -> str:
    """The debt category in words a citizen understands."""
    from app.i18n import gettext

    labels = {
        "certified": gettext("Certified debt"),
        "settled": gettext("Installment arrangement"),
        "uncertified": gettext("Bill (not yet certified)"),
    }
    return labels.get(category, category)


def kind_label(kind: str) -> str:
    """The kind of debt in words; unknown kinds show their slug made readable."""
    from app.i18n import gettext

    labels = {
        "property_fee": gettext("Property fee"),
        "cleaning_lighting_fee": gettext("Cleaning and lighting fee"),
        "traffic_fine": gettext("Traffic fine"),
        "market_stall_rent": gettext("Market stall rent"),
        "water_bill": gettext("Water bill"),
    }
    return labels.get(kind, kind.replace("_", " ").capitalize())
