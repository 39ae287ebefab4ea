"""The agency's catalog (tickets, permits, fees, donations) and the door's ticket check.

Catalog pages live under the treasury's agency routes, so its one access check covers them.
The ticket check is at /tickets/check, outside any agency: door staff scan a ticket's QR code
and the page looks the ticket up among the agencies the person works for, and only those.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.catalog.services import (
    CHECK_ADMITTED,
    CHECK_ALREADY_USED,
    ItemCodeTaken,
    agency_item,
    agency_items,
    find_ticket,
    sales_counts,
    save_item,
    use_ticket,
)
from app.db import utcnow
from app.i18n import gettext
from app.templating import current_language
from app.treasury.access import services
from app.treasury.access.guard import guard, private, requires_role
from app.treasury.blueprint import bp, tickets_bp
from app.treasury.catalog.forms import ItemForm, TicketCheckForm

# The door's check passes the treasury's own access check (and its no-store headers).
tickets_bp.before_request(guard)
tickets_bp.after_request(private)


def _item_form(**kwargs) -> ItemForm:
    return ItemForm(currency=g.agency.currency, timezone=g.agency.timezone, **kwargs)


@bp.get("/<agency_code>/catalog")
def catalog(agency_code: str) -> str:
    """The agency's items with what was sold, used at the door and held right now."""
    items = agency_items(g.agency.id)
    return render_template(
        "treasury/catalog.html", items=items, counts=sales_counts([item.id for item in items], utcnow())
    )


def _save(form: ItemForm, item=None):
    try:
        return save_item(g.agency, form.cleaned, item)
    except ItemCodeTaken:
        form.code.errors.append(gettext("Another item of this agency has this code."))
        return None


@bp.route("/<agency_code>/catalog/new", methods=["GET", "POST"])
@requires_role("admin")
def new_item(agency_code: str):
    """Add an item to the agency's catalog."""
    form = _item_form()
    if form.validate_on_submit() and _save(form) is not None:
        flash(gettext("The item was saved."), "success")
        return redirect(url_for("treasury.catalog", agency_code=agency_code), 303)
    return render_template("treasury/catalog_item.html", form=form, item=None), 400 if form.errors else 200


@bp.route("/<agency_code>/catalog/<int:item_id>", methods=["GET", "POST"])
@requires_role("admin")
def edit_item(agency_code: str, item_id: int):
    """Change an item; sold tickets stay valid whatever changes."""
    item = agency_item(g.agency.id, item_id)
    if item is None:
        abort(404)
    form = _item_form()
    if request.method == "GET":
        form.fill_from(item, current_language())
    elif form.validate_on_submit() and _save(form, item) is not None:
        flash(gettext("The item was saved."), "success")
        return redirect(url_for("treasury.catalog", agency_code=agency_code), 303)
    return render_template("treasury/catalog_item.html", form=form, item=item), 400 if form.errors else 200


def _staff_agency_ids() -> list[int]:
    return [access.agency.id for access in services.accessible_agencies(current_user) if access.role is not None]


@tickets_bp.route("/tickets/check", methods=["GET", "POST"])
def check():
    """Let a ticket in once; a GET (an opened QR code) only shows the ticket and asks to confirm."""
    agency_ids = _staff_agency_ids()
    if request.method == "GET":
        form = TicketCheckForm(formdata=None, code=request.args.get("code", ""))
        ticket = find_ticket(form.code.data, agency_ids) if form.code.data else None
        status = 404 if form.code.data and ticket is None else 200
        return render_template(
            "treasury/ticket_check.html", form=form, ticket=ticket, outcome=None, looked_up=bool(form.code.data)
        ), status
    form = TicketCheckForm()
    if not form.validate_on_submit():
        return render_template("treasury/ticket_check.html", form=form, ticket=None, outcome=None, looked_up=False), 400
    result = use_ticket(form.code.data, agency_ids, current_user.id, utcnow())
    status = {CHECK_ADMITTED: 200, CHECK_ALREADY_USED: 409}.get(result.outcome, 404 if result.ticket is None else 409)
    next_form = TicketCheckForm(formdata=None)
    return (
        render_template(
            "treasury/ticket_check.html", form=next_form, ticket=result.ticket, outcome=result.outcome, looked_up=True
        ),
        status,
    )
