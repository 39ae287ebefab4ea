"""The refund form of the treasury's payment page."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from app.domain.money import minor_unit_exponent
from app.i18n import lazy_gettext as _l

_AMOUNT = re.compile(r"^\d[\d.,\s]*$")


def parse_major_amount(text: str, currency: str) -> int | None:
    """minor units from "12,50", "12.50", "1.234,56" or "1,234.56"; None if not an exact amount."""
    cleaned = (text or "").replace("€", "").replace("\u00a0", " ").replace("\u202f", " ").strip().replace(" ", "")
    if not cleaned or not _AMOUNT.match(cleaned):
        return None
    if "," in cleaned and "." in cleaned:
        decimal_mark = "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
    elif "," in cleaned:
        decimal_mark = ","
    elif cleaned.count(".") == 1:
        decimal_mark = "."
    else:
        decimal_mark = None  # no decimals, or dots grouping thousands
    grouping = {",", "."} - {decimal_mark}
    for mark in grouping:
        cleaned = cleaned.replace(mark, "")
    if decimal_mark == ",":
        cleaned = cleaned.replace(",", ".")
    if cleaned.count(".") > 1:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    minor = value.scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value():
        return None  # more decimals than the currency has
    return int(minor)


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

    def __init__(self, *args, currency: str = "EUR", **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.amount_minor: int | None = None

    def validate_amount(self, field: StringField) -> None:
        """The typed amount, exactly, in minor units."""
        self.amount_minor = parse_major_amount(field.data, self.currency)
        if self.amount_minor is None or self.amount_minor <= 0:
            raise ValidationError(_l("Enter an amount such as 12,50."))

    @property
    def expected_available_minor(self) -> int | None:
        """What the page said was refundable (the server refuses if it changed meanwhile)."""
        try:
            return int(self.available_minor.data)
        except (TypeError, ValueError):
            return None
