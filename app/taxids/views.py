"""My tax IDs: claim a tax ID, then prove it with a one-time code or a payment notice."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from app.db import utcnow
from app.extensions import limiter
from app.i18n import gettext
from app.taxids import bp, services
from app.taxids.forms import ClaimForm, CodeForm, NoticeForm, RemoveForm, SendCodeForm
from app.taxids.messages import (
    invalid_tax_id_message,
    proof_message,
    sent_message,
    state_sentence,
    tax_id_label,
)
from app.taxids.services import ClaimNotFound, InvalidTaxId, ProofError


# Limits are read from the configuration at request time, so operators (and tests) can change them.
def _claim_limit() -> str:
    return current_app.config.get("TAXID_CLAIM_RATE_LIMIT", "30 per hour")


def _send_limit_per_account() -> str:
    return current_app.config.get("TAXID_SEND_RATE_LIMIT", "10 per hour")


def _send_limit_per_tax_id() -> str:
    return current_app.config.get("TAXID_SEND_PER_TAX_ID_RATE_LIMIT", "5 per hour")


def _account_key() -> str:
    return f"account:{current_user.id}" if current_user.is_authenticated else "account:none"


def _claimed_tax_id_key() -> str:
    """Rate-limit key of the tax ID being proven: several accounts together cannot flood its inbox."""
    try:
        link = services.get_claim(current_user.id, int((request.view_args or {}).get("link_id", 0)))
    except (ClaimNotFound, AttributeError):
        return "tax-id:none"
    return f"tax-id:{link.country}:{link.tax_id}"


@bp.errorhandler(ClaimNotFound)
def claim_not_found(_error: ClaimNotFound):
    """Someone else's claim (or none): the same page as any unknown address."""
    return current_app.handle_http_exception(NotFound())


@bp.app_template_global("has_proven_tax_id")
def has_proven_tax_id() -> bool:
    """Whether the logged-in citizen has proven at least one tax ID (for the dashboard)."""
    return current_user.is_authenticated and services.has_proven_tax_id(current_user.id)


def _list_page(form: ClaimForm | None = None, status: int = 200):
    claims = services.claims_of_user(current_user.id, utcnow())
    page = render_template(
        "taxids/list.html",
        claims=claims,
        form=form or ClaimForm(formdata=None),
        remove_form=RemoveForm(formdata=None),
        state_sentence=state_sentence,
        tax_id_label=tax_id_label,
    )
    return page, status


@bp.get("/tax-ids")
@login_required
def index():
    """The account's tax IDs with their state, and the form to add one."""
    return _list_page()


@bp.post("/tax-ids")
@login_required
@limiter.limit(_claim_limit, key_func=_account_key)
def claim():
    """Add a tax ID to the account, then go on to prove it."""
    form = ClaimForm()
    if form.validate_on_submit():
        try:
            result = services.claim_tax_id(current_user.id, form.country.data, form.number.data)
        except InvalidTaxId as error:
            form.number.errors.append(invalid_tax_id_message(error))
        else:
            if result.link.verified_at is not None:
                flash(gettext("This tax ID is already proven: its debts are on your list of debts."), "info")
                return redirect(url_for("taxids.index"), 303)
            return redirect(url_for("taxids.prove", link_id=result.link.id), 303)
    return _list_page(form, status=400)


def _prove_page(link_id: int, form: SendCodeForm | None = None, status: int = 200):
    options = services.proof_options(current_user.id, link_id, utcnow())
    if options.claim.state == services.PROVEN:
        flash(gettext("This tax ID is already proven: its debts are on your list of debts."), "info")
        return redirect(url_for("taxids.index"), 303)
    page = render_template(
        "taxids/prove.html",
        options=options,
        claim=options.claim,
        label=tax_id_label(options.claim.link.country, options.claim.link.tax_id),
        form=form or SendCodeForm(formdata=None, destinations=options.destinations),
        locked_message=_locked_message(options.claim),
    )
    return page, status


def _locked_message(claim: services.ClaimState) -> str | None:
    if claim.state != services.LOCKED:
        return None
    return proof_message(ProofError("locked", until=claim.until))


