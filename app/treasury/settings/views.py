"""Settings pages: the agency's settings with a surcharge preview, credentials, e-mail texts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from app.agencies.models import ALL_CATEGORIES
from app.db import utcnow
from app.domain.money import Money
from app.domain.second_factors import FACTORS
from app.i18n import gettext
from app.templating import category_label, kind_label
from app.treasury.access.guard import agency_today, requires_role
from app.treasury.blueprint import bp
from app.treasury.settings import services as agency_settings
from app.treasury.settings.forms import (
    CredentialsForm,
    NotesForm,
    RemoveCredentialForm,
    SettingsFormBase,
    settings_form,
    withholdings_text,
)

# -- agency settings -------------------------------------------------------------------------------------


def _factor_label(factor: str) -> str:
    labels = {
        "tax_id_last4": gettext("Last four characters of the tax ID"),
        "plate": gettext("Vehicle registration plate"),
        "amount": gettext("The amount of the debt"),
    }
    return labels.get(factor, factor)


def _decimal_text(amount_minor: int | None, currency: str) -> str:
    return "" if amount_minor is None else str(Money(amount_minor, currency).to_decimal())


def _settings_initial(current: agency_settings.AgencySettings, kinds: list[str], today: date) -> dict[str, Any]:
    """The form's values on GET: the saved settings and an example debt 75 days overdue."""
    currency = g.agency.currency
    policy = current.surcharge_policy
    initial: dict[str, Any] = {
        "online_categories": current.online_categories,
        "all_kinds": current.online_kinds is None,
        "online_kinds": kinds if current.online_kinds is None else current.online_kinds,
        "rate_percent": str(policy.rate_percent),
        "period": policy.period.value,
        "started_period_counts_whole": policy.started_period_counts_whole,
        "grace_days": policy.grace_days,
        "cap_amount": _decimal_text(policy.cap_minor, currency),
        "cap_percent": "" if policy.cap_percent is None else str(policy.cap_percent),
        "minimum": _decimal_text(policy.minimum_minor or None, currency),
        "rounding": policy.rounding,
        "surcharged_categories": sorted(policy.categories),
        "installments_in_order": current.installments_in_order,
        "factor_default": current.guest_second_factor.get("default") or "tax_id_last4",
        "preview_principal": _decimal_text(10000, currency),
        "preview_category": "certified",
        "preview_due_date": today - timedelta(days=75),
        "preview_on": today,
    }
    initial["withholdings_default"] = withholdings_text(current.withholdings.get("default"), currency)
    for kind in kinds:
        initial[f"factor_{kind}"] = current.guest_second_factor.get(kind, "")
        initial[f"withholdings_{kind}"] = withholdings_text(current.withholdings.get(kind), currency)
    return initial


@bp.route("/<agency_code>/settings", methods=["GET", "POST"])
@requires_role("admin")
def settings(agency_code: str):
    """What is payable online, the surcharge policy with a preview, guest second factors."""
    agency = g.agency
    current = agency_settings.current_settings(agency)
    kinds = agency_settings.known_kinds(agency)
    form_class = settings_form(kinds, {"start_after_days": current.surcharge_policy.start_after_days})
    labels = {
        "categories": {category: category_label(category) for category in ALL_CATEGORIES},
        "kinds": {kind: kind_label(kind) for kind in kinds},
        "factors": {factor: _factor_label(factor) for factor in FACTORS},
    }
    initial = None if request.method == "POST" else _settings_initial(current, form_class.kinds, agency_today())
    form: SettingsFormBase = form_class(data=initial, currency=agency.currency, labels=labels)
    status, policy = 200, current.surcharge_policy
    if form.is_submitted():
        if not form.validate():
            status, policy = 400, None
        else:
            policy = form.policy()
            if form.save.data:
                if agency_settings.update_settings(agency, form.agency_settings()):
                    flash(gettext("The settings have been saved."), "success")
                else:
                    flash(gettext("Nothing was changed."), "info")
                return redirect(url_for("treasury.settings", agency_code=agency_code), 303)
    preview = None
    example = form.preview_values()
    if policy is not None and example is not None:
        principal, due_date, on, category = example
        preview = agency_settings.preview_surcharge(
            policy, principal_minor=principal, due_date=due_date, on=on, category=category
        )
    page = render_template(
        "treasury/settings.html",
        form=form,
        preview=preview,
        example=example,
        factor_label=_factor_label,
        rate_history=agency_settings.withholding_history(agency),
        withholdings_text=lambda stored: withholdings_text(stored, agency.currency),
    )
    return page, status


@bp.route("/<agency_code>/settings/credentials", methods=["GET", "POST"])
@requires_role("admin")
def credentials(agency_code: str):
    """The agency's Stripe connected account, secret key and webhook signing secret (write-only)."""
    form = CredentialsForm(data=None if request.method == "POST" else {"stripe_account": g.agency.stripe_account})
    if form.validate_on_submit():
        changed = agency_settings.save_credentials(
            g.agency, stripe_account=form.stripe_account.data, secrets=form.secrets(), now=utcnow()
        )
        flash(gettext("The credentials have been saved.") if changed else gettext("Nothing was changed."),
              "success" if changed else "info")  # fmt: skip
        return redirect(url_for("treasury.credentials", agency_code=agency_code), 303)
    page = render_template(
        "treasury/credentials.html",
        form=form,
        statuses=agency_settings.credential_statuses(g.agency),
        webhook_url=_webhook_url(g.agency.code),
    )
    return page, 400 if form.errors else 200


def _webhook_url(agency_code: str) -> str:
    """The agency's webhook endpoint as Stripe must call it (on PUBLIC_URL when set)."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for("webhooks.stripe_webhook", agency_code=agency_code)
    return url_for("webhooks.stripe_webhook", agency_code=agency_code, _external=True)


@bp.post("/<agency_code>/settings/credentials/remove")
@requires_role("admin")
def remove_credential(agency_code: str):
    """Forget a stored secret, or the connected account (the button's ``credential``)."""
    form = RemoveCredentialForm()
    if not form.validate_on_submit():
        abort(400)
    removed = agency_settings.remove_credential(g.agency, form.credential.data)
    flash(gettext("Removed.") if removed else gettext("Nothing was changed."), "success" if removed else "info")
    return redirect(url_for("treasury.credentials", agency_code=agency_code), 303)


@bp.route("/<agency_code>/settings/emails", methods=["GET", "POST"])
@requires_role("admin")
def email_notes(agency_code: str):
    """Texts the agency adds to its payers' receipt and refund e-mails, in Greek and English."""
    form = NotesForm(data=None if request.method == "POST" else agency_settings.current_notes(g.agency))
    if form.validate_on_submit():
        if agency_settings.update_notes(g.agency, form.notes()):
            flash(gettext("The texts have been saved."), "success")
        else:
            flash(gettext("Nothing was changed."), "info")
        return redirect(url_for("treasury.email_notes", agency_code=agency_code), 303)
    page = render_template("treasury/email_notes.html", form=form)
    return page, 400 if form.errors else 200
