"""Settings forms: agency settings and withholdings, card provider credentials, e-mail notes."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.agencies.models import ALL_CATEGORIES, NOTE_MAX_LENGTH
from app.domain.amounts import parse_currency_amount
from app.domain.money import Money
from app.domain.second_factors import FACTORS
from app.domain.surcharges import InvalidPolicy, Period, SurchargePolicy
from app.domain.withholdings import DEFAULT_KEY, MAX_NAME_LENGTH, Withholding
from app.i18n import lazy_gettext as _l
from app.treasury.form_styles import SELECT_LOOK
from app.treasury.settings.services import NOTE_COLUMNS, AgencySettings, clean_note

# -- agency settings ------------------------------------------------------------------------------

#: Kinds are slugs; only these become form field names.
KIND_SLUG = re.compile(r"[a-z0-9_]{1,40}")


class CheckboxesField(SelectMultipleField):
    """Several choices as a list of checkboxes (a fieldset in the template)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form) -> None:
        values = dict(self.choices or [])
        for value in self.data or []:
            if value not in values:
                raise ValidationError(_l("Choose from the list."))


def _decimal(text: str | None) -> Decimal | None:
    """A typed decimal ("0,73" or "0.73"); None when empty; ValueError when not a number."""
    cleaned = (text or "").strip().replace(",", ".").replace("%", "").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite():
        raise ValueError(text)
    return value


#: Typed on its own line in a kind's withholdings: this kind withholds nothing, whatever the default.
NO_WITHHOLDINGS = "-"


