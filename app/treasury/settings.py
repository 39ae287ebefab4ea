"""Agency settings: what is payable online, the surcharge policy (with a preview), guest factors,
revenue withholdings.

An agency administrator edits these on /treasury/<agency>/settings. Every value is checked by the
domain rules that later apply it (``SurchargePolicy``, ``check_factor_settings``), so a setting
that would fail at checkout is refused here, with a sentence, instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select

from app.agencies.models import ALL_CATEGORIES, Agency
from app.audit.services import record
from app.debts.models import Debt
from app.domain.second_factors import check_factor_settings
from app.domain.surcharges import SurchargePolicy, SurchargeResult, compute_surcharge
from app.domain.withholdings import DEFAULT_KEY, check_withholding_settings
from app.extensions import db


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
    db.session.commit()
    return sorted(changes)


def preview_surcharge(
    policy: SurchargePolicy, *, principal_minor: int, due_date: date, on: date, category: str
) -> SurchargeResult:
    """The surcharge a debt would carry under ``policy`` (saved or not) if paid on ``on``."""
    return compute_surcharge(policy, principal_minor=principal_minor, due_date=due_date, on=on, category=category)
