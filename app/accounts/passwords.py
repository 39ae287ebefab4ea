"""The password policy, after NIST SP 800-63B (section 3.1.1.2): length, not composition.

A password is refused only for reasons a person can act on, each given as one sentence: too
short, too long, on the list of common passwords, a repeated or sequential pattern, or built
on the e-mail address. There are no rules about digits, capitals or symbols, and no expiry.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from app.i18n import gettext, ngettext

#: Longer passwords are refused so hashing cost stays bounded; 128 leaves room for passphrases.
MAX_LENGTH = 128
#: Parts of an e-mail address shorter than this are too ordinary to forbid inside a password.
_SHORTEST_CONTEXT_WORD = 3
_COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


@cache
def common_passwords() -> frozenset[str]:
    """The refused common passwords, lower-case (read once)."""
    lines = _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, *, email: str | None, min_length: int) -> str | None:
    """The sentence saying why ``password`` is refused, or None when it is acceptable."""
    if len(password) < min_length:
        return ngettext(
            "Choose a password of at least %(num)d character.",
            "Choose a password of at least %(num)d characters.",
            min_length,
        )
    if len(password) > MAX_LENGTH:
        return gettext("Choose a password of at most %(max)d characters.", max=MAX_LENGTH)
    folded = password.casefold()
    if folded in common_passwords():
        return gettext(
            "This password is one of the most common ones, which others try first. "
            "Choose another, for example three or four unrelated words."
        )
    if _is_pattern(folded):
        return gettext(
            "This password is a repeated or sequential pattern that is easy to guess. "
            "Choose another, for example three or four unrelated words."
        )
    if email and _contains_email(folded, email.casefold()):
        return gettext("Your password must not contain your e-mail address or the part before the @.")
    return None


def _contains_email(password: str, email: str) -> bool:
    local_part = email.rpartition("@")[0] or email
    return len(local_part) >= _SHORTEST_CONTEXT_WORD and local_part in password


def _is_pattern(password: str) -> bool:
    """A short unit repeated ("abcabcabcabc", "aaaaaaaaaaaa") or a run along a sequence."""
    for unit in range(1, 4):
        if len(password) >= 2 * unit and password == (password[:unit] * len(password))[: len(password)]:
            return True
    for sequence in _SEQUENCES:
        for ordered in (sequence * 3, sequence[::-1] * 3):
            if password in ordered:
                return True
    return False
