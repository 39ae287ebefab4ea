"""Sentences for the states of a tax ID claim and the reasons a proof is refused."""

from __future__ import annotations

from datetime import datetime

from babel import Locale
from flask_babel import format_date, format_time

from app.i18n import gettext, ngettext
from app.taxids.services import (
    AWAITING_CODE,
    LOCKED,
    PROOF_SMS,
    PROVEN,
    ClaimState,
    InvalidTaxId,
    ProofError,
)
from app.templating import current_language


def time_of_day(value: datetime) -> str:
    """A time in the portal's zone and the request's language, e.g. 14:52."""
    return format_time(value, format="short")


def country_name(code: str) -> str:
    """The country's name in the request's language (from CLDR, via Babel)."""
    return Locale.parse(current_language()).territories.get(code.upper(), code.upper())


def tax_id_label(country: str, tax_id: str) -> str:
    """How a tax ID is named on the pages: "AFM 147382606" for Greece, else with the country."""
    if country.upper() == "GR":
        return gettext("AFM %(tax_id)s", tax_id=tax_id)
    return gettext("%(country)s tax ID %(tax_id)s", country=country_name(country), tax_id=tax_id)


def state_sentence(claim: ClaimState) -> str:
    """Where the claim stands, for the list of tax IDs."""
    if claim.state == PROVEN:
        return gettext("Proven on %(date)s", date=format_date(claim.link.verified_at, format="medium"))
    if claim.state == LOCKED:
        return gettext("Locked until %(time)s after too many wrong answers", time=time_of_day(claim.until))
    if claim.state == AWAITING_CODE:
        return gettext("Waiting for the code we sent (it works until %(time)s)", time=time_of_day(claim.until))
    return gettext("Not proven yet: its debts stay hidden")


def invalid_tax_id_message(error: InvalidTaxId) -> str:
    """Why the number typed is not a tax ID of the chosen country."""
    if error.reason == "country":
        return gettext("Choose a country from the list.")
    if error.reason == "checksum":
        return gettext(
            "This tax ID contains a typing mistake: its check digit does not match. "
            "Copy it again from a tax or payment notice."
        )
    if error.country == "GR":
        return gettext("This is not a valid AFM: a Greek tax ID has exactly 9 digits.")
    return gettext(
        "This is not a valid tax ID for %(country)s. Copy it again from a tax or payment notice.",
        country=country_name(error.country),
    )


def proof_message(error: ProofError) -> str:
    """A sentence saying why the proof was refused and what to do next."""
    details = error.details
    if error.code == "already_proven":
        return gettext("This tax ID is already proven: its debts are on your list of debts.")
    if error.code == "locked":
        return gettext(
            "Too many wrong answers: this tax ID is locked until %(time)s. Please try again after that.",
            time=time_of_day(details["until"]),
        )
    if error.code == "wrong_code":
        return ngettext(
            "This code is not right. You can try %(num)d more time.",
            "This code is not right. You can try %(num)d more times.",
            details["attempts_left"],
        )
    if error.code == "wrong_notice":
        return ngettext(
            "The payment code and amount do not match a notice of this tax ID from the last two years. "
            "You can try %(num)d more time.",
            "The payment code and amount do not match a notice of this tax ID from the last two years. "
            "You can try %(num)d more times.",
            details["attempts_left"],
        )
    if error.code == "expired":
        return gettext("This code has expired. Please ask for a new one.")
    if error.code == "no_code":
        return gettext(
            "We have not sent you a code for this tax ID yet, or it has been cancelled. Please ask for a new one."
        )
    if error.code == "too_soon":
        return ngettext(
            "We have just sent you a code. Please wait %(num)d second before asking for another.",
            "We have just sent you a code. Please wait %(num)d seconds before asking for another.",
            details["seconds"],
        )
    if error.code == "not_delivered":
        if details.get("method") == PROOF_SMS:
            return gettext("We could not send the text message just now. Please try again in a few minutes.")
        return gettext("We could not send the e-mail just now. Please try again in a few minutes.")
    return gettext("Choose where we should send the code.")


def sent_message(method: str, masked: str, until: datetime) -> str:
    """Confirmation that a code is on its way, and until when it works."""
    if method == PROOF_SMS:
        return gettext(
            "We have sent a text message with a code to %(destination)s. It works until %(time)s.",
            destination=masked,
            time=time_of_day(until),
        )
    return gettext(
        "We have sent an e-mail with a code to %(destination)s. It works until %(time)s. "
        "If it does not arrive, look in the spam folder too.",
        destination=masked,
        time=time_of_day(until),
    )


def destination_label(method: str, masked: str) -> str:
    """The choice of where to send the code."""
    if method == PROOF_SMS:
        return gettext("By text message to %(destination)s", destination=masked)
    return gettext("By e-mail to %(destination)s", destination=masked)
