"""Vehicle registration plates as typed by people: one spelling per plate.

Greek plates use only the capital letters that look like Latin ones (Α, Β, Ε, Ζ, Η, Ι, Κ, Μ, Ν,
Ο, Ρ, Τ, Υ, Χ), so "ΙΚΑ 1234" typed on a Greek keyboard and "IKA-1234" typed on a Latin one
name the same car. Both become "IKA1234".
"""

from __future__ import annotations

import unicodedata

__all__ = ["GREEK_TO_LATIN", "normalise_plate"]

#: Greek capitals that plates use, mapped to the Latin capital they look like.
GREEK_TO_LATIN = str.maketrans(
    {
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
    }
)

#: Separators people put between the letters and the digits of a plate.
_SEPARATORS = str.maketrans("", "", " -\u00a0\u2010\u2011\u2012\u2013\u2014.·")


def _without_accents(text: str) -> str:
    # Phone keyboards add tonos easily (Ά, Ή); plates never carry accents.
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def normalise_plate(value: str) -> str:
    """The plate in one canonical spelling: upper case, no separators, Greek look-alikes as Latin."""
    if not isinstance(value, str):
        raise TypeError(f"A vehicle plate is text, not {value!r}.")
    compact = _without_accents(unicodedata.normalize("NFKC", value)).upper().translate(_SEPARATORS)
    return "".join(compact.split()).translate(GREEK_TO_LATIN)
