"""Accounts: registration, e-mail confirmation, log-in, password reset, the account page.

Links sent by e-mail are signed with the SECRET_KEY (itsdangerous), each kind with its own salt
so one kind can never be used as another, and they expire. A reset link also carries a stamp of
the current password, so it stops working once used or once the password changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, render_template, url_for
from flask_babel import force_locale
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.accounts.models import TaxIdLink, User
from app.db import utcnow
from app.extensions import db
from app.i18n import gettext, ngettext
from app.mail import MailDeliveryError, send_mail

log = logging.getLogger("civicpay.accounts")

#: argon2-cffi's argon2id with its recommended parameters (RFC 9106 low-memory profile).
_hasher = PasswordHasher()
#: Verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def load_user(user_id: str) -> User | None:
    """Flask-Login's loader: the user with this id, if any and not deleted."""
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or user.deleted_at is not None:
        return None  # a deleted account's other sessions end too
    return user


def _active_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower(), User.deleted_at.is_(None)))


def _password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is the user's; always costs one argon2 verification."""
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None; timing does not reveal which part was wrong.

    The caller still checks ``email_verified_at``: an unconfirmed account may not log in yet.
    """
    user = _active_user_by_email(email)
    if not _password_matches(user, password):
        return None
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.flush()
    return user


def ensure_user(
    *, email: str, password: str, full_name: str, language: str, tax_ids: list[tuple[str, str]]
) -> tuple[User, bool]:
    """Create the account (and proven tax-ID links) unless it exists; returns (user, created)."""
    email = email.strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    created = user is None
    if user is None:
        user = User(
            email=email,
            password_hash=hash_password(password),
            full_name=full_name,
            language=language,
            email_verified_at=utcnow(),  # demo accounts come verified
        )
        db.session.add(user)
    known = {(link.country, link.tax_id) for link in user.tax_ids}
    for country, tax_id in tax_ids:
        if (country, tax_id) not in known:
            user.tax_ids.append(TaxIdLink(country=country, tax_id=tax_id, verified_at=utcnow()))
    db.session.flush()
    return user, created


def set_language(user: User, language: str) -> None:
    """Remember the account's preferred language."""
    user.language = language
    db.session.flush()


# -- e-mail ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountMail:
    """An account e-mail's words: a greeting, paragraphs, and perhaps one button-like link."""

    subject: str
    paragraphs: list[str]
    link: str | None = None
    link_label: str | None = None
    closing: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The plain-text body."""
        parts = [*self.paragraphs]
        if self.link:
            parts.append(self.link)
        parts.extend(self.closing)
        parts.append("Civic Pay")
        return "\n\n".join(parts) + "\n"


def _send_account_mail(to: str, language: str, kind: str, compose: Callable[[], AccountMail]) -> None:
    """Compose in the account's language and send; a failure is logged, not shown.

    The pages after these actions must read the same whether or not an account exists, so a
    delivery problem cannot be told to the visitor either: it goes to the operator's log.
    """
    with force_locale(language):
        mail = compose()
        html = render_template("accounts/email.html", mail=mail, language=language)
    try:
        send_mail(to, mail.subject, mail.text(), html)
    except MailDeliveryError as error:
        log.error("Could not send the %s e-mail: %s", kind, error)


def _external_url(endpoint: str, **values: str) -> str:
    """An absolute link for an e-mail, on PUBLIC_URL when it is set."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def link_validity(seconds: int) -> str:
    """How long a link works, as a sentence in the current language ("The link works for 2 days.")."""
    if seconds >= 86400 and seconds % 86400 == 0:
        days = seconds // 86400
        return ngettext("The link works for %(num)d day.", "The link works for %(num)d days.", days)
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = seconds // 3600
        return ngettext("The link works for %(num)d hour.", "The link works for %(num)d hours.", hours)
    minutes = max(1, seconds // 60)
    return ngettext("The link works for %(num)d minute.", "The link works for %(num)d minutes.", minutes)


# -- signed links ------------------------------------------------------------------------------

_VERIFY_SALT = "civicpay.accounts.verify-email"
_RESET_SALT = "civicpay.accounts.reset-password"

LinkStatus = Literal["valid", "expired", "used", "invalid"]


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _password_stamp(user: User) -> str:
    """Changes whenever the password does (new hash, new password_changed_at)."""
    changed = user.password_changed_at.isoformat() if user.password_changed_at else ""
    return hashlib.sha256(f"{user.password_hash}|{changed}".encode()).hexdigest()[:24]


def make_verification_token(user: User) -> str:
    """A signed token proving that whoever holds it received mail at the account's address."""
    return _serializer(_VERIFY_SALT).dumps({"user": user.id, "email": user.email})


def make_reset_token(user: User) -> str:
    """A signed token allowing one password change, until it expires or the password changes."""
    return _serializer(_RESET_SALT).dumps({"user": user.id, "stamp": _password_stamp(user)})


def _read_token(token: str, salt: str, max_age: int) -> tuple[LinkStatus, dict | None]:
    serializer = _serializer(salt)
    try:
        payload = serializer.loads(token, max_age=max_age)
        status: LinkStatus = "valid"
    except SignatureExpired:
        # The signature is good, only old: its contents can still say whose link it was.
        payload = serializer.loads(token)
        status = "expired"
    except BadSignature:
        return "invalid", None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), int):
        return "invalid", None
    return status, payload


