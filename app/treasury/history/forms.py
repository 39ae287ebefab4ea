"""The history's filters (a GET form)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    SelectField,
    StringField,
)
from wtforms.validators import Length, Optional, ValidationError

from app.domain.amounts import parse_currency_amount
from app.i18n import lazy_gettext as _l
from app.treasury.form_styles import SELECT_LOOK
from app.treasury.history.services import PaymentFilters


class PaymentFilterForm(FlaskForm):
    """The history's filters: a GET form (no CSRF token, bookmarkable, works without JavaScript)."""

    class Meta:
        csrf = False

    date_from = DateField(_l("From (date)"), validators=[Optional()])
    date_to = DateField(_l("To (date)"), validators=[Optional()])
    status = SelectField(_l("Status"), validators=[Optional()], render_kw=SELECT_LOOK)
    category = SelectField(_l("Debt category"), validators=[Optional()], render_kw=SELECT_LOOK)
    kind = SelectField(_l("Kind of debt"), validators=[Optional()], render_kw=SELECT_LOOK)
    amount_min = StringField(
        _l("Amount from"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"}
    )
    amount_max = StringField(
        _l("Amount to"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"}
    )
    payer = StringField(_l("Payer tax ID or name"), validators=[Optional(), Length(max=200)])
    rf = StringField(_l("RF reference"), validators=[Optional(), Length(max=40)], render_kw={"spellcheck": "false"})
    reference = StringField(
        _l("Receipt number or provider reference"),
        validators=[Optional(), Length(max=100)],
        render_kw={"spellcheck": "false"},
    )
    channel = SelectField(_l("Channel"), validators=[Optional()], render_kw=SELECT_LOOK)

    def __init__(self, *args, currency: str, choices: dict[str, list[tuple[str, str]]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        any_choice = [("", _l("Any"))]
        self.status.choices = any_choice + choices["statuses"]
        self.category.choices = any_choice + choices["categories"]
        self.kind.choices = any_choice + choices["kinds"]
        self.channel.choices = any_choice + choices["channels"]

    def _amount(self, field) -> int | None:
        if not field.data:
            return None
        return parse_currency_amount(field.data, self.currency)

    def validate_amount_min(self, field) -> None:
        try:
            self._amount(field)
        except ValueError:
            raise ValidationError(_l("Enter an amount like 12,50.")) from None

    validate_amount_max = validate_amount_min

    def validate_rf(self, field) -> None:
        from app.domain.references import is_valid_rf

        if field.data and not is_valid_rf(field.data):
            raise ValidationError(_l("Enter an RF reference like RF18 5390 0754 7034."))

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date must not be before the start date."))

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(field.data for name, field in self._fields.items())

    def filters(self) -> PaymentFilters:
        """The valid filters as plain values (call after ``validate``; invalid fields are ignored)."""
        from app.domain.references import normalise_rf

        def valid(name: str):
            field = self._fields[name]
            return None if field.errors or not field.data else field.data

        rf = valid("rf")
        return PaymentFilters(
            date_from=valid("date_from"),
            date_to=valid("date_to"),
            status=valid("status"),
            category=valid("category"),
            kind=valid("kind"),
            amount_min_minor=self._amount(self.amount_min) if valid("amount_min") else None,
            amount_max_minor=self._amount(self.amount_max) if valid("amount_max") else None,
            payer=valid("payer"),
            rf_reference=normalise_rf(rf) if rf else None,
            reference=valid("reference"),
            channel=valid("channel"),
        )
