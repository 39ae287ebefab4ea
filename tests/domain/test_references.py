"""Tests for app.domain.references: ISO 11649 RF creditor references.

Check digits in the comments are worked by hand the ISO 11649 way: move "RF" and
the check digits behind the payload, write letters as numbers (A=10 … Z=35,
so R=27, F=15), and the number must be 1 mod 97; to build, use "00" as check
digits and take 98 minus the remainder.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from stdnum import iso11649

from app.domain import references as references_module
from app.domain.references import (
    InvalidReference,
    build_rf,
    format_rf,
    is_valid_rf,
    normalise_rf,
    rf_for_debt,
)

ISO_EXAMPLE = "RF18539007547034"  # the example printed in ISO 11649 as "RF18 5390 0754 7034"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # 539007547034 27 15 00 mod 97 = 80 → 98 - 80 = 18: the ISO example.
        ("539007547034", ISO_EXAMPLE),
        # "1" R F 00 → 1271500; 97 × 13108 = 1271476, remainder 24 → 98 - 24 = 74.
        ("1", "RF741"),
        # "A" R F 00 → 10 27 15 00 = 10271500; 97 × 105891 = 10271427, remainder 73 → 25.
        ("A", "RF25A"),
        # D=13 E=14 M=22 O=24: 13142224 0001 27 15 00 mod 97 = 65 → 98 - 65 = 33.
        ("DEMO0001", "RF33DEMO0001"),
        # Lower case, spaces and dashes are tidied before the check digits are worked out.
        (" demo-0001 ", "RF33DEMO0001"),
        # "36" R F 00 → 36271500 = 97 × 373933 - 1, remainder 96 → 98 - 96 = 02.
        ("36", "RF0236"),
        # 21 characters, the most ISO 11649 allows: 1 followed by 20 zeros, then R F 00, is
        # 10**26 + 271500. 10**2 ≡ 3 (mod 97), so 10**26 ≡ 3**13 ≡ 31; 271500 ≡ 94;
        # 31 + 94 = 125 ≡ 28 → 98 - 28 = 70.
        ("1" + "0" * 20, "RF70" + "1" + "0" * 20),
    ],
)
def test_build_rf(payload, expected):
    assert build_rf(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "  - ",  # nothing left after tidying
        "A" * 22,  # one over the 21-character limit
        "ΑΒΓ",  # Greek capitals look Latin but are not
        "AB_C",
        "AB.C",  # only spaces and dashes are tidied away
        "12\u0663",  # an Arabic-Indic digit, which int(x, 36) would accept
    ],
)
def test_build_rf_refuses(payload):
    with pytest.raises(InvalidReference):
        build_rf(payload)


def test_build_rf_error_is_a_sentence():
    with pytest.raises(InvalidReference) as caught:
        build_rf("A" * 22)
    assert str(caught.value) == "A payment reference can carry at most 21 letters or digits, but 22 were given."
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RF18 5390 0754 7034", ISO_EXAMPLE),
        ("rf18539007547034", ISO_EXAMPLE),
        ("RF18-5390-0754-7034", ISO_EXAMPLE),
        ("  RF18 5390 0754 7034  ", ISO_EXAMPLE),
        # Y = 34, so "...70Y" reads as the same digits as "...7034": valid with the same check digits.
        ("RF18 5390 0754 70Y", "RF185390075470Y"),
        ("RF741", "RF741"),
        ("RF25A", "RF25A"),
        ("RF33 DEMO 0001", "RF33DEMO0001"),
    ],
)
def test_normalise_rf_accepts_valid_references(value, expected):
    assert normalise_rf(value) == expected
    assert is_valid_rf(value) is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Please enter the payment reference, which starts with RF."),
        ("XX18539007547034", "An RF payment reference starts with the letters RF."),
        ("RF18", "An RF payment reference has between 5 and 25 characters"),
        ("RF18" + "1" * 22, "An RF payment reference has between 5 and 25 characters"),
        ("RF1A539007547034", "two digits after RF"),
        ("RF18 5390 0754 703Ω", "only Latin letters"),
        # Wrong check digits: the ISO example with 17 instead of 18.
        ("RF17 5390 0754 7034", "typing mistake"),
        # A typo in the payload: ...7035 changes the remainder, 18 no longer fits.
        ("RF18 5390 0754 7035", "typing mistake"),
        # Two digits swapped.
        ("RF18 5390 0754 7043", "typing mistake"),
    ],
)
def test_normalise_rf_refuses_with_a_sentence(value, message):
    with pytest.raises(InvalidReference, match=message):
        normalise_rf(value)
    assert is_valid_rf(value) is False


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        # 36 R F 99 = 36271599 = 36271500 + 99 ≡ 96 + 99 = 195 ≡ 1 (mod 97): the modulo test
        # passes, yet only RF0236 is ever issued for the payload "36".
        ("RF9936", "RF0236"),
        # "54" builds with 98 (5427 1500 ≡ 0); 01 ≡ 98 (mod 97).
        ("RF0154", "RF9854"),
        # "72" builds with 97 (7227 1500 ≡ 1); 00 ≡ 97 (mod 97).
        ("RF0072", "RF9772"),
    ],
)
def test_non_canonical_check_digits_are_refused(alias, canonical):
    # stdnum alone would accept both spellings, which would let two strings name one debt.
    assert iso11649.is_valid(alias)
    assert build_rf(canonical[4:]) == canonical
    assert is_valid_rf(canonical) is True
    assert is_valid_rf(alias) is False
    with pytest.raises(InvalidReference, match="typing mistake"):
        normalise_rf(alias)


@pytest.mark.parametrize("value", [None, 18539007547034, b"RF18539007547034"])
def test_is_valid_rf_is_false_for_non_text(value):
    assert is_valid_rf(value) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ISO_EXAMPLE, "RF18 5390 0754 7034"),
        ("rf18-5390-0754-7034", "RF18 5390 0754 7034"),
        ("RF741", "RF74 1"),
        ("RF33DEMO0001", "RF33 DEMO 0001"),
        ("RF185390075470Y", "RF18 5390 0754 70Y"),
    ],
)
def test_format_rf_groups_of_four(value, expected):
    assert format_rf(value) == expected


def test_format_rf_refuses_invalid():
    with pytest.raises(InvalidReference):
        format_rf("RF17 5390 0754 7034")


@pytest.mark.parametrize(
    "payload",
    ["1", "A", "Z9", "DEMO0001", "2024000123", "ATHENS2024INV00000001", "9" * 21, "0"],
)
def test_build_then_validate_round_trip(payload):
    reference = build_rf(payload)
    assert reference == normalise_rf(reference)
    assert reference.endswith(payload)
    assert 5 <= len(reference) <= 25
    # What is printed on a bill reads back to the same reference.
    assert normalise_rf(format_rf(reference)) == reference
    assert iso11649.is_valid(reference)


# -- rf_for_debt --------------------------------------------------------------


@pytest.mark.parametrize(
    ("agency_code", "external_id", "expected"),
    [
        # Payload DEMOINV0001: D13 E14 M22 O24 I18 N23 V31 0001 R27 F15 00 mod 97 = 1 → 97.
        ("DEMO", "INV-0001", "RF97DEMOINV0001"),
        # Case and punctuation are dropped: the same payload, so the same reference.
        ("demo", "inv/0001", "RF97DEMOINV0001"),
        # The agency part keeps at most six characters: "athens-01" → "ATHENS".
        ("athens-01", "7", build_rf("ATHENS7")),
        # 4 + 17 = 21 characters still fit as they are.
        ("DEMO", "1" * 17, build_rf("DEMO" + "1" * 17)),
    ],
)
def test_rf_for_debt_readable_when_it_fits(agency_code, external_id, expected):
    assert rf_for_debt(agency_code, external_id) == expected
    assert is_valid_rf(expected)


def _hash_part(external_id: str) -> str:
    # Independent of the module's own base-36 writer: the 15 leading base-36
    # digits of N are N // 36**(L-15), L being N's number of base-36 digits.
    number = int.from_bytes(hashlib.sha256(external_id.encode("utf-8")).digest(), "big")
    length = 1
    while 36**length <= number:
        length += 1
    return number // 36 ** (length - 15)


@pytest.mark.parametrize(
    ("agency_code", "external_id"),
    [
        ("DEMO", "1" * 18),  # 4 + 18 = 22: one too many, so hashed
        ("athens-01", "2024/000123/ΒΕΒΑΙΩΤΙΚΟΣ-ΚΑΤΑΛΟΓΟΣ-0001"),
        # Short, but its Greek series letter would be lost by keeping only A–Z and 0–9.
        ("DEMO", "Α/2024/7"),
        ("X", "INV-" + "9" * 100),
    ],
)
def test_rf_for_debt_hashes_long_identifiers(agency_code, external_id):
    reference = rf_for_debt(agency_code, external_id)
    agency = "".join(ch for ch in agency_code.upper() if ch.isascii() and ch.isalnum())[:6]
    payload = reference[4:]
    assert is_valid_rf(reference)
    assert len(payload) == len(agency) + 15 <= 21
    assert payload.startswith(agency)
    assert int(payload[len(agency) :], 36) == _hash_part(external_id)


def test_rf_for_debt_is_deterministic_and_tells_debts_apart():
    first = rf_for_debt("DEMO", "INV-0001")
    assert rf_for_debt("DEMO", "INV-0001") == first
    assert rf_for_debt("DEMO", "INV-0002") != first
    assert rf_for_debt("OTHER", "INV-0001") != first
    # Greek series letters keep debts apart even though they cannot appear in the reference.
    assert rf_for_debt("DEMO", "Α/2024/7") != rf_for_debt("DEMO", "Β/2024/7")
    long_prefix = "2024-" + "0" * 30
    # Long identifiers that share a prefix longer than the room left must still differ.
    assert rf_for_debt("DEMO", long_prefix + "1") != rf_for_debt("DEMO", long_prefix + "2")
    assert rf_for_debt("DEMO", long_prefix + "1") == rf_for_debt("DEMO", long_prefix + "1")


@pytest.mark.parametrize(
    ("agency_code", "external_id", "message"),
    [
        ("", "INV-1", "agency code"),
        ("ΔΗΜΟΣ", "INV-1", "agency code"),  # no Latin letters to keep
        ("DEMO", "", "identifier"),
        ("DEMO", "---", "identifier"),
    ],
)
def test_rf_for_debt_refuses_empty_parts(agency_code, external_id, message):
    with pytest.raises(InvalidReference, match=message):
        rf_for_debt(agency_code, external_id)


def test_module_is_pure():
    tree = ast.parse(Path(references_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    # Domain rules must run without a web app or a database.
    assert imported.isdisjoint({"flask", "flask_babel", "flask_sqlalchemy", "sqlalchemy", "werkzeug"})


def test_readable_codes_have_the_prefix_and_no_look_alike_characters() -> None:
    from app.domain.references import READABLE_ALPHABET, readable_code

    codes = {readable_code("TK") for _ in range(200)}
    assert len(codes) == 200  # 50 bits: no repeats in a small sample
    for code in codes:
        prefix, *groups = code.split("-")
        assert prefix == "TK" and [len(group) for group in groups] == [4, 4, 2]
        assert set("".join(groups)) <= set(READABLE_ALPHABET)
        assert not set("".join(groups)) & set("01OI")