# -- registration and e-mail confirmation ------------------------------------------------------


def register_account(*, email: str, password: str, full_name: str, language: str) -> None:
    """Create an unconfirmed account and send its confirmation link.

    When the address already has an account, nothing is created and its owner gets a notice
    instead: the visitor sees the same page either way, so nobody learns who has an account.
    """
    email = email.strip().lower()
    password_hash = hash_password(password)  # hashed either way, so both paths take as long
    existing = _active_user_by_email(email)
    if existing is None:
        user = User(
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            language=language,
            password_changed_at=utcnow(),
        )
        try:
            with db.session.begin_nested():  # a savepoint: the race below undoes only this insert
                db.session.add(user)
        except IntegrityError:  # registered at the same moment by another request
            existing = _active_user_by_email(email)
        else:
            _send_verification_mail(user)
            return
    if existing is not None:
        _send_already_registered_mail(existing)


def _send_verification_mail(user: User) -> None:
    link = _external_url("accounts.verify_email", token=make_verification_token(user))
    max_age = current_app.config["EMAIL_VERIFY_MAX_AGE"]

    def compose() -> AccountMail:
        return AccountMail(
            subject=gettext("Confirm your e-mail address for Civic Pay"),
            paragraphs=[
                gettext("Hello %(name)s,", name=user.full_name),
                gettext("To finish creating your Civic Pay account, confirm your e-mail address with this link:"),
            ],
            link=link,
            link_label=gettext("Confirm my e-mail address"),
            closing=[
                link_validity(max_age),
                gettext("If you did not create an account, ignore this message: nothing will happen."),
            ],
        )

    _send_account_mail(user.email, user.language, "confirmation", compose)


def _send_already_registered_mail(user: User) -> None:
    login = _external_url("accounts.login")
    forgot = _external_url("accounts.forgot_password")

    def compose() -> AccountMail:
        return AccountMail(
            subject=gettext("Someone tried to create a Civic Pay account with your address"),
            paragraphs=[
                gettext("Hello %(name)s,", name=user.full_name),
                gettext(
                    "Someone tried to create a new Civic Pay account with this e-mail address, "
                    "which already has an account. No new account was created."
                ),
                gettext("If it was you, log in at %(login)s", login=login),
                gettext("If you forgot your password, choose a new one at %(forgot)s", forgot=forgot),
            ],
            closing=[gettext("If it was not you, you can ignore this message: your account has not changed.")],
        )

    _send_account_mail(user.email, user.language, "already-registered", compose)


def resend_verification(email: str) -> None:
    """Send a new confirmation link if the address has an unconfirmed account; else nothing."""
    user = _active_user_by_email(email)
    if user is not None and user.email_verified_at is None:
        _send_verification_mail(user)


@dataclass(frozen=True)
class VerificationResult:
    """What a confirmation link did: "verified", "already", "expired" or "invalid"."""

    status: Literal["verified", "already", "expired", "invalid"]
    #: The address the link was for (known for expired links, to offer a new one).
    email: str | None = None


def verify_email(token: str) -> VerificationResult:
    """Mark the address of the link's account as confirmed, if the link is good and current."""
    status, payload = _read_token(token, _VERIFY_SALT, current_app.config["EMAIL_VERIFY_MAX_AGE"])
    if payload is None:
        return VerificationResult("invalid")
    user = db.session.get(User, payload["user"])
    if user is None or user.deleted_at is not None or user.email != payload.get("email"):
        return VerificationResult("invalid")
    if user.email_verified_at is not None:
        return VerificationResult("already", user.email)
    if status == "expired":
        return VerificationResult("expired", user.email)
    user.email_verified_at = utcnow()
    db.session.flush()
    return VerificationResult("verified", user.email)


