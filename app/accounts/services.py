"""Accounts: password hashing, authentication and tax-ID links."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from app.accounts.models import TaxIdLink, User
from app.db import utcnow
from app.extensions import db

#: argon2-cffi's argon2id with its recommended parameters (RFC 9106 low-memory profile).
_hasher = PasswordHasher()
#: Verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def load_user(user_id: str) -> User | None:
    """Flask-Login's loader: the user with this id, if any."""
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None; timing does not reveal which part was wrong."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.commit()
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
    db.session.commit()
    return user, created


def set_language(user: User, language: str) -> None:
    """Remember the account's preferred language."""
    user.language = language
    db.session.commit()
