"""Treasury forms: the second factor, the payment filters (GET), staff management."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.i18n import lazy_gettext as _l
from app.treasury.models import ROLES
from app.treasury.services import PaymentFilters, parse_amount

_SELECT_LOOK = {"style": "padding: .45rem; font: inherit; border: 2px solid var(--ink);"}


def _role_choices() -> list[tuple[str, str]]:
    from app.treasury.services import role_label

    return [(role, role_label(role)) for role in reversed(ROLES)]


class SecondFactorForm(FlaskForm):
    """A code from the authenticator app, or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[DataRequired(_l("Enter the code.")), Length(max=32)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Continue"))


class EnrolmentForm(FlaskForm):
    """The first code of a newly added authenticator."""

    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(_l("Enter the 6-digit code your app shows.")), Length(max=16)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Confirm"))


class PaymentFilterForm(FlaskForm):
    """The history's filters: a GET form (no CSRF token, bookmarkable, works without JavaScript)."""

    class Meta:
        csrf = False

    date_from = DateField(_l("From (date)"), validators=[Optional()])
    date_to = DateField(_l("To (date)"), validators=[Optional()])
    status = SelectField(_l("Status"), validators=[Optional()], render_kw=_SELECT_LOOK)
    category = SelectField(_l("Debt category"), validators=[Optional()], render_kw=_SELECT_LOOK)
    kind = SelectField(_l("Kind of debt"), validators=[Optional()], render_kw=_SELECT_LOOK)
    amount_min = StringField(_l("Amount from"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"})
    amount_max = StringField(_l("Amount to"), validators=[Optional(), Length(max=20)], render_kw={"inputmode": "decimal"})
    payer = StringField(_l("Payer tax ID or name"), validators=[Optional(), Length(max=200)])
    rf = StringField(_l("RF reference"), validators=[Optional(), Length(max=40)], render_kw={"spellcheck": "false"})
    reference = StringField(
        _l("Receipt number or provider reference"), validators=[Optional(), Length(max=100)], render_kw={"spellcheck": "false"}
    )
    channel = SelectField(_l("Channel"), validators=[Optional()], render_kw=_SELECT_LOOK)

    def __init__(self, *args, currency: str, choices: dict[str, list[tuple[str, str]]], **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.currency = currency
        any_choice = [("", _l("Any"))]
        self.status.choices = any_choice + choices["statuses"]
        self.category.choices = any_choice + choices["categories"]
        self.kind.choices = any_choice + choices["kinds"]
        self.channel.choices = any_choice + choices["channels"]

    def _amount(self, field) -> int | None:  # noqa: ANN001
        if not field.data:
            return None
        return parse_amount(field.data, self.currency)

    def validate_amount_min(self, field) -> None:  # noqa: ANN001
        try:
            self._amount(field)
        except ValueError:
            raise ValidationError(_l("Enter an amount like 12,50.")) from None

    validate_amount_max = validate_amount_min

    def validate_rf(self, field) -> None:  # noqa: ANN001
        from app.domain.references import is_valid_rf

        if field.data and not is_valid_rf(field.data):
            raise ValidationError(_l("Enter an RF reference like RF18 5390 0754 7034."))

    def validate_date_to(self, field) -> None:  # noqa: ANN001
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date must not be before the start date."))

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(field.data for name, field in self._fields.items())

    def filters(self) -> PaymentFilters:
        """The valid filters as plain values (call after ``validate``; invalid fields are ignored)."""
        from app.domain.references import normalise_rf

        def valid(name: str):  # noqa: ANN202
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


class InviteForm(FlaskForm):
    """Invite someone to the agency's staff by e-mail."""

    email = EmailField(
        _l("E-mail address"),
        validators=[
            DataRequired(_l("Enter the e-mail address.")),
            Email(_l("Enter an e-mail address like name@example.org.")),
            Length(max=254),
        ],
    )
    role = SelectField(_l("Role"), validators=[DataRequired()], render_kw=_SELECT_LOOK)
    submit = SubmitField(_l("Invite"))

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.role.choices = _role_choices()


class RoleForm(FlaskForm):
    """Change a staff member's role."""

    role = SelectField(_l("Role"), validators=[DataRequired()], render_kw=_SELECT_LOOK)
    submit = SubmitField(_l("Change role"))

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.role.choices = _role_choices()


class ConfirmForm(FlaskForm):
    """A button with a CSRF token: remove a member, revoke an invitation, accept an invitation."""

    submit = SubmitField(_l("Confirm"))
