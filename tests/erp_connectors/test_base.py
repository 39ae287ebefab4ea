"""Tests for the ERP contract: record checks, the error item, and the dict form."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from erp_connectors.base import (
    AckRejected,
    DebtRecord,
    ERPConnector,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    payment_ack_from_dict,
    payment_ack_to_dict,
    record_from_dict,
    record_to_dict,
    validate_record,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: a valid AFM (stem 12345678 plus its check digit)
VALID_AFM = "123456783"


def make_record(**changes: Any) -> DebtRecord:
    """A record that passes every check, with the given fields replaced."""
    record = DebtRecord(
        external_id="EC-2026-000123",
        tax_id=VALID_AFM,
        tax_country="GR",
        debtor_name="Ελένη Γεωργίου",
        category="certified",
        kind="property_fee",
        description="ΤΑΠ, οδός Αιγαίου 14",
        principal_minor=18_640,
        paid_minor=4_000,
        currency="EUR",
        due_date=date(2026, 1, 31),
        rf_reference="RF18539007547034",
    )
    return replace(record, **changes)


def make_settled_record(**changes: Any) -> DebtRecord:
    """A settled record of 3 installments, the first paid, that passes every check."""
    record = make_record(
        category="settled",
        principal_minor=30_001,
        paid_minor=10_001,
        installments=(
            InstallmentRecord(1, date(2026, 1, 31), 10_001, paid_minor=10_001),
            InstallmentRecord(2, date(2026, 3, 2), 10_000),
            InstallmentRecord(3, date(2026, 4, 1), 10_000),
        ),
    )
    return replace(record, **changes)


def test_good_records_have_no_problems() -> None:
    assert validate_record(make_record()) == []
    assert validate_record(make_settled_record()) == []
    assert validate_record(make_record(rf_reference=None, paid_minor=0, principal_minor=0)) == []


def test_outstanding_is_principal_minus_paid() -> None:
    assert make_record(principal_minor=18_640, paid_minor=4_000).outstanding_minor == 14_640


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"principal_minor": -500}, "principal is negative"),
        ({"principal_minor": 186.40}, "principal 186.4 is not a whole number"),
        ({"paid_minor": -1}, "paid amount is negative"),
        ({"paid_minor": 18_641}, "exceeds the principal"),
        ({"paid_minor": True}, "paid amount True is not a whole number"),
        ({"category": "overdue"}, "category 'overdue' is unknown"),
        ({"status": "archived"}, "status 'archived' is unknown"),
        ({"kind": "Property Fee"}, "not a lowercase slug"),
        ({"currency": "eur"}, "not an ISO 4217 code"),
        ({"tax_id": "123456789"}, "fails its check digit"),
        ({"tax_id": "EL123456783"}, "must be 9 digits without the EL/GR prefix"),
        ({"tax_id": "12345678"}, "must be 9 digits"),
        ({"tax_id": ""}, "tax id is empty"),
        ({"tax_country": "Greece"}, "not an ISO 3166 code"),
        ({"external_id": ""}, "external id is empty"),
        ({"external_id": "   "}, "external id is empty"),
        ({"debtor_name": ""}, "debtor name is empty"),
        ({"rf_reference": "RF17539007547034"}, "not a valid ISO 11649"),
        ({"rf_reference": "RF18 5390 0754 7034"}, "compact form"),
        (
            {"installments": (InstallmentRecord(1, date(2026, 1, 31), 18_640, paid_minor=4_000),)},
            "Only settled debts have installments; this certified debt has 1",
        ),
        ({"due_date": "2026-01-31"}, "is not a date"),
    ],
)
def test_validate_record_reports_each_problem(changes: dict[str, Any], expected: str) -> None:
    problems = validate_record(make_record(**changes))
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("change_installments", "expected"),
    [
        (lambda items: (), "must list its installments"),
        (lambda items: items[:2], "add up to 20001 minor units but the principal is 30001"),
        (lambda items: (items[0], replace(items[1], number=3), replace(items[2], number=2)), "numbered [1, 3, 2]"),
        (lambda items: (items[0], items[2], items[1]), "numbered [1, 3, 2]"),
        (lambda items: (replace(items[0], amount_minor=0), *items[1:]), "not a positive whole number"),
        (lambda items: (replace(items[0], paid_minor=10_002), *items[1:]), "paid amount outside 0 to 10001"),
        (lambda items: (replace(items[0], paid_minor=0), *items[1:]), "record 0 minor units paid"),
        (lambda items: (items[0], replace(items[1], due_date=date(2026, 1, 1)), items[2]), "not in order"),
    ],
)
def test_validate_record_checks_installments(change_installments: Any, expected: str) -> None:
    record = make_settled_record()
    problems = validate_record(replace(record, installments=change_installments(record.installments)))
    assert any(expected in problem for problem in problems), problems


def test_validate_record_lists_every_problem_at_once() -> None:
    problems = validate_record(make_record(external_id="", tax_id="000000001", paid_minor=99_999, currency="€"))
    assert len(problems) == 4


def test_other_countries_only_need_a_tax_id() -> None:
    assert validate_record(make_record(tax_country="CY", tax_id="10259033P")) == []
    assert validate_record(make_record(tax_country="CY", tax_id=" ")) == ["The tax id is empty."]


def test_record_error_carries_reason_and_raw_payload() -> None:
    raw = {"external_id": "EC-1", "principal_minor": "12,50"}
    error = RecordError("The field 'principal_minor' should be a whole number.", raw)
    assert error.reason == str(error) == "The field 'principal_minor' should be a whole number."
    assert error.raw is raw
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.raw) == (error.reason, raw)


def test_dict_form_round_trips_through_json() -> None:
    for record in (make_record(), make_settled_record(vehicle_plate="ΙΚΑ 1234", contact_email="a@example.org")):
        payload = json.loads(json.dumps(record_to_dict(record)))
        assert payload["due_date"] == "2026-01-31"
        assert record_from_dict(payload) == record


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda raw: raw.pop("tax_id"), "'tax_id' is missing"),
        (lambda raw: raw.update(principal_minor=186.40), "'principal_minor' should be a whole number"),
        (lambda raw: raw.update(due_date="31/01/2026"), "'due_date' should be a date"),
        (lambda raw: raw.update(debtor_name=None), "'debtor_name' should be text"),
        (lambda raw: raw.update(installments=[{"number": 1}]), "'due_date' is missing"),
        (lambda raw: raw.update(installments=[7]), "not shaped like a debt record"),
    ],
)
def test_unreadable_payload_becomes_record_error_with_raw(breakage: Any, expected: str) -> None:
    raw = record_to_dict(make_record())
    breakage(raw)
    with pytest.raises(RecordError) as caught:
        record_from_dict(raw)
    assert expected in caught.value.reason
    assert caught.value.raw is raw


def test_connector_protocol_needs_every_member() -> None:
    class OnlyStreams:
        def iter_debts(self, changed_since: datetime | None = None) -> Any:
            return iter(())

        def check(self) -> None:
            return None

    class Complete(OnlyStreams):
        supports_changed_since = False

        def fetch_debtor(self, tax_country: str, tax_id: str) -> list[Any]:
            return []

        def acknowledge(self, ack: PaymentAck) -> None:
            return None

    assert not isinstance(OnlyStreams(), ERPConnector)
    assert isinstance(Complete(), ERPConnector)


def test_updated_at_round_trips_and_old_payloads_still_read() -> None:
    athens = timezone(timedelta(hours=2))
    record = make_record(updated_at=datetime(2026, 2, 27, 8, 30, tzinfo=athens))
    payload = json.loads(json.dumps(record_to_dict(record)))
    assert payload["updated_at"] == "2026-02-27T08:30:00+02:00"
    assert record_from_dict(payload) == record
    del payload["updated_at"]
    assert record_from_dict(payload).updated_at is None


def test_a_naive_update_time_is_a_problem() -> None:
    problems = validate_record(make_record(updated_at=datetime(2026, 2, 27, 8, 30)))
    assert problems == ["The update time datetime.datetime(2026, 2, 27, 8, 30) is not a timezone-aware date and time."]
    raw = record_to_dict(make_record())
    raw["updated_at"] = "2026-02-27T08:30:00"
    with pytest.raises(RecordError, match="'updated_at' should be a date and time with its offset"):
        record_from_dict(raw)


def make_ack(**changes: Any) -> PaymentAck:
    """A payment line for make_record()'s debt."""
    ack = PaymentAck(
        line_id="CP-7KQ2-M9XA-3F:12",
        payment_reference="CP-7KQ2-M9XA-3F",
        external_id="EC-2026-000123",
        installment_number=None,
        principal_minor=14_640,
        surcharge_minor=1_288,
        currency="EUR",
        paid_at=datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
    )
    return replace(ack, **changes)


