"""The agency table."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, validates

from app.db import Base, UTCDateTime, utcnow
from app.domain.second_factors import check_factor_settings, factor_for_kind
from app.domain.surcharges import SurchargePolicy

ALL_CATEGORIES = ["certified", "settled", "uncertified"]
#: Longest note an agency adds to its payers' e-mails, in characters.
NOTE_MAX_LENGTH = 500


class Agency(Base):
    """A municipality or municipal legal entity that collects debts through the portal."""

    __tablename__ = "agencies"
    __table_args__ = (CheckConstraint("length(currency) = 3", name="currency_iso"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Short stable slug used in URLs, RF payloads and configuration, e.g. "eastcoast".
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_el: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    #: ISO 4217; every debt of the agency is in this currency.
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    #: IANA zone; "today" (surcharges, quote expiry) is the agency's local day.
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Athens")
    country: Mapped[str] = mapped_column(String(2), default="GR")
    #: Debt categories the agency lets citizens pay online.
    online_categories: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(ALL_CATEGORIES))
    #: Debt kinds payable online; null means every kind.
    online_kinds: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: SurchargePolicy.to_dict(); {} means the Greek default.
    surcharge_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: What a guest gives with a payment code, per debt kind: {"default": "tax_id_last4",
    #: "traffic_fine": "plate"}; values are "tax_id_last4", "plate" or "amount". {} asks the
    #: last four characters of the tax ID for every kind.
    guest_second_factor: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    #: Revenue withholdings (κρατήσεις) per debt kind, see app.domain.withholdings: {"default":
    #: [{"name": "Fund X", "percent": "2"}], "traffic_fine": [{"name": "Fund Y", "fixed_minor": 50}]};
    #: percentages as text (exact Decimals), amounts in minor units. {} withholds nothing.
    withholdings: Mapped[dict[str, list[dict[str, Any]]]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    #: Installments of an arrangement must be paid oldest first.
    installments_in_order: Mapped[bool] = mapped_column(Boolean, default=True)
    #: ERP connector: {"type": "demo", "options": {...}}.
    connector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Minutes between scheduled syncs run by `flask worker`; null: no schedule.
    sync_interval_minutes: Mapped[int | None] = mapped_column(Integer)
    #: Seconds a citizen's cached debts stay fresh before the dashboard asks the ERP again.
    refresh_max_age_seconds: Mapped[int] = mapped_column(Integer, default=900)
    #: Start of the last successful full or incremental sync: the next incremental asks from here.
    synced_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Whether a full refund of a payment reopens the debts it paid (so the citizen owes them again).
    reopen_debts_on_refund: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: Stripe connected account (acct_...) that receives this agency's card payments; null: the
    #: platform account itself (a single-agency portal, or test mode).
    stripe_account: Mapped[str | None] = mapped_column(String(64))
    #: The agency's own Stripe secret key (sk_... or rk_...), Fernet-encrypted (app.encryption);
    #: null: none stored. Its last four characters and the moment it was saved are kept apart so
    #: the settings page can say which key is set without ever decrypting or showing it.
    stripe_secret_key_encrypted: Mapped[str | None] = mapped_column(Text)
    stripe_secret_key_hint: Mapped[str | None] = mapped_column(String(4))
    stripe_secret_key_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The signing secret (whsec_...) of the agency's webhook endpoint, Fernet-encrypted; null:
    #: the platform's STRIPE_WEBHOOK_SECRET signs this agency's webhooks.
    stripe_webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    stripe_webhook_secret_hint: Mapped[str | None] = mapped_column(String(4))
    stripe_webhook_secret_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Plain text the agency adds to the payer's receipt e-mail and refund e-mail, per language
    #: (e.g. "For questions call 210 ..."); null or empty: nothing added in that language.
    receipt_note_el: Mapped[str | None] = mapped_column(String(NOTE_MAX_LENGTH))
    receipt_note_en: Mapped[str | None] = mapped_column(String(NOTE_MAX_LENGTH))
    refund_note_el: Mapped[str | None] = mapped_column(String(NOTE_MAX_LENGTH))
    refund_note_en: Mapped[str | None] = mapped_column(String(NOTE_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def name(self, language: str) -> str:
        """The agency's name in the given language (Greek for anything but English)."""
        return self.name_en if language == "en" else self.name_el

    @property
    def policy(self) -> SurchargePolicy:
        """The agency's surcharge policy as a domain object, parsed once per setting.

        A page of debts asks for it once or twice per debt; parsing costs more than computing
        the surcharge. The parsed policy is kept with a copy of the setting it came from, so
        a changed setting (assigned or edited in place) is parsed again.
        """
        setting = self.surcharge_policy or {}
        cached = self.__dict__.get("_parsed_policy")
        if cached is not None and cached[0] == setting:
            return cached[1]
        policy = SurchargePolicy.from_dict(setting)
        self.__dict__["_parsed_policy"] = (copy.deepcopy(setting), policy)
        return policy

    def guest_factor(self, kind: str) -> str:
        """The second factor a guest paying a debt of this kind must give."""
        return factor_for_kind(self.guest_second_factor, kind)

    @validates("guest_second_factor")
    def _check_guest_second_factor(self, _key: str, value: dict[str, str] | None) -> dict[str, str]:
        return check_factor_settings(value)

    def pays_online(self, category: str, kind: str) -> bool:
        """Whether debts of this category and kind may be paid on the portal."""
        kinds_ok = self.online_kinds is None or kind in self.online_kinds
        return category in (self.online_categories or []) and kinds_ok
