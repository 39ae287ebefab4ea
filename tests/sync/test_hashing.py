"""The content hash: equal records hash alike, records that differ in any value the ERP gives do not."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest

from app.sync.hashing import EARLIER_HASHES, HASH_PREFIX, canonical_json, content_hash, marshal_content_hash
from erp_connectors.base import InstallmentRecord, record_to_dict
from tests.sync.helpers import AFM, NOW, demo_records, record

SETTLED = record(
    "S-1",
    category="settled",
    description='Ρύθμιση σε 2 δόσεις: "ΤΑΠ"\\ \t\u2028',
    contact_email="maria@example.org",
    installments=(InstallmentRecord(1, date(2026, 1, 31), 6000), InstallmentRecord(2, date(2026, 2, 28), 6000, 6000)),
)


def json_of(item: object) -> str:
    """The canonical JSON the hash is taken of, as the json module writes it."""
    data = record_to_dict(item)  # type: ignore[arg-type]
    data.pop("updated_at", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("item", [record("A-1", tax_id=AFM), SETTLED, *demo_records(debtors=40)[::7]])
def test_the_hash_is_blake2b_128_of_the_records_canonical_json(item: object) -> None:
    assert canonical_json(item) == json_of(item)  # type: ignore[arg-type]
    digest = hashlib.blake2b(json_of(item).encode("utf-8"), digest_size=16).hexdigest()
    assert content_hash(item) == HASH_PREFIX + digest  # type: ignore[arg-type]


def test_the_hash_of_a_record_is_the_same_on_every_python_and_machine() -> None:
    # Written down once: a Python or a library that hashed differently would make every debt "changed".
    assert content_hash(record("A-1", tax_id=AFM)) == "j1:e6c861cb100fdfc4b328b48aa104b0b3"
    assert content_hash(SETTLED) == "j1:e99f8931934ae20f759beda9f211e6b4"


def test_the_stored_form_is_told_apart_from_every_earlier_form() -> None:
    digest = content_hash(record("A-1", tax_id=AFM))
    assert digest.startswith("j1:") and len(digest) == 35 and int(digest[3:], 16) >= 0
    assert len(digest) not in EARLIER_HASHES
    assert len(marshal_content_hash(record("A-1", tax_id=AFM))) == 32  # the form before, 32 hex digits


@pytest.mark.parametrize(
    "changed",
    [
        {"description": "Other"},
        {"principal_minor": 12001},
        {"due_date": date(2026, 2, 1)},
        {"status": "paid"},
        {"contact_email": "someone@example.org"},
        {"vehicle_plate": "None"},
        {"debtor_name": "Άλλος"},
        {"rf_reference": "RF18539007547034"},
        {"installments": (InstallmentRecord(1, date(2026, 1, 31), 12000),)},
        {"external_id": "A-2"},
        {"tax_id": "159024173"},
        {"tax_country": "CY"},
        {"category": "uncertified"},
        {"kind": "water_bill"},
        {"paid_minor": 1},
        {"currency": "USD"},
        {"contact_phone": "+306900000000"},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_the_content_hash_changes_with_every_field_but_the_update_time(changed: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **changed)) != content_hash(base)
    assert content_hash(replace(base, updated_at=NOW)) == content_hash(base)


def test_the_content_hash_changes_with_every_installment_value_and_their_order() -> None:
    first, second = SETTLED.installments
    variants = [
        (replace(first, number=3), second),
        (replace(first, due_date=date(2026, 2, 1)), second),
        (replace(first, amount_minor=6001), second),
        (replace(first, paid_minor=1), second),
        (second, first),
        (first,),
        (first, second, second),
    ]
    hashes = {content_hash(replace(SETTLED, installments=installments)) for installments in variants}
    assert len(hashes) == len(variants) and content_hash(SETTLED) not in hashes


@pytest.mark.parametrize(
    "a, b",
    [
        ({"principal_minor": 5}, {"principal_minor": "5"}),
        ({"principal_minor": 5}, {"principal_minor": 5.0}),
        ({"principal_minor": 1}, {"principal_minor": True}),
        ({"principal_minor": 5}, {"principal_minor": Decimal(5)}),
        ({"vehicle_plate": None}, {"vehicle_plate": "None"}),
        ({"vehicle_plate": None}, {"vehicle_plate": "null"}),
        ({"due_date": date(2026, 1, 31)}, {"due_date": "2026-01-31"}),
        ({"due_date": date(2026, 1, 31)}, {"due_date": datetime(2026, 1, 31)}),
        ({"description": "a", "kind": "bc"}, {"description": "ab", "kind": "c"}),
        ({"description": 'a","kind":"b'}, {"description": "a", "kind": "b"}),
        (
            {"installments": (InstallmentRecord(1, date(2026, 1, 31), 4000),)},
            {"installments": (InstallmentRecord(1, date(2026, 1, 31), "4000"),)},  # type: ignore[arg-type]
        ),
        (
            {"installments": (InstallmentRecord(1, date(2026, 1, 31), 4000),)},
            {"installments": (InstallmentRecord(1, "2026-01-31", 4000),)},  # type: ignore[arg-type]
        ),
    ],
    ids=[
        "int-or-text",
        "int-or-float",
        "int-or-bool",
        "int-or-decimal",
        "none-or-text",
        "none-or-null-text",
        "date-or-text",
        "date-or-datetime",
        "boundary",
        "quote-in-text",
        "installment-int-or-text",
        "installment-date-or-text",
    ],
)
def test_the_content_hash_tells_apart_values_that_print_alike(a: dict, b: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **a)) != content_hash(replace(base, **b))


def test_the_content_hash_depends_on_the_values_not_on_which_objects_hold_them() -> None:
    shared = "".join(["EC-", "1"])
    same_object = record(shared, tax_id=AFM, description=shared)
    equal_objects = record("".join(["EC-", "1"]), tax_id=AFM, description="".join(["EC", "-1"]))
    assert content_hash(same_object) == content_hash(equal_objects)
    assert content_hash(replace(SETTLED, installments=list(SETTLED.installments))) == content_hash(SETTLED)


@pytest.mark.parametrize(
    "odd",
    [
        {"due_date": "31/01/2026"},
        {"description": 12},
        {"debtor_name": None},
        {"installments": ({"number": 1},)},
        {"description": "lone \ud800 surrogate"},
        {"principal_minor": [5]},
    ],
    ids=["text-date", "int-description", "no-name", "dict-installment", "lone-surrogate", "list-amount"],
)
def test_a_record_of_other_types_than_declared_still_gets_a_hash_of_its_own(odd: dict) -> None:
    base = record("A-1", tax_id=AFM)
    digest = content_hash(replace(base, **odd))
    assert digest.startswith(HASH_PREFIX) and len(digest) == 35
    assert digest == content_hash(replace(base, **odd)) != content_hash(base)
