"""Vehicle plates: Greek and Latin look-alike letters, spaces and dashes give one spelling."""

from __future__ import annotations

import pytest

from app.domain.plates import normalise_plate


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("ΙΚΑ 1234", "IKA1234"),  # Greek capitals, as on the plate
        ("IKA-1234", "IKA1234"),  # Latin capitals with a dash
        ("ika1234", "IKA1234"),  # Latin, lower case
        ("ικα 1234", "IKA1234"),  # Greek, lower case
        ("ΙKΑ 1234", "IKA1234"),  # mixed alphabets in one plate
        (" ΥΡΝ – 5820 ", "YPN5820"),  # en dash and stray spaces
        ("Ά Β Ε-1", "ABE1"),  # accents from a phone keyboard
        ("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX"),  # every letter Greek plates use
        ("ΧΡΗ\u00a01234", "XPH1234"),  # a no-break space
        ("ΖΖΖ.9999", "ZZZ9999"),
    ],
)
def test_look_alike_spellings_of_one_plate_become_the_same(typed: str, normalised: str) -> None:
    assert normalise_plate(typed) == normalised


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("ΓΚΑ 1234", "GKA 1234"),  # Γ is not G: no Greek plate uses it, and it must not match
        ("ΙΚΑ 1234", "IKA 1235"),
        ("ΠΚΑ 1234", "NKA 1234"),
    ],
)
def test_different_plates_stay_different(left: str, right: str) -> None:
    assert normalise_plate(left) != normalise_plate(right)


def test_empty_and_non_text() -> None:
    assert normalise_plate("  - ") == ""
    with pytest.raises(TypeError):
        normalise_plate(None)  # type: ignore[arg-type]
