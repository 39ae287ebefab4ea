"""The agency administrator's form for a catalog item (a ticket, permit, fee or donation)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, IntegerField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from app.catalog.models import ITEM_KINDS
from app.domain.money import format_money, minor_unit_exponent
from app.domain.second_factors import parse_typed_amount
from app.i18n import lazy_gettext as _l

_KEY = re.compile(r"[a-z][a-z0-9_]{0,30}")
_YES = {"required", "yes", "ναι", "υποχρεωτικό", "υποχρεωτική"}


def kind_choices() -> list[tuple[str, str]]:
    """The kinds of item, in words."""
    labels = {
        "ticket": _l("Ticket (with a code checked at the door)"),
        "permit": _l("Permit"),
        "fee": _l("Fee"),
        "donation": _l("Donation or other open amount"),
    }
    return [(kind, str(labels[kind])) for kind in ITEM_KINDS]


def parse_questions(text: str | None) -> list[dict[str, Any]]:
    """Questions from lines "key; Greek label; English label; required"; raises ValueError with a sentence."""
    questions: list[dict[str, Any]] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = [part.strip() for part in raw.split(";")]
        if len(parts) < 3 or not _KEY.fullmatch(parts[0]):
            raise ValueError(
                str(
                    _l(
                        "Line %(number)s: write a key (small Latin letters), the Greek label and the English label, "
                        "separated by semicolons, then optionally “required”.",
                        number=number,
                    )
                )
            )
        if any(question["key"] == parts[0] for question in questions):
            raise ValueError(str(_l("Line %(number)s: the key %(key)s is used twice.", number=number, key=parts[0])))
        questions.append(
            {
                "key": parts[0],
                "label_el": parts[1][:120],
                "label_en": parts[2][:120],
                "required": len(parts) > 3 and parts[3].lower() in _YES,
            }
        )
    return questions


def questions_text(questions: list[dict[str, Any]] | None) -> str:
    """Stored questions back as the form's lines."""
    return "\n".join(
        "; ".join(
            [q["key"], q.get("label_el", ""), q.get("label_en", "")] + (["required"] if q.get("required") else [])
        )
        for q in questions or []
    )


