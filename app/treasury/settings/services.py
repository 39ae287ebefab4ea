"""Agency settings: what is payable online, the surcharge policy (with a preview), guest factors,
revenue withholdings; the card provider's credentials; the notes added to the payers' e-mails.

An agency administrator edits these on /treasury/<agency>/settings (the credentials on
.../settings/credentials, the e-mail texts on .../settings/emails). Every value is checked by the
domain rules that later apply it (``SurchargePolicy``, ``check_factor_settings``), so a setting
that would fail at checkout is refused here, with a sentence, instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from app.accounts.models import User
from app.agencies.models import ALL_CATEGORIES, NOTE_MAX_LENGTH, Agency
from app.audit.models import AuditEntry
from app.audit.services import record
from app.debts.models import Debt
from app.domain.second_factors import check_factor_settings
from app.domain.surcharges import SurchargePolicy, SurchargeResult, compute_surcharge
from app.domain.withholdings import DEFAULT_KEY, check_withholding_settings
from app.encryption import encrypt_secret
from app.extensions import db
from app.payments.stripe_gateway import agency_secret_key, agency_webhook_secret


@dataclass(frozen=True)
class AgencySettings:
    """The settings the page edits, as plain values."""

    online_categories: list[str]
    #: None: every kind, including kinds the ERP adds later.
    online_kinds: list[str] | None
    surcharge_policy: SurchargePolicy
    installments_in_order: bool
    #: {"default": factor, kind: factor, ...}; a kind left out asks the default.
    guest_second_factor: dict[str, str]
    #: Revenue withholdings per kind in their stored form (app.domain.withholdings); a kind left
    #: out follows "default", and {} withholds nothing.
    withholdings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """The values as the agencies table stores them."""
        return {
            "online_categories": [category for category in ALL_CATEGORIES if category in self.online_categories],
            "online_kinds": None if self.online_kinds is None else sorted(self.online_kinds),
            "surcharge_policy": self.surcharge_policy.to_dict(),
            "installments_in_order": self.installments_in_order,
            "guest_second_factor": dict(sorted(self.guest_second_factor.items())),
            "withholdings": dict(sorted(check_withholding_settings(self.withholdings).items())),
        }


def current_settings(agency: Agency) -> AgencySettings:
    """The agency's settings as they are now."""
    return AgencySettings(
        online_categories=list(agency.online_categories or []),
        online_kinds=None if agency.online_kinds is None else list(agency.online_kinds),
        surcharge_policy=agency.policy,
        installments_in_order=agency.installments_in_order,
        guest_second_factor=dict(agency.guest_second_factor or {}),
        withholdings=dict(agency.withholdings or {}),
    )


def known_kinds(agency: Agency) -> list[str]:
    """The kinds of debt the agency has, or names in its settings, sorted."""
    kinds = set(db.session.scalars(select(Debt.kind).where(Debt.agency_id == agency.id).distinct()))
    kinds.update(agency.online_kinds or [])
    kinds.update(kind for kind in (agency.guest_second_factor or {}) if kind != "default")
    kinds.update(kind for kind in (agency.withholdings or {}) if kind != DEFAULT_KEY)
    return sorted(kinds)


def update_settings(agency: Agency, settings: AgencySettings) -> list[str]:
    """Save the settings in one transaction and audit what changed; returns the changed names."""
    check_factor_settings(settings.guest_second_factor)
    before = {name: getattr(agency, name) for name in settings.stored()}
    # Stored shorthands ({} for the Greek default, no "default" factor) compare as what they mean.
    before["surcharge_policy"] = agency.policy.to_dict()
    before["withholdings"] = dict(sorted((agency.withholdings or {}).items()))
    before["guest_second_factor"] = dict(
        sorted({**before["guest_second_factor"], "default": agency.guest_factor("default")}.items())
    )
    changes: dict[str, dict[str, Any]] = {}
    for name, value in settings.stored().items():
        if before[name] != value:
            changes[name] = {"from": before[name], "to": value}
            setattr(agency, name, value)  # a new object, so the JSON column is seen as changed
    if changes:
        record("settings.update", agency_id=agency.id, subject=agency.code, details=changes)
    db.session.flush()
    return sorted(changes)


@dataclass(frozen=True)
class RateChange:
    """One saved change of the agency's withholdings, from the audit log: who, when, from what to what."""

    at: datetime
    #: The staff member's e-mail address; None for the system or an erased account.
    actor_email: str | None
    #: The withholdings before and after, in their stored form (app.domain.withholdings).
    before: dict[str, list[dict[str, Any]]]
    after: dict[str, list[dict[str, Any]]]

    @property
    def kinds(self) -> list[str]:
        """The kinds whose list changed ("default" first), each shown on a line of its own."""
        changed = {kind for kind in set(self.before) | set(self.after) if self.before.get(kind) != self.after.get(kind)}
        return sorted(changed, key=lambda kind: (kind != DEFAULT_KEY, kind))


def withholding_history(agency: Agency, limit: int = 50) -> list[RateChange]:
    """The agency's changes of its withholding rates, newest first (each applies to later payments only)."""
    rows = db.session.execute(
        select(AuditEntry.at, AuditEntry.details, User.email)
        .outerjoin(User, User.id == AuditEntry.actor_user_id)
        .where(AuditEntry.agency_id == agency.id, AuditEntry.action == "settings.update")
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    )
    changes: list[RateChange] = []
    for at, details, email in rows:
        change = (details or {}).get("withholdings")
        if not isinstance(change, dict):
            continue
        changes.append(RateChange(at, email, dict(change.get("from") or {}), dict(change.get("to") or {})))
        if len(changes) == limit:
            break
    return changes