@pytest.mark.parametrize("ack", [make_ack(), make_ack(installment_number=2, surcharge_minor=0)])
def test_payment_ack_round_trips_through_json(ack: PaymentAck) -> None:
    payload = json.loads(json.dumps(payment_ack_to_dict(ack)))
    assert payload["paid_at"] == "2026-03-02T09:15:00+00:00"
    assert payment_ack_from_dict(payload) == ack


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"line_id": " "}, "needs a line id"),
        ({"principal_minor": 0}, "principal 0 is not a positive whole number"),
        ({"principal_minor": 146.40}, "principal 146.4 is not a positive whole number"),
        ({"surcharge_minor": -1}, "surcharge -1 is not a whole number >= 0"),
        ({"installment_number": 0}, "installment number 0 is not a number from 1 up"),
        ({"currency": "euro"}, "not an ISO 4217 code"),
        ({"paid_at": datetime(2026, 3, 2, 9, 15)}, "must be a timezone-aware datetime"),
    ],
)
def test_payment_ack_refuses_what_an_erp_would_misread(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        make_ack(**changes)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda raw: raw.pop("line_id"), "'line_id' is missing"),
        (lambda raw: raw.update(paid_at="2026-03-02 09:15"), "'paid_at' should be a date and time with its offset"),
        (lambda raw: raw.pop("paid_at"), "'paid_at' is missing"),
        (lambda raw: raw.update(installment_number="2"), "'installment_number' should be a whole number"),
        (lambda raw: raw.update(principal_minor="146.40"), "'principal_minor' should be a whole number"),
        (lambda raw: raw.update(principal_minor=-5), "principal -5 is not a positive whole number"),
    ],
)
def test_unreadable_ack_payload_is_a_value_error_with_a_sentence(breakage: Any, expected: str) -> None:
    raw = payment_ack_to_dict(make_ack())
    breakage(raw)
    with pytest.raises(ValueError, match=expected) as caught:
        payment_ack_from_dict(raw)
    assert str(caught.value).startswith("The payment acknowledgement cannot be read: The ")
    with pytest.raises(ValueError, match="not a JSON object"):
        payment_ack_from_dict(["not", "an", "object"])  # type: ignore[arg-type]


def test_ack_rejected_carries_its_reason_across_processes() -> None:
    error = AckRejected("The ERP has no debt with the id EC-2026-999999.")
    assert str(error) == error.reason == "The ERP has no debt with the id EC-2026-999999."
    assert pickle.loads(pickle.dumps(error)).reason == error.reason


def test_connectors_never_import_the_app_or_flask() -> None:
    # A fresh interpreter, because this test process may have imported Flask for other tests.
    script = (
        "import sys, erp_connectors, erp_connectors.base, erp_connectors.demo, erp_connectors.demo.cli,"
        " erp_connectors.rest, erp_connectors.registry;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'flask')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
