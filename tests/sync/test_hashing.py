"""The content hash: equal records hash alike, records that differ in any value the ERP gives do not."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from app.sync.hashing import content_hash
from erp_connectors.base import InstallmentRecord
from tests.sync.helpers import AFM, NOW, record


@pytest.mark.parametrize(
    "changed",
    [
        {"description": "Other"}, {"principal_minor": 12001}, {"due_date": date(2026, 2, 1)}, {"status": "paid"},
        {"contact_email": "someone@example.org"}, {"vehicle_plate": "None"}, {"debtor_name": "Άλλος"},
        {"rf_reference": "RF18539007547034"}, {"installments": (InstallmentRecord(1, date(2026, 1, 31), 12000),)},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_the_content_hash_changes_with_every_field_but_the_update_time(changed: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **changed)) != content_hash(base)
    assert content_hash(replace(base, updated_at=NOW)) == content_hash(base)


@pytest.mark.parametrize(
    "a, b",
    [
        ({"principal_minor": 5}, {"principal_minor": "5"}),
        ({"vehicle_plate": None}, {"vehicle_plate": "None"}),
        ({"description": "a", "kind": "bc"}, {"description": "ab", "kind": "c"}),
    ],
    ids=["int-or-text", "none-or-text", "boundary"],
)
def test_the_content_hash_tells_apart_values_that_print_alike(a: dict, b: dict) -> None:
    base = record("A-1", tax_id=AFM)
    assert content_hash(replace(base, **a)) != content_hash(replace(base, **b))


def test_the_content_hash_depends_on_the_values_not_on_which_objects_hold_them() -> None:
    shared = "".join(["EC-", "1"])
    same_object = record(shared, tax_id=AFM, description=shared)
    equal_objects = record("".join(["EC-", "1"]), tax_id=AFM, description="".join(["EC", "-1"]))
    assert content_hash(same_object) == content_hash(equal_objects)


def test_a_record_marshal_cannot_write_still_gets_a_hash_of_its_own() -> None:
    base = record("A-1", tax_id=AFM)
    odd = replace(base, due_date="31/01/2026")  # not a date: such a record is quarantined
    assert len(content_hash(odd)) == 32
    assert content_hash(odd) != content_hash(replace(base, due_date="01/02/2026"))