@bp.get("/tax-ids/<int:link_id>")
@login_required
def prove(link_id: int):
    """How the claim can be proven: a code to one of the agencies' addresses, or a notice."""
    return _prove_page(link_id)


@bp.post("/tax-ids/<int:link_id>/send-code")
@login_required
@limiter.limit(_send_limit_per_account, key_func=_account_key)
@limiter.limit(_send_limit_per_tax_id, key_func=_claimed_tax_id_key)
def send_code(link_id: int):
    """Send a one-time code to the address chosen."""
    options = services.proof_options(current_user.id, link_id, utcnow())
    form = SendCodeForm(destinations=options.destinations)
    if not form.validate_on_submit():
        return _prove_page(link_id, form, status=400)
    try:
        sent = services.send_code(current_user.id, link_id, form.destination.data)
    except ProofError as error:
        if error.code == "already_proven":
            return _prove_page(link_id)
        form.destination.errors = [proof_message(error)]
        return _prove_page(link_id, form, status=429 if error.code == "too_soon" else 400)
    flash(sent_message(sent.destination.method, sent.destination.masked, sent.expires_at), "success")
    return redirect(url_for("taxids.enter_code", link_id=link_id), 303)


def _proven(link_id: int):
    link = services.get_claim(current_user.id, link_id)
    flash(
        gettext(
            "Thank you: %(tax_id)s is proven. Its debts now appear on your list.",
            tax_id=tax_id_label(link.country, link.tax_id),
        ),
        "success",
    )
    return redirect(url_for("dashboard.show"), 303)


@bp.route("/tax-ids/<int:link_id>/code", methods=["GET", "POST"])
@login_required
def enter_code(link_id: int):
    """Type the one-time code; a right code proves the claim."""
    claim = services.claim_state(services.get_claim(current_user.id, link_id), utcnow())
    if claim.state == services.PROVEN:
        return _prove_page(link_id)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            services.verify_code(current_user.id, link_id, form.code.data)
        except ProofError as error:
            if error.code == "already_proven":
                return _prove_page(link_id)
            form.code.errors.append(proof_message(error))
        else:
            return _proven(link_id)
    claim = services.claim_state(services.get_claim(current_user.id, link_id), utcnow())
    page = render_template(
        "taxids/code.html",
        form=form,
        claim=claim,
        label=tax_id_label(claim.link.country, claim.link.tax_id),
        locked_message=None if form.code.errors else _locked_message(claim),
    )
    return page, 400 if form.errors else 200


@bp.route("/tax-ids/<int:link_id>/notice", methods=["GET", "POST"])
@login_required
def notice(link_id: int):
    """Type the RF payment code and the amount of a notice; a right pair proves the claim."""
    claim = services.claim_state(services.get_claim(current_user.id, link_id), utcnow())
    if claim.state == services.PROVEN:
        return _prove_page(link_id)
    form = NoticeForm()
    problem = None
    if form.validate_on_submit():
        try:
            services.verify_notice(current_user.id, link_id, form.rf_reference.data, form.amount.data)
        except ProofError as error:
            if error.code == "already_proven":
                return _prove_page(link_id)
            problem = proof_message(error)
        else:
            return _proven(link_id)
    claim = services.claim_state(services.get_claim(current_user.id, link_id), utcnow())
    page = render_template(
        "taxids/notice.html",
        form=form,
        claim=claim,
        label=tax_id_label(claim.link.country, claim.link.tax_id),
        problem=problem or _locked_message(claim),
    )
    return page, 400 if (problem or form.errors) else 200


@bp.post("/tax-ids/<int:link_id>/remove")
@login_required
def remove(link_id: int):
    """Take a tax ID off the account."""
    form = RemoveForm()
    if form.validate_on_submit():
        link = services.get_claim(current_user.id, link_id)
        label = tax_id_label(link.country, link.tax_id)
        services.remove_claim(current_user.id, link_id)
        flash(gettext("%(tax_id)s has been removed from your account.", tax_id=label), "success")
    return redirect(url_for("taxids.index"), 303)