# -- password reset ----------------------------------------------------------------------------


def request_password_reset(email: str) -> None:
    """E-mail a reset link if the address has an account; say nothing either way."""
    user = _active_user_by_email(email)
    if user is None:
        return
    link = _external_url("accounts.reset_password", token=make_reset_token(user))
    max_age = current_app.config["PASSWORD_RESET_MAX_AGE"]

    def compose() -> AccountMail:
        return AccountMail(
            subject=gettext("Choose a new password for Civic Pay"),
            paragraphs=[
                gettext("Hello %(name)s,", name=user.full_name),
                gettext("We received a request to choose a new password for your Civic Pay account. Use this link:"),
            ],
            link=link,
            link_label=gettext("Choose a new password"),
            closing=[
                link_validity(max_age) + " " + gettext("It can be used once."),
                gettext("If you did not ask for this, ignore this message: your password has not changed."),
            ],
        )

    _send_account_mail(user.email, user.language, "password-reset", compose)


def check_reset_token(token: str) -> tuple[LinkStatus, User | None]:
    """Whether a reset link can still be used, and for whom."""
    status, payload = _read_token(token, _RESET_SALT, current_app.config["PASSWORD_RESET_MAX_AGE"])
    if payload is None:
        return "invalid", None
    user = db.session.get(User, payload["user"])
    if user is None or user.deleted_at is not None:
        return "invalid", None
    if payload.get("stamp") != _password_stamp(user):
        return "used", None
    if status == "expired":
        return "expired", None
    return "valid", user


def reset_password(token: str, new_password: str) -> User | None:
    """Set a new password through a reset link; None when the link cannot be used (any more).

    Following the link proves the owner reads the address, so an unconfirmed account becomes
    confirmed here too.
    """
    status, user = check_reset_token(token)
    if status != "valid" or user is None:
        return None
    _set_password(user, new_password)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    db.session.flush()
    _send_password_changed_mail(user)
    return user


def _set_password(user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()


def _send_password_changed_mail(user: User) -> None:
    forgot = _external_url("accounts.forgot_password")

    def compose() -> AccountMail:
        return AccountMail(
            subject=gettext("Your Civic Pay password was changed"),
            paragraphs=[
                gettext("Hello %(name)s,", name=user.full_name),
                gettext("The password of your Civic Pay account was just changed."),
                gettext(
                    "If you did not change it, choose a new password now at %(forgot)s and tell your municipality.",
                    forgot=forgot,
                ),
            ],
        )

    _send_account_mail(user.email, user.language, "password-changed", compose)


# -- the account page --------------------------------------------------------------------------


def update_account(
    user: User, *, full_name: str, phone: str | None, language: str, notify_email: bool, notify_sms: bool
) -> None:
    """Save the citizen's own details and notification choices."""
    user.full_name = full_name
    user.phone = phone
    user.language = language
    user.notify_email = notify_email
    user.notify_sms = notify_sms
    db.session.flush()


def change_password(user: User, current_password: str, new_password: str) -> bool:
    """Replace the password if ``current_password`` is right; outstanding reset links die."""
    if not _password_matches(user, current_password):
        return False
    _set_password(user, new_password)
    db.session.flush()
    _send_password_changed_mail(user)
    return True


#: Never a valid argon2 hash: verification fails and log-in is impossible.
UNUSABLE_PASSWORD_HASH = "!deleted"


def delete_account(user: User, password: str) -> bool:
    """Delete the account if ``password`` is right: personal data is pseudonymised in place.

    The row stays, so the agencies keep their payments and receipts (which they must keep by
    law); the name, address, phone and password go, and so do the tax-ID links.
    """
    if not _password_matches(user, password):
        return False
    email, name, language = user.email, user.full_name, user.language
    user.email = f"deleted-{user.id}@invalid"
    user.full_name = "Deleted account"
    user.phone = None
    user.password_hash = UNUSABLE_PASSWORD_HASH
    user.password_changed_at = utcnow()
    user.notify_email = False
    user.notify_sms = False
    user.deleted_at = utcnow()
    user.tax_ids.clear()
    db.session.flush()

    def compose() -> AccountMail:
        return AccountMail(
            subject=gettext("Your Civic Pay account was deleted"),
            paragraphs=[
                gettext("Hello %(name)s,", name=name),
                gettext(
                    "Your Civic Pay account was deleted as you asked. Your payments remain with the "
                    "agencies you paid, as the law requires."
                ),
            ],
        )

    _send_account_mail(email, language, "account-deleted", compose)
    return True
