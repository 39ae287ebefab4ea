"""The selection of debts and the (sandbox) card form."""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from app.i18n import lazy_gettext as _l
from app.payments.providers import luhn_valid


class SelectionForm(FlaskForm):
    """The debts ticked on the dashboard; the server checks each one, so any value is accepted here."""

    item = SelectMultipleField(validate_choice=False)
    submit = SubmitField(_l("Review payment"))


class CardForm(FlaskForm):
    """Card details for the sandbox provider (test mode: no real card is ever charged)."""

    holder = StringField(
        _l("Name on the card"),
        validators=[DataRequired(_l("Enter the name on the card.")), Length(max=100)],
        render_kw={"autocomplete": "cc-name"},
    )
    number = StringField(
        _l("Card number"),
        validators=[DataRequired(_l("Enter the card number."))],
        render_kw={"autocomplete": "cc-number", "inputmode": "numeric"},
    )
    expiry = StringField(
        _l("Expiry date (MM/YY)"),
        validators=[
            DataRequired(_l("Enter the expiry date.")),
            Regexp(
                r"^\s*(0[1-9]|1[0-2])\s*/\s*(\d{2})\s*$",
                message=_l("Enter the expiry date as MM/YY, for example 04/29."),
            ),
        ],
        render_kw={"autocomplete": "cc-exp", "placeholder": "MM/YY"},
    )
    cvc = StringField(
        _l("Security code (CVC)"),
        validators=[
            DataRequired(_l("Enter the security code.")),
            Regexp(r"^\d{3,4}$", message=_l("The security code is the 3 or 4 digits on the back of the card.")),
        ],
        render_kw={"autocomplete": "cc-csc", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Pay now"))

    @property
    def card_number(self) -> str:
        """The number without spaces or dashes."""
        return "".join(ch for ch in (self.number.data or "") if ch.isdigit())

    @property
    def expiry_month_year(self) -> tuple[int, int]:
        """(month, four-digit year) from MM/YY."""
        month, year = (part.strip() for part in (self.expiry.data or "").split("/"))
        return int(month), 2000 + int(year)

    def validate_number(self, field: StringField) -> None:
        """Refuse numbers with a typing mistake before they reach the provider."""
        if not luhn_valid(self.card_number):
            raise ValidationError(_l("This card number is not valid. Check it and try again."))

    def validate_expiry(self, field: StringField) -> None:
        """Refuse a card that has expired."""
        try:
            month, year = self.expiry_month_year
        except ValueError:
            return  # the Regexp validator already said what is wrong
        today = date.today()
        if (year, month) < (today.year, today.month):
            raise ValidationError(_l("This card has expired."))