def parse_withholdings(text: str | None, currency: str) -> list[Withholding] | None:
    """Withholdings typed one a line, "Fund X; 2%" or "Fund Y; 0,50"; None when left empty.

    A line "-" alone means "none" (an empty list). Raises ValidationError with a sentence that
    names the line when a line cannot be read or applied.
    """
    lines = [(number, line.strip()) for number, line in enumerate((text or "").splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        return None
    if [line for _number, line in lines] == [NO_WITHHOLDINGS]:
        return []
    withholdings: list[Withholding] = []
    for number, line in lines:
        name, separator, value = line.rpartition(";")
        name, value = name.strip(), value.strip()
        if not separator or not name or not value:
            raise ValidationError(
                _l(
                    "Line %(line)s: write the beneficiary, a semicolon and a percentage or an amount, "
                    "like “Fund X; 2%%” or “Fund Y; 0,50”.",
                    line=number,
                )
            )
        if len(name) > MAX_NAME_LENGTH:
            raise ValidationError(
                _l(
                    "Line %(line)s: the beneficiary's name has at most %(count)s characters.",
                    line=number,
                    count=MAX_NAME_LENGTH,
                )
            )
        if value.endswith("%"):
            try:
                percent = _decimal(value)
            except ValueError:
                percent = None
            if percent is None or not Decimal(0) < percent <= Decimal(100):
                raise ValidationError(
                    _l("Line %(line)s: the percentage must be more than 0 and at most 100.", line=number)
                )
            # "2,0%" is stored as "2" and "2,50%" as "2.5": the same rate is written one way.
            exact = Decimal(int(percent)) if percent == percent.to_integral_value() else percent.normalize()
            withholdings.append(Withholding(name, percent=exact))
        else:
            try:
                amount = parse_currency_amount(value, currency)
            except ValueError:
                amount = 0
            if amount <= 0:
                raise ValidationError(
                    _l(
                        "Line %(line)s: enter the amount like 0,50 (more than zero), or a percentage like 2%%.",
                        line=number,
                    )
                )
            withholdings.append(Withholding(name, fixed_minor=amount))
    if sum((item.percent for item in withholdings if item.percent is not None), Decimal(0)) > 100:
        raise ValidationError(_l("The percentages on these lines add up to more than 100."))
    return withholdings


def withholdings_text(stored: list[dict[str, Any]] | None, currency: str) -> str:
    """Stored withholdings as the settings page shows them: one a line, "Fund X; 2%"."""
    if stored is None:
        return ""
    if not stored:
        return NO_WITHHOLDINGS
    lines = []
    for item in stored:
        withholding = Withholding.from_dict(item)
        if withholding.percent is not None:
            value = f"{withholding.percent}%".replace(".", ",")
        else:
            value = str(Money(withholding.fixed_minor or 0, currency).to_decimal()).replace(".", ",")
        lines.append(f"{withholding.name}; {value}")
    return "\n".join(lines)


class SettingsFormBase(FlaskForm):
    """Agency settings; ``settings_form`` adds one guest second-factor field per known kind."""

    online_categories = CheckboxesField(_l("Debt categories payable online"))
    all_kinds = BooleanField(_l("Every kind of debt, including kinds added later"))
    online_kinds = CheckboxesField(_l("Kinds of debt payable online"))

    rate_percent = StringField(
        _l("Surcharge rate per period (%)"),
        validators=[DataRequired(_l("Enter the surcharge rate, for example 0,73."))],
        render_kw={"inputmode": "decimal", "spellcheck": "false"},
    )
    period = SelectField(_l("Period"), render_kw=SELECT_LOOK)
    started_period_counts_whole = BooleanField(_l("A started month counts as a whole month"))
    grace_days = IntegerField(
        _l("Grace days after the due date"),
        validators=[
            InputRequired(_l("Enter the grace period in days (0 for none).")),
            NumberRange(min=0, max=365, message=_l("The grace period must be between 0 and 365 days.")),
        ],
        render_kw={"inputmode": "numeric"},
    )
    cap_amount = StringField(
        _l("Cap as an amount"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"}
    )
    cap_percent = StringField(
        _l("Cap as a percentage of the principal"),
        validators=[Optional(), Length(max=20)],
        render_kw={"inputmode": "decimal"},
    )
    minimum = StringField(
        _l("Minimum surcharge"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"}
    )
    rounding = SelectField(_l("Rounding of the surcharge to the cent"), render_kw=SELECT_LOOK)
    surcharged_categories = CheckboxesField(_l("Debt categories that carry a surcharge"))
    installments_in_order = BooleanField(_l("Installments must be paid oldest first"))
    factor_default = SelectField(_l("Every other kind of debt"), render_kw=SELECT_LOOK)
    withholdings_default = TextAreaField(
        _l("Withholdings from every other kind of debt"),
        validators=[Optional(), Length(max=4000)],
        render_kw={"rows": 3, "spellcheck": "false"},
    )

    preview_principal = StringField(
        _l("Example principal"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"}
    )
    preview_category = SelectField(_l("Example debt category"), render_kw=SELECT_LOOK)
    preview_due_date = DateField(_l("Example due date"), validators=[Optional()])
    preview_on = DateField(_l("Example payment date"), validators=[Optional()])

    preview = SubmitField(_l("Preview the surcharge"))
    save = SubmitField(_l("Save the settings"))

    #: Filled by ``settings_form``: the kinds with a guest factor field, and the field names.
    kinds: list[str] = []
    currency: str = "EUR"

    def __init__(self, *args, currency: str, labels: dict[str, dict[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        categories = [(category, labels["categories"].get(category, category)) for category in ALL_CATEGORIES]
        self.online_categories.choices = categories
        self.surcharged_categories.choices = categories
        self.preview_category.choices = categories
        self.online_kinds.choices = [(kind, labels["kinds"].get(kind, kind)) for kind in self.kinds]
        self.period.choices = [(Period.MONTH.value, _l("Month")), (Period.DAY.value, _l("Day"))]
        self.rounding.choices = [
            ("ROUND_HALF_UP", _l("Half a cent or more rounds up (usual)")),
            ("ROUND_HALF_EVEN", _l("Half a cent rounds to the even cent (banker's rounding)")),
            ("ROUND_DOWN", _l("Always down (in the citizen's favour)")),
            ("ROUND_UP", _l("Always up")),
        ]
        factors = [(factor, labels["factors"][factor]) for factor in FACTORS]
        self.factor_default.choices = factors
        for kind in self.kinds:
            self[f"factor_{kind}"].choices = [("", _l("As for every other kind"))] + factors

    def kind_factor_fields(self) -> list:
        """The guest second-factor field of each kind, in the order of ``kinds``."""
        return [self[f"factor_{kind}"] for kind in self.kinds]

    def kind_withholding_fields(self) -> list:
        """The withholdings field of each kind, in the order of ``kinds``."""
        return [self[f"withholdings_{kind}"] for kind in self.kinds]

    def _withholding_fields(self) -> list[tuple[str, Any]]:
        return [(DEFAULT_KEY, self.withholdings_default)] + [
            (kind, self[f"withholdings_{kind}"]) for kind in self.kinds
        ]

    # -- per-field checks -------------------------------------------------------------------

    def _amount(self, field) -> int | None:
        if not (field.data or "").strip():
            return None
        return parse_currency_amount(field.data, self.currency)

    def validate_rate_percent(self, field) -> None:
        try:
            rate = _decimal(field.data)
        except ValueError:
            raise ValidationError(_l("Enter the rate as a number such as 0,73.")) from None
        if rate is None or rate < 0 or rate > 100:
            raise ValidationError(_l("The rate must be between 0 and 100 per cent."))

    def validate_cap_amount(self, field) -> None:
        try:
            self._amount(field)
        except ValueError:
            raise ValidationError(_l("Enter an amount like 12,50.")) from None

    def validate_minimum(self, field) -> None:
        try:
            minimum = self._amount(field)
        except ValueError:
            raise ValidationError(_l("Enter an amount like 12,50.")) from None
        try:
            cap = self._amount(self.cap_amount)
        except ValueError:
            return
        if minimum is not None and cap is not None and minimum > cap:
            raise ValidationError(_l("The minimum surcharge cannot be more than the cap."))

    def validate_cap_percent(self, field) -> None:
        try:
            percent = _decimal(field.data)
        except ValueError:
            raise ValidationError(_l("Enter the percentage as a number such as 200.")) from None
        if percent is not None and percent < 0:
            raise ValidationError(_l("The percentage cannot be negative."))

    def validate_online_categories(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Choose at least one category, or nobody can pay online."))

    def validate_online_kinds(self, field) -> None:
        if not self.all_kinds.data and not field.data:
            raise ValidationError(_l("Choose at least one kind of debt, or tick “every kind”."))

    def validate_preview_principal(self, field) -> None:
        try:
            self._amount(field)
        except ValueError:
            raise ValidationError(_l("Enter an amount like 12,50.")) from None

    def validate(self, extra_validators=None) -> bool:
        """Check each field, then the policy as a whole (the domain has the last word)."""
        valid = super().validate(extra_validators)
        if self.preview.data:  # the example must be complete to preview it (not to save)
            for field, message in (
                (self.preview_principal, _l("Enter the example debt's principal, more than zero.")),
                (self.preview_due_date, _l("Enter the example debt's due date.")),
                (self.preview_on, _l("Enter the day the example debt is paid.")),
            ):
                if not field.data and not field.errors:
                    field.errors = [*field.errors, message]
                    valid = False
        for _key, field in self._withholding_fields():
            if field.errors:
                continue
            try:
                parse_withholdings(field.data, self.currency)
            except ValidationError as error:
                field.errors = [*field.errors, str(error.args[0])]
                valid = False
        if not valid:
            return False
        try:
            self.policy()
        except InvalidPolicy as error:
            self.form_errors.append(str(error))
            return False
        return True

    # -- values -------------------------------------------------------------------------------

    def policy(self) -> SurchargePolicy:
        """The surcharge policy typed in the form (call after the fields validated)."""
        cap_percent = _decimal(self.cap_percent.data)
        return SurchargePolicy.from_dict(
            {
                **self._kept_policy,
                "rate_percent": str(_decimal(self.rate_percent.data)),
                "period": self.period.data,
                "started_period_counts_whole": bool(self.started_period_counts_whole.data),
                "grace_days": self.grace_days.data,
                "cap_minor": self._amount(self.cap_amount),
                "cap_percent": None if cap_percent is None else str(cap_percent),
                "minimum_minor": self._amount(self.minimum) or 0,
                "rounding": self.rounding.data,
                "categories": sorted(self.surcharged_categories.data or []),
            }
        )

    #: Policy values the form does not show (start_after_days), kept as they are.
    _kept_policy: dict[str, Any] = {}

    def agency_settings(self) -> AgencySettings:
        """Everything the form sets, as the settings service takes it (call after ``validate``)."""
        return AgencySettings(
            online_categories=list(self.online_categories.data),
            online_kinds=None if self.all_kinds.data else list(self.online_kinds.data),
            surcharge_policy=self.policy(),
            installments_in_order=bool(self.installments_in_order.data),
            guest_second_factor=self.guest_factors(),
            withholdings=self.withholdings(),
        )

    def withholdings(self) -> dict[str, list[dict[str, Any]]]:
        """The withholdings typed per kind, stored form; a kind left empty follows the default."""
        settings: dict[str, list[dict[str, Any]]] = {}
        for key, field in self._withholding_fields():
            parsed = parse_withholdings(field.data, self.currency)
            if parsed is not None:
                settings[key] = [item.to_dict() for item in parsed]
        return settings

    def guest_factors(self) -> dict[str, str]:
        """The guest second factor per kind: the default, and each kind that differs from it."""
        factors = {"default": self.factor_default.data}
        for kind in self.kinds:
            chosen = self[f"factor_{kind}"].data
            if chosen:
                factors[kind] = chosen
        return factors

    def preview_values(self) -> tuple[int, date, date, str] | None:
        """The example debt (principal, due date, payment date, category), when complete."""
        try:
            principal = self._amount(self.preview_principal)
        except ValueError:
            return None
        if not principal or self.preview_due_date.data is None or self.preview_on.data is None:
            return None
        return principal, self.preview_due_date.data, self.preview_on.data, self.preview_category.data


def settings_form(kinds: list[str], kept_policy: dict[str, Any]) -> type[SettingsFormBase]:
    """A settings form class with a guest second-factor field for each of ``kinds``."""
    safe = [kind for kind in kinds if KIND_SLUG.fullmatch(kind)]
    attributes: dict[str, Any] = {"kinds": safe, "_kept_policy": kept_policy}
    for kind in safe:
        attributes[f"factor_{kind}"] = SelectField(kind, validators=[Optional()], render_kw=SELECT_LOOK)
        attributes[f"withholdings_{kind}"] = TextAreaField(
            kind, validators=[Optional(), Length(max=4000)], render_kw={"rows": 2, "spellcheck": "false"}
        )
    return type("SettingsForm", (SettingsFormBase,), attributes)


# -- card provider credentials and e-mail notes -----------------------------------------------------

#: Stripe's identifiers, as its dashboard shows them; a typo is refused here, not at the first payment.
STRIPE_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{6,59}")
STRIPE_SECRET_KEY = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]{8,240}")
STRIPE_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{8,240}")

#: Secret inputs: never filled in again by the browser or the page.
_SECRET_INPUT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


class CredentialsForm(FlaskForm):
    """The agency's Stripe connected account and, optionally, its own secret key and webhook secret.

    The secrets are write-only: an empty field keeps what is stored, and the page never shows them.
    """

    stripe_account = StringField(
        _l("Stripe connected account ID"),
        validators=[Optional(), Length(max=64)],
        render_kw={"spellcheck": "false", "autocapitalize": "off"},
    )
    stripe_secret_key = PasswordField(
        _l("Stripe secret key"), validators=[Optional(), Length(max=250)], render_kw=_SECRET_INPUT
    )
    stripe_webhook_secret = PasswordField(
        _l("Webhook signing secret"), validators=[Optional(), Length(max=250)], render_kw=_SECRET_INPUT
    )
    save = SubmitField(_l("Save the credentials"))

    def validate_stripe_account(self, field) -> None:
        field.data = (field.data or "").strip()
        if field.data and not STRIPE_ACCOUNT.fullmatch(field.data):
            raise ValidationError(_l("Enter the account ID as Stripe shows it, starting “acct_”."))

    def validate_stripe_secret_key(self, field) -> None:
        field.data = (field.data or "").strip()
        if field.data and not STRIPE_SECRET_KEY.fullmatch(field.data):
            raise ValidationError(
                _l("Enter a secret key as Stripe shows it, starting “sk_live_”, “sk_test_” or “rk_”.")
            )

    def validate_stripe_webhook_secret(self, field) -> None:
        field.data = (field.data or "").strip()
        if field.data and not STRIPE_WEBHOOK_SECRET.fullmatch(field.data):
            raise ValidationError(_l("Enter the signing secret as Stripe shows it, starting “whsec_”."))

    def secrets(self) -> dict[str, str | None]:
        """The secrets typed in (None for a field left empty)."""
        return {
            "stripe_secret_key": self.stripe_secret_key.data or None,
            "stripe_webhook_secret": self.stripe_webhook_secret.data or None,
        }


class RemoveCredentialForm(FlaskForm):
    """A "remove" button of the credentials page: which one goes is the button's value."""

    credential = StringField(
        validators=[DataRequired(), AnyOf(["stripe_account", "stripe_secret_key", "stripe_webhook_secret"])]
    )


class NotesForm(FlaskForm):
    """What the agency adds to its payers' receipt and refund e-mails, in Greek and in English."""

    receipt_note_el = TextAreaField(
        _l("Added to the receipt e-mail, in Greek"),
        validators=[Length(max=NOTE_MAX_LENGTH, message=_l("Use at most %(max)d characters."))],
        render_kw={"rows": 3, "lang": "el", "maxlength": NOTE_MAX_LENGTH},
    )
    receipt_note_en = TextAreaField(
        _l("Added to the receipt e-mail, in English"),
        validators=[Length(max=NOTE_MAX_LENGTH, message=_l("Use at most %(max)d characters."))],
        render_kw={"rows": 3, "lang": "en", "maxlength": NOTE_MAX_LENGTH},
    )
    refund_note_el = TextAreaField(
        _l("Added to the refund e-mail, in Greek"),
        validators=[Length(max=NOTE_MAX_LENGTH, message=_l("Use at most %(max)d characters."))],
        render_kw={"rows": 3, "lang": "el", "maxlength": NOTE_MAX_LENGTH},
    )
    refund_note_en = TextAreaField(
        _l("Added to the refund e-mail, in English"),
        validators=[Length(max=NOTE_MAX_LENGTH, message=_l("Use at most %(max)d characters."))],
        render_kw={"rows": 3, "lang": "en", "maxlength": NOTE_MAX_LENGTH},
    )
    save = SubmitField(_l("Save the texts"))

    def notes(self) -> dict[str, str | None]:
        """The texts by column, cleaned as they are stored."""
        return {name: clean_note(getattr(self, name).data) for name in NOTE_COLUMNS.values()}

    def validate(self, extra_validators=None) -> bool:
        """Count the length of what is stored (CRLF counts once), not of what the browser sent."""
        for name in NOTE_COLUMNS.values():
            field = getattr(self, name)
            field.data = clean_note(field.data) or ""
        return super().validate(extra_validators)
