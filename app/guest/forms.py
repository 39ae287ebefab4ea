"""The guest's forms: payment code and second factor, card (with an optional e-mail), receipt look-up."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional

from app.checkout.forms import CardForm
from app.i18n import lazy_gettext as _l


class LookupForm(FlaskForm):
    """A payment code from the notice and the detail the notice asks for with it."""

    code = StringField(
        _l("Payment code"),
        validators=[DataRequired(_l("Enter the payment code from your notice.")), Length(max=64)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )
    factor = StringField(
        _l("Check detail"),
        validators=[DataRequired(_l("Enter the check detail your notice asks for.")), Length(max=64)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Continue"))


class GuestCardForm(CardForm):
    """The account checkout's card form, plus where to e-mail a copy of the receipt."""

    email = EmailField(
        _l("E-mail for a copy of the receipt (optional)"),
        validators=[
            Optional(),
            Email(_l("Enter an e-mail address like name@example.org.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "email"},
    )


class FindReceiptForm(FlaskForm):
    """A receipt number and the e-mail given with the payment, or the card's last four digits."""

    reference = StringField(
        _l("Receipt number"),
        validators=[DataRequired(_l("Enter the receipt number, for example CP-7KQ2-M9XA-3F.")), Length(max=40)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )
    detail = StringField(
        _l("E-mail address or last 4 digits of the card"),
        validators=[DataRequired(_l("Enter the e-mail address you gave, or the last 4 digits of the card.")), Length(max=254)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Show the receipt"))
