"""The staff's second factor: TOTP enrolment and codes, and single-use recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime
from typing import Literal

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from markupsafe import Markup
from sqlalchemy import (
    func,
    or_,
    select,
    update,
)

from app.accounts.models import User
from app.audit.services import record
from app.encryption import decrypt_secret, encrypt_secret
from app.extensions import db
from app.i18n import gettext
from app.treasury.access.services import TreasuryError, user_by_email
from app.treasury.models import StaffRecoveryCode

log = logging.getLogger("civicpay.treasury")

#: Issuer shown by authenticator apps next to the account name.
TOTP_ISSUER = "Civic Pay Treasury"
RECOVERY_CODE_COUNT = 10


# -- the second factor --------------------------------------------------------------------------


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)  # RFC 6238 defaults: SHA-1, 6 digits, 30-second steps


def start_totp_enrolment(user: User) -> str:
    """The secret the person is enrolling with: created once and kept (encrypted) until confirmed.

    Reloading the set-up page shows the same secret, so a code already scanned keeps working.
    """
    if user.totp_confirmed_at is not None:
        raise TreasuryError(gettext("Your authenticator is already set up."))
    if user.totp_secret is None:
        user.totp_secret = encrypt_secret(pyotp.random_base32())
        db.session.flush()
    return decrypt_secret(user.totp_secret)


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def qr_code_svg(uri: str, title: str) -> Markup:
    """The URI as an inline SVG QR code, titled for screen readers."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")
    # segno's inline SVG has no accessible name; give it one and say it is an image.
    labelled = svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(title)}" ', 1)
    return Markup(labelled)


def _matching_step(secret: str, code: str, now: datetime, after_step: int | None) -> int | None:
    """The time step (now, or one either side for clock drift) whose code this is, if unused."""
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if after_step is not None and step <= after_step:
            continue  # a code is accepted once: a shoulder-surfed or replayed code fails
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalise_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


#: argon2id for recovery codes, with OWASP's smallest recommended profile (19 MiB, two passes):
#: a refused code is checked against each of up to ten unused codes, so one check must stay cheap
#: (about 40 ms here, against 150 ms for the passwords' RFC 9106 profile). A code has 40 random
#: bits, so guessing one from its hash would still take some 2^39 argon2 runs of that size.
_recovery_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
#: Before argon2, a code was stored as the SHA-256 hex of the normalised code, unsalted. Such a hash
#: is upgraded by hashing *it* with argon2 under this prefix (the code itself is not known then).
_WRAPPED_SHA256 = "sha256+"
_LEGACY_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256_recovery_code(code: str) -> str:
    return hashlib.sha256(_normalise_recovery_code(code).encode()).hexdigest()


def _hash_recovery_code(code: str) -> str:
    """The stored form of a new code: argon2id of the normalised code (salted)."""
    return _recovery_hasher.hash(_normalise_recovery_code(code))


def _argon2_matches(stored: str, secret: str) -> bool:
    try:
        return _recovery_hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def _recovery_code_matches(stored: str, code: str) -> bool:
    """Whether ``code`` is the one ``stored`` was made from, in any of the three stored forms."""
    if stored.startswith(_WRAPPED_SHA256):
        return _argon2_matches(stored[len(_WRAPPED_SHA256) :], _sha256_recovery_code(code))
    if _LEGACY_SHA256.fullmatch(stored):
        return hmac.compare_digest(stored, _sha256_recovery_code(code))
    return _argon2_matches(stored, _normalise_recovery_code(code))


def _upgrade_legacy_recovery_codes(user: User) -> None:
    """Replace the person's unsalted SHA-256 code hashes by argon2 of them; the codes keep working.

    Their codes are not known (only the one just typed is), so each old hash is hashed again,
    which leaves no SHA-256 that could be brute-forced from a copy of the database.
    """
    for row in db.session.scalars(select(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user.id)):
        if _LEGACY_SHA256.fullmatch(row.code_hash):
            row.code_hash = _WRAPPED_SHA256 + _recovery_hasher.hash(row.code_hash)
    db.session.flush()