def preview_surcharge(
    policy: SurchargePolicy, *, principal_minor: int, due_date: date, on: date, category: str
) -> SurchargeResult:
    """The surcharge a debt would carry under ``policy`` (saved or not) if paid on ``on``."""
    return compute_surcharge(policy, principal_minor=principal_minor, due_date=due_date, on=on, category=category)


# -- card provider credentials --------------------------------------------------------------------

#: The secrets an administrator may store, by column prefix on the agencies table.
SECRET_CREDENTIALS = ("stripe_secret_key", "stripe_webhook_secret")


@dataclass(frozen=True)
class CredentialStatus:
    """What the settings page may say about a stored secret: never the secret itself."""

    name: str
    #: Stored in the treasury (encrypted).
    stored: bool
    #: The last four characters of the stored secret, and when it was saved.
    hint: str | None
    set_at: datetime | None
    #: The per-agency setting that overrides it, and whether the server has it set.
    environment_name: str
    from_environment: bool
    #: Where the value in use comes from now (see ``CredentialSource``).
    source: str


def credential_statuses(agency: Agency) -> dict[str, CredentialStatus]:
    """The agency's secrets as the page describes them, by name."""
    resolved = {
        "stripe_secret_key": agency_secret_key(agency),
        "stripe_webhook_secret": agency_webhook_secret(agency),
    }
    return {
        name: CredentialStatus(
            name=name,
            stored=getattr(agency, f"{name}_encrypted") is not None,
            hint=getattr(agency, f"{name}_hint"),
            set_at=getattr(agency, f"{name}_set_at"),
            environment_name=resolved[name].environment_name,
            from_environment=resolved[name].source == "environment",
            source=resolved[name].source,
        )
        for name in SECRET_CREDENTIALS
    }


def save_credentials(
    agency: Agency, *, stripe_account: str | None, secrets: dict[str, str | None], now: datetime
) -> list[str]:
    """Store the connected account and any secret given (encrypted); returns what changed.

    A secret left out (None or empty) is kept as it is. The audit entry says which secret was set
    or replaced, never any part of it.
    """
    changes: dict[str, dict[str, Any]] = {}
    account = (stripe_account or "").strip() or None
    if account != agency.stripe_account:
        changes["stripe_account"] = {"from": agency.stripe_account, "to": account}
        agency.stripe_account = account
    for name in SECRET_CREDENTIALS:
        value = (secrets.get(name) or "").strip()
        if not value:
            continue
        changes[name] = {"secret": "replaced" if getattr(agency, f"{name}_encrypted") else "set"}
        setattr(agency, f"{name}_encrypted", encrypt_secret(value))
        setattr(agency, f"{name}_hint", value[-4:])
        setattr(agency, f"{name}_set_at", now)
    if changes:
        record("settings.credentials", agency_id=agency.id, subject=agency.code, details=changes)
    db.session.flush()
    return sorted(changes)


def remove_credential(agency: Agency, name: str) -> bool:
    """Forget a stored secret (or the connected account); False if there was none to remove."""
    if name == "stripe_account":
        if agency.stripe_account is None:
            return False
        record("settings.credentials", agency_id=agency.id, subject=agency.code,
               details={name: {"from": agency.stripe_account, "to": None}})  # fmt: skip
        agency.stripe_account = None
    elif name in SECRET_CREDENTIALS:
        if getattr(agency, f"{name}_encrypted") is None:
            return False
        record("settings.credentials", agency_id=agency.id, subject=agency.code, details={name: {"secret": "removed"}})
        for suffix in ("encrypted", "hint", "set_at"):
            setattr(agency, f"{name}_{suffix}", None)
    else:
        raise ValueError(f"{name!r} is not a credential.")
    db.session.flush()
    return True


# -- notes added to the payers' e-mails ------------------------------------------------------------

#: The notes an agency adds to its payers' e-mails: (e-mail, language) → column.
NOTE_COLUMNS = {
    ("receipt", "el"): "receipt_note_el",
    ("receipt", "en"): "receipt_note_en",
    ("refund", "el"): "refund_note_el",
    ("refund", "en"): "refund_note_en",
}

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_note(text: str | None) -> str | None:
    """A note as stored: plain text, lines ended by LF, no other control characters, trimmed; None if empty."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_CHARACTERS.sub("", text)
    text = "\n".join(line.rstrip() for line in text.strip().split("\n"))
    return text or None


def current_notes(agency: Agency) -> dict[str, str | None]:
    """The agency's notes by column."""
    return {column: getattr(agency, column) for column in NOTE_COLUMNS.values()}


def update_notes(agency: Agency, notes: dict[str, str | None]) -> list[str]:
    """Save the notes (by column) in one transaction and audit what changed; returns the changed columns."""
    changes: dict[str, dict[str, Any]] = {}
    for column in NOTE_COLUMNS.values():
        value = clean_note(notes.get(column))
        if value is not None and len(value) > NOTE_MAX_LENGTH:
            raise ValueError(f"A note has at most {NOTE_MAX_LENGTH} characters.")
        if value != getattr(agency, column):
            changes[column] = {"from": getattr(agency, column), "to": value}
            setattr(agency, column, value)
    if changes:
        record("settings.update", agency_id=agency.id, subject=agency.code, details=changes)
    db.session.flush()
    return sorted(changes)
