"""Sentences for the reasons a checkout or a card can be refused."""

from __future__ import annotations

from app.checkout.services import CheckoutError
from app.domain.money import format_money
from app.i18n import gettext, ngettext
from app.templating import current_language


def _money(error: CheckoutError, key: str) -> str:
    return format_money(int(error.details.get(key) or 0), error.details.get("currency", "EUR"), current_language())


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
    if error.code == "sold_out":
        left = int(error.details.get("left") or 0)
        if left == 0:
            return gettext("Sold out: there are no tickets left. Nothing was charged.")
        return ngettext(
            "Only %(num)d ticket is left. Nothing was charged; choose fewer tickets.",
            "Only %(num)d tickets are left. Nothing was charged; choose fewer tickets.",
            left,
        )
    if error.code == "not_on_sale":
        return gettext("This item is not on sale at the moment. Nothing was charged.")
    if error.code == "account_required":
        return gettext("Sign in to buy this item: the agency sells it only to registered citizens.")
    if error.code == "quantity":
        return ngettext(
            "Choose %(num)d item.", "Choose between 1 and %(num)d items.", int(error.details.get("most") or 1)
        )
    if error.code == "amount_missing":
        return gettext(
            "Enter an amount between %(least)s and %(most)s.", least=_money(error, "least"), most=_money(error, "most")
        )
    if error.code == "amount_too_low":
        return gettext("The smallest amount is %(least)s.", least=_money(error, "least"))
    if error.code == "amount_too_high":
        return gettext("The largest amount is %(most)s.", most=_money(error, "most"))
    if error.code == "answer_missing":
        return gettext("Answer every question marked as required.")
    if error.code == "answer_too_long":
        return gettext("An answer is too long: use at most %(most)s characters.", most=error.details.get("most"))
    if error.code == "quote_expired" and error.details.get("order"):
        return gettext(
            "Tickets and items are held for you for a limited time, and this order has expired. "
            "Nothing was charged; please order again."
        )
    if error.code == "quote_expired":
        return gettext(
            "Surcharges are recalculated every day and this summary has expired. "
            "Nothing was charged; please review the payment again."
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
        return gettext("This is test mode: only the test cards listed on this page are accepted. Nothing was charged.")
    return gettext("The card was declined by the bank. Nothing was charged. Try again or use another card.")


def unavailable_message() -> str:
    """A sentence for when the card processor cannot be reached."""
    return gettext(
        "The card payment service is not answering right now. Nothing was charged. Please try again in a few minutes."
    )
