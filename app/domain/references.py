"""ISO 11649 "RF" structured creditor references.

An RF reference is "RF", two check digits and 1–21 Latin letters or digits.
Validation and formatting come from python-stdnum (stdnum.iso11649); it does not
generate references, so the check digits come from its ISO 7064 Mod 97-10 helper
rather than from arithmetic written here.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from stdnum import iso11649
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.iso7064 import mod_97_10

__all__ = [
    "readable_code",
    "InvalidReference",
    "build_rf",
    "format_rf",
    "is_valid_rf",
    "normalise_rf",
    "rf_for_debt",
]

#: The longest payload ISO 11649 allows after "RF" and the two check digits.
MAX_PAYLOAD_LENGTH = 21
#: Characters of an agency code kept at the front of a generated reference.
AGENCY_PART_LENGTH = 6
#: Hash characters used when a debt's identifier is too long to fit as it is.
HASH_PART_LENGTH = 15

# re.ASCII because str.isalnum() and int(x, 36) also accept Greek letters and
# Arabic-Indic digits, which banks' systems would not.
_PAYLOAD = re.compile(r"[0-9A-Z]{1,21}", re.ASCII)
_COMPACT_RF = re.compile(r"RF[0-9]{2}[0-9A-Z]{1,21}", re.ASCII)
_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Za-z]", re.ASCII)
_BASE36_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class InvalidReference(ValueError):
    """A payment reference that is not a valid ISO 11649 RF reference; str() is a sentence."""


def build_rf(payload: str) -> str:
    """Return the compact RF reference ("RF" + check digits + payload) for a 1–21 character payload."""
    if not isinstance(payload, str):
        raise TypeError(f"A reference payload is text, not {payload!r}.")
    compact = payload.replace(" ", "").replace("-", "").upper()
    if not compact:
        raise InvalidReference("A payment reference needs at least one letter or digit.")
    if len(compact) > MAX_PAYLOAD_LENGTH:
        raise InvalidReference(
            f"A payment reference can carry at most {MAX_PAYLOAD_LENGTH} letters or digits, "
            f"but {len(compact)} were given."
        )
    if not _PAYLOAD.fullmatch(compact):
        raise InvalidReference("A payment reference may contain only Latin letters (A–Z) and digits.")
    # ISO 11649 checks the payload followed by "RF" and the check digits, so
    # that is the string whose Mod 97-10 check digits we ask for.
    return "RF" + mod_97_10.calc_check_digits(compact + "RF") + compact


def normalise_rf(value: str) -> str:
    """Return the reference compact and upper-case, or raise InvalidReference if it is not valid."""
    if not isinstance(value, str):
        raise TypeError(f"A payment reference is text, not {value!r}.")
    compact = iso11649.compact(value)
    if not compact:
        raise InvalidReference("Please enter the payment reference, which starts with RF.")
    if not compact.startswith("RF"):
        raise InvalidReference("An RF payment reference starts with the letters RF.")
    if not 5 <= len(compact) <= 4 + MAX_PAYLOAD_LENGTH:
        raise InvalidReference(
            "An RF payment reference has between 5 and 25 characters: RF, two check digits "
            "and up to 21 letters or digits."
        )
    if not _COMPACT_RF.fullmatch(compact):
        raise InvalidReference(
            "An RF payment reference has two digits after RF, then only Latin letters (A–Z) and digits."
        )
    try:
        iso11649.validate(compact)
    except InvalidChecksum:
        raise InvalidReference(
            "This RF payment reference contains a typing mistake: its check digits do not match."
        ) from None
    except ValidationError:  # pragma: no cover - the checks above already refuse these
        raise InvalidReference("This is not a valid RF payment reference.") from None
    # 00, 01 and 99 pass the modulo test (they equal 97, 98 and 02 mod 97) but
    # ISO 11649 issues only 02–98; accepting them would let two spellings name one debt.
    if compact[2:4] in {"00", "01", "99"}:
        raise InvalidReference("This RF payment reference contains a typing mistake: its check digits do not match.")
    return compact


def is_valid_rf(value: str) -> bool:
    """Whether the value is a valid RF reference (spaces and dashes allowed)."""
    if not isinstance(value, str):
        return False
    try:
        normalise_rf(value)
    except InvalidReference:
        return False
    return True


#: Letters as ISO 7064 reads them (A=10 … Z=35), for the check of a stored reference.
_AS_DIGITS = str.maketrans({chr(code): str(code - 55) for code in range(ord("A"), ord("Z") + 1)})


def format_rf(value: str) -> str:
    """Return the reference printed in groups of four, e.g. "RF18 5390 0754 7034"."""
    # Pages print every debt's stored (compact, valid) reference: checked here with one integer
    # modulo instead of the full normalising below, which anything else still goes through.
    if (
        isinstance(value, str)
        and _COMPACT_RF.fullmatch(value)
        and value[2:4] not in {"00", "01", "99"}
        and int((value[4:] + value[:4]).translate(_AS_DIGITS)) % 97 == 1
    ):
        compact = value
    else:
        compact = normalise_rf(value)
    return " ".join(compact[index : index + 4] for index in range(0, len(compact), 4))


def _alphanumerics(text: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", text).upper()


def _base36_hash(text: str) -> str:
    number = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    digits = []
    while number:
        number, digit = divmod(number, 36)
        digits.append(_BASE36_DIGITS[digit])
    return "".join(reversed(digits)) or "0"


def rf_for_debt(agency_code: str, external_id: str) -> str:
    """Return the deterministic RF reference of an agency's debt, given its ERP identifier."""
    # The reference must be the same on every sync, so it is derived from the
    # ERP identifier rather than stored from a counter. The agency part keeps
    # references of different agencies apart; the identifier keeps debts of one
    # agency apart and, when it fits, stays readable for the treasury.
    # Caveat: ASCII identifiers differing only in case or punctuation ("12-3",
    # "1-23") give the same short reference, so callers store it under a unique
    # constraint per agency.
    agency = _alphanumerics(agency_code)[:AGENCY_PART_LENGTH]
    if not agency:
        raise InvalidReference("The agency code must contain at least one Latin letter or digit.")
    identifier = _alphanumerics(external_id)
    if not identifier:
        raise InvalidReference("The debt's identifier must contain at least one Latin letter or digit.")
    payload = agency + identifier
    # Greek letters are information, not punctuation: dropping them would give
    # series "Α/2024/7" and "Β/2024/7" the same reference, so such ids are hashed.
    loses_letters = any(character.isalnum() and not character.isascii() for character in external_id)
    if len(payload) > MAX_PAYLOAD_LENGTH or loses_letters:
        # ISO 11649 allows only 21 characters; cutting the identifier would make
        # long identifiers sharing a prefix collide, whereas 15 base-36 characters
        # of a SHA-256 (about 75 bits) keep them apart at any municipal scale.
        # The hash is of the identifier as given, so case and punctuation count.
        payload = agency + _base36_hash(external_id)[:HASH_PART_LENGTH]
    return build_rf(payload)


#: Characters of codes people read out (receipts, tickets): no look-alikes such as 0/O and 1/I.
READABLE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def readable_code(prefix: str) -> str:
    """A random code such as ``CP-7KQ2-M9XA-3F``: the prefix, then 10 characters (50 bits) in groups."""
    chars = "".join(secrets.choice(READABLE_ALPHABET) for _ in range(10))
    return f"{prefix}-{chars[:4]}-{chars[4:8]}-{chars[8:]}"
