"""The guest's forms: payment code and second factor, card (with an optional e-mail), receipt look-up."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional

from app.checkout.forms import CardForm
from app.domain.orders import ANSWER_MAX_LENGTH
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
        validators=[
            DataRequired(_l("Enter the e-mail address you gave, or the last 4 digits of the card.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Show the receipt"))


class OrderFormBase(FlaskForm):
    """An order of one catalog item; fields for the amount and the questions are added per item."""

    submit = SubmitField(_l("Continue to payment"))


def order_form(item, language: str) -> type[OrderFormBase]:
    """A form class for ordering ``item``: how many (or how much), and its questions.

    The price is never a field: a fixed-price item is priced on the server from its quantity,
    an open amount is checked there against the item's range.
    """

    class OrderForm(OrderFormBase):
        pass

    if item.open_amount:
        OrderForm.amount = StringField(  # type: ignore[attr-defined]
            _l("Amount (€)") if item.currency == "EUR" else _l("Amount"),
            validators=[DataRequired(_l("Enter the amount you want to give.")), Length(max=20)],
            render_kw={"inputmode": "decimal", "autocomplete": "off"},
        )
    else:
        OrderForm.quantity = IntegerField(  # type: ignore[attr-defined]
            _l("How many"),
            default=1,
            validators=[
                InputRequired(_l("Enter how many you want.")),
                NumberRange(
                    min=1, max=item.max_per_order, message=_l("Choose between 1 and %(most)s.", most=item.max_per_order)
                ),
            ],
            render_kw={"inputmode": "numeric", "min": 1, "max": item.max_per_order},
        )
    for question in item.questions or []:
        label = question.get("label_en") if language == "en" else question.get("label_el")
        validators = [Length(max=ANSWER_MAX_LENGTH)]
        validators.insert(0, DataRequired(_l("Answer this question.")) if question.get("required") else Optional())
        setattr(
            OrderForm,
            f"answer_{question['key']}",
            StringField(label or question["key"], validators=validators, render_kw={"autocomplete": "off"}),
        )
    return OrderForm


def order_answers(form: OrderFormBase, item) -> dict[str, str]:
    """The answers typed in an order form, by question key."""
    return {question["key"]: getattr(form, f"answer_{question['key']}").data or "" for question in item.questions or []}


def question_fields(form: OrderFormBase, item) -> list:
    """The form's question fields, in the item's order, for the template."""
    return [getattr(form, f"answer_{question['key']}") for question in item.questions or []]


class BasketFormBase(FlaskForm):
    """Several fixed-price items of one agency in one order; fields are added per item."""

    submit = SubmitField(_l("Continue to payment"))


def basket_form(items, language: str) -> type[BasketFormBase]:
    """A form class with a quantity (0 = none) and the questions of each fixed-price item."""

    class BasketForm(BasketFormBase):
        pass

    for item in items:
        setattr(
            BasketForm,
            f"quantity_{item.id}",
            IntegerField(
                _l("How many of “%(item)s”", item=item.name(language)),
                default=0,
                validators=[  # left empty: none of it
                    Optional(),
                    NumberRange(
                        min=0,
                        max=item.max_per_order,
                        message=_l("Choose between 0 and %(most)s.", most=item.max_per_order),
                    ),
                ],
                render_kw={"inputmode": "numeric", "min": 0, "max": item.max_per_order},
            ),
        )
        for question in item.questions or []:
            label = question.get("label_en") if language == "en" else question.get("label_el")
            setattr(
                BasketForm,
                f"answer_{item.id}_{question['key']}",
                StringField(
                    f"{label or question['key']} ({item.name(language)})",
                    validators=[Optional(), Length(max=ANSWER_MAX_LENGTH)],
                ),
            )
    return BasketForm


def basket_orders(form: BasketFormBase, items) -> list:
    """(item, quantity, answers) for each item the buyer asked for (quantity above 0)."""
    chosen = []
    for item in items:
        quantity = getattr(form, f"quantity_{item.id}").data or 0
        if quantity > 0:
            answers = {
                question["key"]: getattr(form, f"answer_{item.id}_{question['key']}").data or ""
                for question in item.questions or []
            }
            chosen.append((item, quantity, answers))
    return chosen


def basket_fields(form: BasketFormBase, item) -> tuple:
    """An item's quantity field and its question fields, for the template."""
    questions = [getattr(form, f"answer_{item.id}_{question['key']}") for question in item.questions or []]
    return getattr(form, f"quantity_{item.id}"), questions
