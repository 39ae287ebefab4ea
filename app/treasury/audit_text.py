"""The audit log in words: each action's label and each entry's particulars, for every audit page.

One place for every action the treasury, its operations pages, the platform and the catalog
record, so the agency's audit page, the platform's and their filters name them alike.
"""

from __future__ import annotations

from typing import Any

from app.i18n import gettext
from app.outbox.services import registered_topics
from app.treasury.access import services


def outbox_topic_label(topic: str) -> str:
    """What an outbox message does, in words: the label its feature registered with the topic."""
    registered = registered_topics().get(topic)
    return str(registered.label) if registered is not None else topic


def audit_action_labels() -> dict[str, str]:
    """Each recorded action, and each group of actions ("staff."), in words."""
    return {
        "staff.": gettext("Any staff action"),
        "staff.invite": gettext("Staff invited"),
        "staff.grant": gettext("Staff access granted"),
        "staff.role_change": gettext("Staff role changed"),
        "staff.revoke": gettext("Staff access removed"),
        "staff.invitation_revoke": gettext("Invitation cancelled"),
        "staff.invitation_accept": gettext("Invitation accepted"),
        "settings.update": gettext("Settings changed"),
        "settings.credentials": gettext("Card provider credentials changed"),
        "payment.status": gettext("Payment status changed"),
        "sync.": gettext("Any quarantine action"),
        "sync.quarantine_dismiss": gettext("Quarantined record dismissed"),
        "sync.quarantine_retry": gettext("Quarantine retried"),
        "outbox.retry": gettext("Write-back message retried"),
        "platform.": gettext("Any platform action"),
        "platform.agency_create": gettext("Agency added"),
        "platform.admin": gettext("Platform administrator named or removed"),
        "staff.2fa_enrolled": gettext("Authenticator set up"),
        "staff.2fa_failed": gettext("Second-step code refused"),
        "staff.2fa_recovery_code_used": gettext("Recovery code used"),
        "staff.2fa_reset": gettext("Authenticator reset"),
        "catalog.item_saved": gettext("Catalog item saved"),
        "ticket.check": gettext("Ticket checked at the door"),
    }


def audit_details(action: str, details: dict[str, Any]) -> str:
    """An entry's particulars in a line: old → new, a role, the settings that changed, an outcome."""
    if action == "sync.quarantine_dismiss":
        return details.get("reason", "")
    if action == "sync.quarantine_retry":
        outcome = details.get("outcome", "")
        if outcome in ("busy", "failed"):
            return gettext("%(records)s open records; the ERP could not be read", records=details.get("records", 0))
        return gettext(
            "%(records)s records retried: %(created)s new, %(updated)s updated, %(quarantined)s quarantined again",
            records=details.get("records", 0),
            created=details.get("created", 0),
            updated=details.get("updated", 0),
            quarantined=details.get("quarantined", 0),
        )
    if action == "outbox.retry":
        return outbox_topic_label(details.get("topic", ""))
    if action == "platform.agency_create":
        return gettext("First administrator: %(email)s", email=details.get("administrator", ""))
    if action == "platform.admin":
        return (
            gettext("Platform administrator")
            if details.get("platform_admin")
            else gettext("No longer platform administrator")
        )
    if action == "ticket.check":
        return gettext("Let in") if details.get("outcome") == "admitted" else gettext("Already used.")
    if action == "settings.update":
        names = {
            "online_categories": gettext("categories payable online"),
            "online_kinds": gettext("kinds payable online"),
            "surcharge_policy": gettext("surcharge policy"),
            "installments_in_order": gettext("installments in order"),
            "guest_second_factor": gettext("guests' second factor"),
            "withholdings": gettext("withholdings"),
            "receipt_note_el": gettext("receipt e-mail text in Greek"),
            "receipt_note_en": gettext("receipt e-mail text in English"),
            "refund_note_el": gettext("refund e-mail text in Greek"),
            "refund_note_en": gettext("refund e-mail text in English"),
        }
        return ", ".join(names.get(name, name) for name in sorted(details))
    if action == "settings.credentials":
        return ", ".join(_credential_change(name, change) for name, change in sorted(details.items()))
    if action == "staff.role_change":
        return f"{services.role_label(details.get('from', ''))} → {services.role_label(details.get('to', ''))}"
    if "from" in details and "to" in details:
        return f"{details['from']} → {details['to']}"
    if "role" in details:
        return services.role_label(details["role"])
    return ""


def _credential_change(name: str, change: dict[str, Any]) -> str:
    """One credential's change in words; a secret's entry never holds any of its value."""
    names = {
        "stripe_account": gettext("Stripe connected account"),
        "stripe_secret_key": gettext("Stripe secret key"),
        "stripe_webhook_secret": gettext("webhook signing secret"),
    }
    outcomes = {"set": gettext("set"), "replaced": gettext("replaced"), "removed": gettext("removed")}
    label = names.get(name, name)
    if "secret" in change:
        return f"{label}: {outcomes.get(change['secret'], change['secret'])}"
    return f"{label}: {change.get('from') or '—'} → {change.get('to') or '—'}"