def _new_recovery_codes(user: User, now: datetime) -> list[str]:
    """Replace the person's recovery codes with new ones; returns them (the only time they exist)."""
    db.session.execute(StaffRecoveryCode.__table__.delete().where(StaffRecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)  # 40 bits each; ten of them, each usable once
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(StaffRecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(raw), created_at=now))
    return codes


def _use_recovery_code(user: User, code: str, now: datetime) -> bool:
    """Use up the unused recovery code ``code`` of the person, if it is one; stored as argon2 after.

    argon2 hashes are salted, so the code is checked against each unused code in turn (ten at
    most). The row is then claimed by compare-and-set, so two requests cannot both use it.
    """
    unused = db.session.execute(
        select(StaffRecoveryCode.id, StaffRecoveryCode.code_hash).where(
            StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None)
        )
    ).all()
    match = next((row_id for row_id, stored in unused if _recovery_code_matches(stored, code)), None)
    if match is None:
        return False
    claimed = db.session.execute(
        update(StaffRecoveryCode)
        .where(StaffRecoveryCode.id == match, StaffRecoveryCode.used_at.is_(None))
        .values(used_at=now, code_hash=_hash_recovery_code(code))
    ).rowcount
    return bool(claimed)


def confirm_totp_enrolment(user: User, code: str, now: datetime) -> list[str] | None:
    """Finish enrolment if ``code`` comes from the new authenticator; returns the recovery codes."""
    if user.totp_secret is None or user.totp_confirmed_at is not None:
        return None
    step = _matching_step(decrypt_secret(user.totp_secret), code, now, None)
    if step is None:
        log.warning("Refused an authenticator set-up code for user %s", user.id)
        return None
    user.totp_confirmed_at = now
    user.totp_last_step = step
    codes = _new_recovery_codes(user, now)
    record("staff.2fa_enrolled", agency_id=None, subject=user.email, actor_user_id=user.id)
    db.session.flush()
    log.info("User %s set up the treasury second factor", user.id)
    return codes


SecondFactorResult = Literal["totp", "recovery_code", "refused"]


def verify_second_factor(user: User, code: str, now: datetime) -> SecondFactorResult:
    """Check a TOTP code, or else a recovery code (which is then used up); log a refusal.

    Neither the code nor any part of it is logged.
    """
    if user.totp_secret is None or user.totp_confirmed_at is None:
        return "refused"
    step = _matching_step(decrypt_secret(user.totp_secret), code, now, user.totp_last_step)
    if step is not None:
        # Compare-and-set, so two requests with the same code cannot both pass.
        claimed = db.session.execute(
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
        ).rowcount
        if claimed:
            log.info("User %s passed the treasury second factor", user.id)
            _upgrade_legacy_recovery_codes(user)
            db.session.flush()
            return "totp"
    elif re.fullmatch(r"[0-9a-f]{10}", _normalise_recovery_code(code)):
        used = _use_recovery_code(user, code, now)
        if used:
            log.warning("User %s passed the treasury second factor with a recovery code", user.id)
            record("staff.2fa_recovery_code_used", agency_id=None, subject=user.email, actor_user_id=user.id)
            _upgrade_legacy_recovery_codes(user)
            db.session.flush()
            return "recovery_code"
    log.warning("Refused a treasury second-factor code for user %s", user.id)
    # Never the code itself: only that one was refused, for whom and from where.
    record("staff.2fa_failed", agency_id=None, subject=user.email, actor_user_id=user.id)
    db.session.flush()
    return "refused"


def remaining_recovery_codes(user: User) -> int:
    """How many unused recovery codes the person has left."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(StaffRecoveryCode)
            .where(StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None))
        )
        or 0
    )


def reset_second_factor(user: User) -> None:
    """Forget the person's authenticator and recovery codes: they enrol again at the next sign-in."""
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    db.session.execute(StaffRecoveryCode.__table__.delete().where(StaffRecoveryCode.user_id == user.id))
    record("staff.2fa_reset", agency_id=None, subject=user.email)
    db.session.flush()
    log.warning("The treasury second factor of user %s was reset", user.id)


def reset_second_factor_by_email(email: str) -> User:
    """`flask treasury reset-2fa`: the person enrols an authenticator again at the next sign-in."""
    user = user_by_email(email)
    if user is None:
        raise TreasuryError(f"There is no account with the address {email}.")
    reset_second_factor(user)
    return user
