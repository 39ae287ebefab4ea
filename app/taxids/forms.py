"""Forms for claiming a tax ID and proving it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

from app.domain.references import InvalidReference, normalise_rf
from app.i18n import lazy_gettext as _l
from app.taxids.messages import country_name, destination_label
from app.taxids.services import Destination, parse_decimal_amount, supported_countries

DEFAULT_COUNTRY = "GR"


def _sort_key(name: str) -> str:
    # Accents aside, so that "Ελβετία" and "Ένωση…" sort as a Greek reader expects.
    decomposed = unicodedata.normalize("NFD", name)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def country_choices() -> list[tuple[str, str]]:
    """Greece first, then every country python-stdnum can check, by name in the page's language."""
    others = sorted(
        ((code, country_name(code)) for code in supported_countries() if code != DEFAULT_COUNTRY),
        key=lambda choice: _sort_key(choice[1]),
    )
    return [(DEFAULT_COUNTRY, country_name(DEFAULT_COUNTRY)), *others]


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class ClaimForm(FlaskForm):
    """A country and a tax ID number (checked by the service with python-stdnum)."""

    country = SelectField(_l("Country that issued the tax ID"), default=DEFAULT_COUNTRY)
    number = StringField(
        _l("Tax ID number"),
        validators=[
            DataRequired(_l("Enter the tax ID number.")),
            Length(max=40, message=_l("A tax ID has at most 40 characters.")),
        ],
        filters=[_strip],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Add tax ID"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = country_choices()


class SendCodeForm(FlaskForm):
    """Which of the ERPs' addresses gets the code."""

    destination = RadioField(
        _l("Where should we send the code?"),
        validators=[DataRequired(_l("Choose where we should send the code."))],
        validate_choice=False,  # the service knows the addresses; an unknown key is refused there
    )
    submit = SubmitField(_l("Send me a code"))

    def __init__(self, *args: Any, destinations: list[Destination] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destination.choices = [(d.key, destination_label(d.method, d.masked)) for d in destinations]
        if destinations and not self.is_submitted():
            self.destination.data = destinations[0].key


_CODE = re.compile(r"\d{6}")


class CodeForm(FlaskForm):
    """The 6-digit one-time code."""

    code = StringField(
        _l("The 6-digit code"),
        validators=[DataRequired(_l("Enter the 6-digit code we sent you."))],
        filters=[lambda value: re.sub(r"\s", "", value) if value else value],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Confirm"))

    def validate_code(self, field: StringField) -> None:
        if not _CODE.fullmatch(field.data or ""):
            raise ValidationError(_l("The code has 6 digits, for example 042917."))


class NoticeForm(FlaskForm):
    """The RF payment code and the amount printed on a notice."""

    rf_reference = StringField(
        _l("Payment code (RF)"),
        validators=[DataRequired(_l("Enter the payment code that starts with RF."))],
        filters=[_strip],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    amount = StringField(
        _l("Amount of the notice"),
        validators=[DataRequired(_l("Enter the amount printed on the notice."))],
        filters=[_strip],
        render_kw={"autocomplete": "off", "inputmode": "decimal"},
    )
    submit = SubmitField(_l("Confirm"))

    def validate_rf_reference(self, field: StringField) -> None:
        try:
            normalise_rf(field.data or "")
        except InvalidReference:
            raise ValidationError(
                _l(
                    "This is not a payment code as printed on notices: it starts with RF, for example RF18 5390 0754 7034."
                )
            ) from None

    def validate_amount(self, field: StringField) -> None:
        try:
            parse_decimal_amount(field.data or "")
        except ValueError:
            raise ValidationError(_l("Type the amount as printed on the notice, for example 120,00.")) from None


class RemoveForm(FlaskForm):
    """Take a tax ID off the account."""

    submit = SubmitField(_l("Remove"))
