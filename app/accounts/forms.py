"""Account forms: log in, register, confirm, reset, and the account page."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TelField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    Length,
    Optional,
    ValidationError,
)

from app.accounts.passwords import password_problem
from app.i18n import LANGUAGE_NAMES, ngettext
from app.i18n import lazy_gettext as _l


class LoginForm(FlaskForm):
    """E-mail and password."""

    email = EmailField(
        _l("E-mail address"),
        validators=[
            DataRequired(_l("Enter your e-mail address.")),
            Email(_l("Enter an e-mail address like name@example.org.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
    submit = SubmitField(_l("Log in"))


class LogoutForm(FlaskForm):
    """Log out is a POST with a CSRF token, so a link elsewhere cannot log anyone out."""

    submit = SubmitField(_l("Log out"))


def _check_new_password(password: str | None, email: str | None) -> None:
    """Raise the policy's sentence as a validation error when the password is refused."""
    problem = password_problem(password or "", email=email, min_length=current_app.config["PASSWORD_MIN_LENGTH"])
    if problem:
        raise ValidationError(problem)


#: The stylesheet styles inputs inside .field but not selects; match them until it does.
_SELECT_LOOK = {"style": "padding: .45rem; font: inherit; border: 2px solid var(--ink);"}


def _language_choices() -> list[tuple[str, str]]:
    return [(code, LANGUAGE_NAMES[code]) for code in current_app.config["LANGUAGES"]]


def _password_hint() -> str:
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    return ngettext(
        "At least %(num)d character. A few unrelated words are easy to remember and hard to guess.",
        "At least %(num)d characters. A few unrelated words are easy to remember and hard to guess.",
        minimum,
    )


class _EmailForm(FlaskForm):
    email = EmailField(
        _l("E-mail address"),
        validators=[
            DataRequired(_l("Enter your e-mail address.")),
            Email(_l("Enter an e-mail address like name@example.org.")),
            Length(max=254, message=_l("An e-mail address has at most 254 characters.")),
        ],
        filters=[lambda value: value.strip().lower() if value else value],
        render_kw={"autocomplete": "email"},
    )


class RegistrationForm(_EmailForm):
    """A new account: name, e-mail, password twice, language."""

    full_name = StringField(
        _l("Full name"),
        validators=[
            DataRequired(_l("Enter your full name.")),
            Length(max=200, message=_l("Your name can have at most 200 characters.")),
        ],
        filters=[lambda value: value.strip() if value else value],
        render_kw={"autocomplete": "name"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Choose a password."))],
        render_kw={"autocomplete": "new-password"},
    )
    password_confirm = PasswordField(
        _l("Password again"),
        validators=[
            DataRequired(_l("Type your password again.")),
            EqualTo("password", _l("The two passwords are not the same. Type them again.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    language = SelectField(_l("Language of e-mails and pages"), render_kw=_SELECT_LOOK)
    submit = SubmitField(_l("Create account"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.language.choices = _language_choices()
        self.password_hint = _password_hint()

    def validate_password(self, field: PasswordField) -> None:
        _check_new_password(field.data, self.email.data)


class ResendVerificationForm(_EmailForm):
    """Ask for a new e-mail confirmation link."""

    submit = SubmitField(_l("Send a new link"))


class ForgotPasswordForm(_EmailForm):
    """Ask for a password reset link."""

    submit = SubmitField(_l("Send me a reset link"))


class _NewPasswordForm(FlaskForm):
    """A new password typed twice, checked against the policy (and the account's e-mail)."""

    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(_l("Choose a password."))],
        render_kw={"autocomplete": "new-password"},
    )
    new_password_confirm = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(_l("Type your password again.")),
            EqualTo("new_password", _l("The two passwords are not the same. Type them again.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )

    def __init__(self, *args: Any, email: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email_for_policy = email
        self.password_hint = _password_hint()

    def validate_new_password(self, field: PasswordField) -> None:
        _check_new_password(field.data, self.email_for_policy)


class ResetPasswordForm(_NewPasswordForm):
    """A new password, typed twice (the e-mail to check against comes from the link)."""

    submit = SubmitField(_l("Save the new password"))


def normalise_phone(value: str | None) -> str | None:
    """Spaces, dashes, dots and brackets out; a leading 00 becomes +; empty becomes None."""
    if not value:
        return None
    compact = re.sub(r"[\s\-.()/]", "", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact or None


#: E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9]\d{6,14}")


class AccountDetailsForm(FlaskForm):
    """What a citizen may change about themselves."""

    full_name = StringField(
        _l("Full name"),
        validators=[
            DataRequired(_l("Enter your full name.")),
            Length(max=200, message=_l("Your name can have at most 200 characters.")),
        ],
        filters=[lambda value: value.strip() if value else value],
        render_kw={"autocomplete": "name"},
    )
    phone = TelField(
        _l("Mobile phone (optional)"),
        validators=[Optional()],
        filters=[normalise_phone],
        render_kw={"autocomplete": "tel"},
    )
    language = SelectField(_l("Language of e-mails and pages"), render_kw=_SELECT_LOOK)
    notify_email = BooleanField(_l("By e-mail"))
    notify_sms = BooleanField(_l("By text message (SMS)"))
    save = SubmitField(_l("Save changes"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.language.choices = _language_choices()

    def validate_phone(self, field: TelField) -> None:
        if field.data and not E164.fullmatch(field.data):
            raise ValidationError(_l("Enter the number with + and the country code, for example +30 691 234 5678."))

    def validate_notify_sms(self, field: BooleanField) -> None:
        if field.data and not self.phone.data:
            raise ValidationError(_l("To get text messages, enter your mobile phone number."))


class ChangePasswordForm(_NewPasswordForm):
    """A new password, allowed only with the current one."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Enter your current password.")), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )
    change_password = SubmitField(_l("Change password"))


class DeleteAccountForm(FlaskForm):
    """Deleting is for good: the password and an explicit tick are both needed."""

    delete_password = PasswordField(
        _l("Your password"),
        validators=[DataRequired(_l("Enter your password to delete your account.")), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )
    confirm = BooleanField(
        _l("I understand that my account will be deleted and cannot be restored."),
        validators=[DataRequired(_l("Tick the box to confirm that you want to delete your account."))],
    )
    delete_account = SubmitField(_l("Delete my account"))
