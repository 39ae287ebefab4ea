"""Sentences for the reasons a checkout or a card can be refused."""

from __future__ import annotations

from app.checkout.services import CheckoutError
from app.i18n import gettext


def checkout_message(error: CheckoutError) -> str:
    """A sentence in the citizen's language saying why the selection cannot be paid."""
    description = error.details.get("description", "")
    if error.code == "empty":
        return gettext("Select at least one debt to pay.")
    if error.code == "unknown":
        return gettext(
            "One of the selected debts is no longer open or is not yours. Nothing was charged; please select again."
        )
    if error.code == "not_online":
        return gettext("“%(debt)s” cannot be paid online. Please contact the agency.", debt=description)
    if error.code in ("in_progress", "taken"):
        return gettext(
            "“%(debt)s” is already paid or a payment for it is in progress. Nothing was charged.",
            debt=description,
        )
    if error.code == "installment_order":
        return gettext(
            "Installments of “%(debt)s” must be paid in order: please also select installment %(number)s.",
            debt=description,
            number=error.details.get("number"),
        )
    if error.code == "changed":
        return gettext(
            "“%(debt)s” has just changed at the agency. Nothing was charged; please check the new amounts and select again.",
            debt=description,
        )
    if error.code == "mixed_currency":
        return gettext("Debts in different currencies must be paid separately.")
    if error.code == "quote_expired":
        return gettext(
            "Surcharges are recalculated every day and this summary has expired. Nothing was charged; please review the payment again."
        )
    if error.code == "quote_used":
        return gettext("This payment has already been made.")
    return gettext("We could not find this payment summary. Please select the debts again.")


def decline_message(code: str | None) -> str:
    """A sentence saying why the card was declined and what to do next."""
    if code == "insufficient_funds":
        return gettext("The card was declined: not enough funds. Nothing was charged. Try another card.")
    if code == "expired_card":
        return gettext("The card was declined because it has expired. Nothing was charged. Try another card.")
    if code == "authentication_failed":
        return gettext(
            "Your bank could not confirm that it is you (3-D Secure), so nothing was charged. Try again or use another card."
        )
    if code == "card_not_confirmed":
        return gettext("The card details were not confirmed. Nothing was charged. Please enter the card again.")
    if code == "abandoned":
        return gettext("The payment was not completed in time. Nothing was charged.")
    if code == "test_mode_live_card":
        return gettext(
            "This is test mode: only the test cards listed on this page are accepted. Nothing was charged."
        )
    return gettext("The card was declined by the bank. Nothing was charged. Try again or use another card.")


def unavailable_message() -> str:
    """A sentence for when the card processor cannot be reached."""
    return gettext(
        "The card payment service is not answering right now. Nothing was charged. Please try again in a few minutes."
    )