class ItemForm(FlaskForm):
    """What an item is, what it costs, when and to whom it is sold."""

    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(_l("Enter a short code.")),
            Regexp(r"^[a-z0-9][a-z0-9-]{0,39}$", message=_l("Use small Latin letters, digits and dashes, up to 40.")),
        ],
    )
    kind = SelectField(_l("Kind"), choices=[], validate_choice=True)
    name_el = StringField(
        _l("Name in Greek"), validators=[DataRequired(_l("Enter the name in Greek.")), Length(max=200)]
    )
    name_en = StringField(
        _l("Name in English"), validators=[DataRequired(_l("Enter the name in English.")), Length(max=200)]
    )
    description_el = TextAreaField(_l("Description in Greek"), validators=[Optional(), Length(max=2000)])
    description_en = TextAreaField(_l("Description in English"), validators=[Optional(), Length(max=2000)])
    price = StringField(_l("Price of one"), validators=[Optional(), Length(max=20)])
    min_amount = StringField(_l("Smallest amount"), validators=[Optional(), Length(max=20)])
    max_amount = StringField(_l("Largest amount"), validators=[Optional(), Length(max=20)])
    available_from = DateTimeLocalField(_l("On sale from"), validators=[Optional()], format="%Y-%m-%dT%H:%M")
    available_until = DateTimeLocalField(_l("On sale until"), validators=[Optional()], format="%Y-%m-%dT%H:%M")
    capacity = IntegerField(
        _l("Capacity (tickets only)"),
        validators=[Optional(), NumberRange(min=0, max=1_000_000, message=_l("Enter a whole number of 0 or more."))],
    )
    max_per_order = IntegerField(
        _l("Most per order"),
        default=10,
        validators=[
            DataRequired(_l("Enter how many one order may hold.")),
            NumberRange(min=1, max=100, message=_l("Enter 1 to 100.")),
        ],
    )
    questions = TextAreaField(_l("Questions for the buyer"), validators=[Optional(), Length(max=2000)])
    requires_account = BooleanField(_l("Only for signed-in citizens"))
    active = BooleanField(_l("On sale"), default=True)
    submit = SubmitField(_l("Save item"))

    def __init__(self, *args: Any, currency: str, timezone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = kind_choices()
        self.currency = currency
        self.zone = ZoneInfo(timezone)
        self.cleaned: dict[str, Any] = {}

    def _amount(self, field: StringField) -> int | None:
        if not (field.data or "").strip():
            return None
        amount = parse_typed_amount(field.data, minor_unit_exponent(self.currency))
        if amount is None or amount <= 0:
            field.errors.append(str(_l("Enter an amount such as 20 or 20,50.")))
            raise ValidationError("")
        return amount

    def _moment(self, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=self.zone) if value is not None else None

    def validate(self, extra_validators: Any = None) -> bool:
        """Field checks, then the rules between fields; fills ``cleaned`` with the model's values."""
        if not super().validate(extra_validators):
            return False
        try:
            price = self._amount(self.price)
            least = self._amount(self.min_amount)
            most = self._amount(self.max_amount)
        except ValidationError:
            return False
        ok = True
        if price is None and (least is None or most is None):
            self.price.errors.append(str(_l("Enter a price, or a smallest and a largest amount for an open amount.")))
            ok = False
        if price is not None and (least is not None or most is not None):
            self.price.errors.append(str(_l("Enter either a price or a range, not both.")))
            ok = False
        if least is not None and most is not None and most < least:
            self.max_amount.errors.append(str(_l("The largest amount must be at least the smallest.")))
            ok = False
        if self.capacity.data is not None and self.kind.data != "ticket":
            self.capacity.errors.append(str(_l("Only tickets have a capacity.")))
            ok = False
        start, end = self._moment(self.available_from.data), self._moment(self.available_until.data)
        if start is not None and end is not None and end <= start:
            self.available_until.errors.append(str(_l("The end of the sale must come after its start.")))
            ok = False
        try:
            questions = parse_questions(self.questions.data)
        except ValueError as error:
            self.questions.errors.append(str(error))
            ok = False
            questions = []
        if not ok:
            return False
        self.cleaned = {
            "code": self.code.data,
            "kind": self.kind.data,
            "name_el": self.name_el.data.strip(),
            "name_en": self.name_en.data.strip(),
            "description_el": (self.description_el.data or "").strip(),
            "description_en": (self.description_en.data or "").strip(),
            "price_minor": price,
            "min_minor": least if price is None else None,
            "max_minor": most if price is None else None,
            "available_from": start,
            "available_until": end,
            "capacity": self.capacity.data,
            "max_per_order": 1 if price is None else self.max_per_order.data,
            "questions": questions,
            "requires_account": bool(self.requires_account.data),
            "active": bool(self.active.data),
        }
        return True

    def fill_from(self, item: Any, language: str) -> None:
        """Show a stored item in the form (amounts as typed, times in the agency's zone)."""

        def typed(amount: int | None) -> str:
            if amount is None:
                return ""
            return format_money(amount, item.currency, language).replace("\u00a0", " ").replace("€", "").strip()

        self.code.data = item.code
        self.kind.data = item.kind
        self.name_el.data = item.name_el
        self.name_en.data = item.name_en
        self.description_el.data = item.description_el
        self.description_en.data = item.description_en
        self.price.data = typed(item.price_minor)
        self.min_amount.data = typed(item.min_minor)
        self.max_amount.data = typed(item.max_minor)
        local = lambda moment: moment.astimezone(self.zone).replace(tzinfo=None) if moment else None  # noqa: E731
        self.available_from.data = local(item.available_from)
        self.available_until.data = local(item.available_until)
        self.capacity.data = item.capacity
        self.max_per_order.data = item.max_per_order
        self.questions.data = questions_text(item.questions)
        self.requires_account.data = item.requires_account
        self.active.data = item.active


class TicketCheckForm(FlaskForm):
    """A ticket code, typed or filled in from its QR code, to let in once."""

    code = StringField(
        _l("Ticket code"),
        validators=[DataRequired(_l("Enter the ticket code, for example TK-7KQ2-M9XA-3F.")), Length(max=40)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Let in"))
