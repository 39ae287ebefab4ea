"""Access forms: the second factor, inviting staff, roles, confirmations."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Email, Length

from app.i18n import lazy_gettext as _l
from app.treasury.form_styles import SELECT_LOOK
from app.treasury.models import ROLES


def _role_choices() -> list[tuple[str, str]]:
    from app.treasury.access.services import role_label

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
    role = SelectField(_l("Role"), validators=[DataRequired()], render_kw=SELECT_LOOK)
    submit = SubmitField(_l("Invite"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = _role_choices()


class RoleForm(FlaskForm):
    """Change a staff member's role."""

    role = SelectField(_l("Role"), validators=[DataRequired()], render_kw=SELECT_LOOK)
    submit = SubmitField(_l("Change role"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = _role_choices()


class ConfirmForm(FlaskForm):
    """A button with a CSRF token: remove a member, revoke an invitation, accept an invitation."""

    submit = SubmitField(_l("Confirm"))
