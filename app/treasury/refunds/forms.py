"""The refund form of the treasury's payment page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from app.domain.amounts import AmountError, parse_currency_amount
from app.i18n import lazy_gettext as _l


class RefundForm(FlaskForm):
    """Amount (prefilled with all that is refundable), a reason, and what was refundable when drawn."""

    amount = StringField(_l("Amount to refund"), validators=[DataRequired(message=_l("Enter the amount to refund."))])
    reason = TextAreaField(
        _l("Reason (the citizen sees it)"),
        validators=[
            DataRequired(message=_l("Say why the money is refunded.")),
            Length(max=500, message=_l("Keep the reason under 500 characters.")),
        ],
    )
    available_minor = HiddenField()
    submit = SubmitField(_l("Refund"))

    def __init__(self, *args, currency: str = "EUR", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.amount_minor: int | None = None

    def validate_amount(self, field: StringField) -> None:
        """The typed amount, exactly, in minor units."""
        try:
            # Money going out: "10,005" is refused, never read as ten thousand and five.
            self.amount_minor = parse_currency_amount(field.data, self.currency, refuse_unsure=True)
        except AmountError:
            self.amount_minor = None
        if self.amount_minor is None or self.amount_minor <= 0:
            raise ValidationError(_l("Enter an amount such as 12,50."))

    @property
    def expected_available_minor(self) -> int | None:
        """What the page said was refundable (the server refuses if it changed meanwhile)."""
        try:
            return int(self.available_minor.data)
        except (TypeError, ValueError):
            return None
