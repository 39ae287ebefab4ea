"""Buy an agency's items without an account: choose (tickets, permits, donations) → review and card → receipt.

The review, card and receipt screens are the guest payment's own; this module adds the first screen
and the tickets' PDF.
"""

from __future__ import annotations

from flask import Response, abort, current_app, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user

from app.catalog.services import item_for_sale, items_on_sale, seats_available
from app.checkout.messages import checkout_message
from app.checkout.services import CheckoutError, ItemOrder, quote_item, quote_items
from app.db import utcnow
from app.domain.money import minor_unit_exponent
from app.domain.second_factors import parse_typed_amount
from app.extensions import limiter
from app.guest import bp
from app.guest.forms import basket_fields, basket_form, basket_orders, order_answers, order_form, question_fields
from app.guest.services import order_tickets, payment_ticket_pairs, tickets_pdf
from app.guest.session import QUOTES_KEY, RECEIPTS_KEY, private_page, remember
from app.i18n import gettext
from app.templating import current_language


def _order_limit() -> str:
    return current_app.config["CATALOG_ORDER_RATE_LIMIT"]


@bp.get("/buy")
def catalog() -> str:
    """Everything agencies sell online right now: tickets, permits, fees, donations."""
    agency_code = request.args.get("agency") or None
    items = items_on_sale(utcnow(), agency_code)
    return render_template("guest/catalog.html", items=items)


def _basket_items(agency_code: str) -> tuple[list, list]:
    """The agency's items on sale: those bought by quantity here, and those with a page of their own."""
    items = items_on_sale(utcnow(), agency_code)
    signed_in = current_user.is_authenticated
    by_quantity = [item for item in items if not item.open_amount and (signed_in or not item.requires_account)]
    elsewhere = [item for item in items if item not in by_quantity]
    return by_quantity, elsewhere


def _basket_page(agency_code: str, form, status: int = 200, error: str | None = None) -> Response:
    by_quantity, elsewhere = _basket_items(agency_code)
    now = utcnow()
    page = render_template(
        "guest/basket.html",
        agency=(by_quantity or elsewhere)[0].agency,
        items=[(item, *basket_fields(form, item), seats_available(item, now)) for item in by_quantity],
        elsewhere=elsewhere,
        form=form,
        error=error,
    )
    return make_response(page, status)


@bp.route("/buy/<agency_code>", methods=["GET", "POST"])
@limiter.limit(_order_limit, methods=["POST"])
def basket(agency_code: str):
    """Several of an agency's items in one order (two adult and one child ticket): how many of each."""
    by_quantity, elsewhere = _basket_items(agency_code)
    if not by_quantity and not elsewhere:
        abort(404)
    form = basket_form(by_quantity, current_language())()
    if not form.validate_on_submit():
        return _basket_page(agency_code, form, 400 if form.errors else 200)
    chosen = basket_orders(form, by_quantity)
    if not chosen:
        return _basket_page(agency_code, form, 400, gettext("Choose at least one item."))
    orders = [ItemOrder(item.id, quantity, None, answers) for item, quantity, answers in chosen]
    user_id = (
        current_user.id
        if current_user.is_authenticated and any(item.requires_account for item, _, _ in chosen)
        else None
    )
    try:
        quote = quote_items(orders, user_id=user_id, now=utcnow())
    except CheckoutError as error:
        named = next((item for item in by_quantity if item.id == error.details.get("item_id")), None)
        message = checkout_message(error)
        if named is not None:
            message = f"{named.name(current_language())}: {message}"
        return _basket_page(agency_code, form, 409 if error.code in ("sold_out", "not_on_sale") else 400, message)
    remember(QUOTES_KEY, quote.token)
    return redirect(url_for("guest.review", token=quote.token), 303)


def _item_page(item, form, status: int = 200, error: str | None = None) -> Response:
    now = utcnow()
    page = render_template(
        "guest/item.html",
        item=item,
        form=form,
        questions=question_fields(form, item),
        on_sale=item.on_sale(now),
        seats_left=seats_available(item, now) if item.capacity is not None else None,
        error=error,
    )
    return make_response(page, status)


def _sold_item(agency_code: str, item_code: str):
    item = item_for_sale(agency_code, item_code)
    if item is None:
        abort(404)
    if item.requires_account and not current_user.is_authenticated:
        return None
    return item


@bp.get("/buy/<agency_code>/<item_code>")
def item(agency_code: str, item_code: str):
    """One item: what it is, its price or range, seats left, and the order form."""
    item = _sold_item(agency_code, item_code)
    if item is None:
        return redirect(url_for("accounts.login", next=request.full_path), 303)
    return _item_page(item, order_form(item, current_language())())


@bp.post("/buy/<agency_code>/<item_code>")
@limiter.limit(_order_limit)
def order(agency_code: str, item_code: str):
    """Price the order on the server, hold its seats, and go on to the review and card."""
    item = _sold_item(agency_code, item_code)
    if item is None:
        return redirect(url_for("accounts.login", next=request.path), 303)
    form = order_form(item, current_language())()
    if not form.validate_on_submit():
        return _item_page(item, form, 400)
    chosen_minor = None
    if item.open_amount:
        chosen_minor = parse_typed_amount(form.amount.data, minor_unit_exponent(item.currency))
        if chosen_minor is None:
            form.amount.errors = [gettext("Enter an amount such as 20 or 20,50.")]
            return _item_page(item, form, 400)
    try:
        quote = quote_item(
            item.id,
            quantity=1 if item.open_amount else form.quantity.data,
            chosen_minor=chosen_minor,
            answers=order_answers(form, item),
            user_id=current_user.id if current_user.is_authenticated and item.requires_account else None,
            now=utcnow(),
        )
    except CheckoutError as error:
        status = 409 if error.code in ("sold_out", "not_on_sale") else 400
        return _item_page(item, form, status, checkout_message(error))
    remember(QUOTES_KEY, quote.token)
    return redirect(url_for("guest.review", token=quote.token), 303)


@bp.get("/pay/receipt/<reference>/tickets.pdf")
def tickets(reference: str) -> Response:
    """The tickets of a paid order as a PDF, one per page with its QR code, for whoever paid it."""
    user_id = current_user.id if current_user.is_authenticated else None
    found = order_tickets(reference, user_id, reference in session.get(RECEIPTS_KEY, []))
    if found is None:
        abort(404)
    payment, issued = found
    response = Response(tickets_pdf(payment, issued, current_language()), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="tickets-{payment.reference}.pdf"'
    return private_page(response)


@bp.app_template_global("payment_tickets")
def _payment_tickets(payment) -> list:
    """(line, ticket) pairs of a payment's issued tickets, for the receipt pages."""
    return payment_ticket_pairs(payment)
