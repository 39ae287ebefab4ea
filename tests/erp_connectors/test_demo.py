"""Tests for the demo ERP: determinism, valid data, and the shapes the demo walkthroughs rely on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from stdnum import iso11649
from stdnum.gr import vat as greek_vat

from erp_connectors.base import CATEGORIES, DebtRecord, ERPConnector, record_to_dict, validate_record
from erp_connectors.demo import (
    DEMO_AGENCIES,
    DEMO_CITIZENS,
    MAX_AMOUNT_MINOR,
    MIN_AMOUNT_MINOR,
    MUNICIPAL_KINDS,
    DemoCitizen,
    DemoERP,
    agency_profile,
    demo_connector_factory,
    demo_rf_reference,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 1)
AGENCY_CODES = [profile.code for profile in DEMO_AGENCIES]
PLATE_PATTERN = re.compile(r"[ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ]{3} \d{4}")
EXTERNAL_ID_PATTERN = re.compile(r"(EC|MV|ECW)-\d{4}-\d{6}")


def debts(agency_code: str, **options: object) -> list[DebtRecord]:
    """The demo records of an agency as of AS_OF, failing the test if the stream holds an error."""
    items = list(DemoERP(agency_code, as_of=AS_OF, **options).iter_debts())  # type: ignore[arg-type]
    records = [item for item in items if isinstance(item, DebtRecord)]
    assert len(records) == len(items), "the demo ERP never sends bad records"
    return records


def citizen_debts(agency_code: str, tax_id: str) -> list[DebtRecord]:
    """One demo citizen's records in an agency."""
    return [record for record in debts(agency_code) if record.tax_id == tax_id]


def test_demo_citizens_have_valid_hard_coded_afms() -> None:
    maria, john = DEMO_CITIZENS
    assert maria.tax_id == "14738260" + greek_vat.calc_check_digit("14738260") == "147382606"
    assert john.tax_id == "15902417" + greek_vat.calc_check_digit("15902417") == "159024173"
    assert all(greek_vat.is_valid(citizen.tax_id) for citizen in DEMO_CITIZENS)


def test_demo_citizens_log_in_with_their_public_passwords() -> None:
    maria, john = DEMO_CITIZENS
    assert (maria.email, maria.password, maria.full_name, maria.language) == (
        "maria@example.org",
        "demo-maria-2026",
        "Μαρία Παπαδοπούλου",
        "el",
    )
    assert (john.email, john.password, john.full_name, john.language) == (
        "john@example.org",
        "demo-john-2026",
        "John Smith",
        "en",
    )


def test_demo_agencies_are_the_three_fictional_bodies() -> None:
    assert AGENCY_CODES == ["eastcoast", "mountvalley", "eastcoast-water"]
    water = agency_profile("eastcoast-water")
    assert (water.name_el, water.name_en) == ("ΔΕΥΑ Ανατολικής Ακτής", "East Coast Municipal Water Company")
    for profile in DEMO_AGENCIES:
        assert (profile.currency, profile.timezone, profile.country) == ("EUR", "Europe/Athens", "GR")


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_same_settings_give_the_same_records_in_the_same_order(agency_code: str) -> None:
    assert debts(agency_code) == debts(agency_code)
    assert debts(agency_code, seed=7, debtors=40) == debts(agency_code, seed=7, debtors=40)


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_another_seed_gives_other_debtors(agency_code: str) -> None:
    first, second = debts(agency_code, seed=1), debts(agency_code, seed=2)
    assert {r.tax_id for r in first} != {r.tax_id for r in second}
    assert {r.external_id for r in first}.isdisjoint(r.external_id for r in second)


def test_agencies_have_their_own_debtors() -> None:
    eastcoast, mountvalley = debts("eastcoast"), debts("mountvalley")
    citizens = {citizen.tax_id for citizen in DEMO_CITIZENS}
    assert {r.tax_id for r in eastcoast} - citizens != {r.tax_id for r in mountvalley} - citizens


def test_more_debtors_append_without_reshuffling() -> None:
    few, many = debts("eastcoast", debtors=5), debts("eastcoast", debtors=25)
    assert many[: len(few)] == few
    assert len(many) > len(few)


@pytest.mark.parametrize("seed", [1, 2026, 31337])
@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_every_record_passes_validation(agency_code: str, seed: int) -> None:
    for record in debts(agency_code, seed=seed):
        assert validate_record(record) == [], record


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_every_record_has_a_unique_id_and_valid_rf(agency_code: str) -> None:
    records = debts(agency_code)
    assert len({r.external_id for r in records}) == len(records)
    assert len({r.rf_reference for r in records}) == len(records)
    for record in records:
        assert EXTERNAL_ID_PATTERN.fullmatch(record.external_id)
        assert record.rf_reference is not None and iso11649.is_valid(record.rf_reference)
        assert record.rf_reference[4:] == record.external_id.replace("-", "")


def test_rf_reference_matches_the_worked_example() -> None:
    assert demo_rf_reference("EC-2026-000123") == "RF93EC2026000123"
    with pytest.raises(ValueError, match="too long"):
        demo_rf_reference("EC-2026-0000000000000000000")


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_each_agency_has_every_category_and_its_own_kinds(agency_code: str) -> None:
    records = debts(agency_code)
    assert {r.category for r in records} == set(CATEGORIES)
    expected_kinds = {"water_bill"} if agency_code == "eastcoast-water" else set(MUNICIPAL_KINDS)
    assert {r.kind for r in records} == expected_kinds


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_amounts_are_cents_in_range_with_partial_and_full_payments(agency_code: str) -> None:
    records = debts(agency_code)
    for record in records:
        assert type(record.principal_minor) is int and type(record.paid_minor) is int
        assert MIN_AMOUNT_MINOR <= record.principal_minor <= MAX_AMOUNT_MINOR
        assert (record.status == "paid") == (record.paid_minor == record.principal_minor)
    assert any(0 < r.paid_minor < r.principal_minor for r in records)
    assert any(r.status == "paid" for r in records)
    assert any(r.due_date < AS_OF and r.status == "open" for r in records)
    assert any(r.due_date > AS_OF and r.status == "open" for r in records)


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_settled_debts_have_installments_that_add_up(agency_code: str) -> None:
    for record in debts(agency_code):
        if record.category == "settled":
            assert len(record.installments) >= 3
            assert sum(i.amount_minor for i in record.installments) == record.principal_minor
            assert sum(i.paid_minor for i in record.installments) == record.paid_minor
            assert record.due_date == record.installments[0].due_date
        else:
            assert record.installments == ()


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_only_traffic_fines_carry_a_greek_plate(agency_code: str) -> None:
    for record in debts(agency_code):
        if record.kind == "traffic_fine":
            assert record.vehicle_plate is not None and PLATE_PATTERN.fullmatch(record.vehicle_plate)
        else:
            assert record.vehicle_plate is None


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_demo_citizens_come_first_with_the_debts_a_demo_needs(agency_code: str) -> None:
    records = debts(agency_code)
    for citizen in DEMO_CITIZENS:
        own = [r for r in records if r.tax_id == citizen.tax_id]
        assert 2 <= len(own) <= 4
        for record in own:
            assert (record.debtor_name, record.contact_email) == (citizen.full_name, citizen.email)
            assert record.status == "open"
            assert record.contact_phone == citizen.phone and citizen.phone.startswith("+3069")
        assert any(r.category == "certified" and r.due_date < AS_OF for r in own)
        assert any(r.category == "uncertified" and r.due_date > AS_OF for r in own)
    citizen_tax_ids = {citizen.tax_id for citizen in DEMO_CITIZENS}
    citizen_count = sum(1 for r in records if r.tax_id in citizen_tax_ids)
    assert all(r.tax_id in citizen_tax_ids for r in records[:citizen_count])
    assert all(r.contact_email not in {c.email for c in DEMO_CITIZENS} for r in records[citizen_count:])
    assert all(r.contact_phone not in {c.phone for c in DEMO_CITIZENS} for r in records[citizen_count:])


@pytest.mark.parametrize("citizen", DEMO_CITIZENS, ids=lambda citizen: citizen.email)
def test_eastcoast_settlement_has_three_installments_first_overdue(citizen: DemoCitizen) -> None:
    settled = [r for r in citizen_debts("eastcoast", citizen.tax_id) if r.category == "settled"]
    assert len(settled) == 1
    first, *later = settled[0].installments
    assert len(settled[0].installments) == 3
    assert first.due_date < AS_OF and first.paid_minor == 0
    assert all(installment.due_date > AS_OF for installment in later)


@pytest.mark.parametrize("citizen", DEMO_CITIZENS, ids=lambda citizen: citizen.email)
def test_mountvalley_has_a_traffic_fine_with_a_plate(citizen: DemoCitizen) -> None:
    fines = [r for r in citizen_debts("mountvalley", citizen.tax_id) if r.kind == "traffic_fine"]
    assert fines and all(fine.vehicle_plate and PLATE_PATTERN.fullmatch(fine.vehicle_plate) for fine in fines)
    if citizen is DEMO_CITIZENS[0]:
        assert fines[0].vehicle_plate == "ΙΚΑ 1234"


def test_water_company_bills_only_water() -> None:
    for citizen in DEMO_CITIZENS:
        assert {r.kind for r in citizen_debts("eastcoast-water", citizen.tax_id)} == {"water_bill"}


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_moving_as_of_moves_every_date_by_the_same_delta(agency_code: str) -> None:
    delta = timedelta(days=45)
    before = list(DemoERP(agency_code, as_of=AS_OF).iter_debts())
    after = list(DemoERP(agency_code, as_of=AS_OF + delta).iter_debts())
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert isinstance(old, DebtRecord) and isinstance(new, DebtRecord)
        assert new.due_date - old.due_date == delta
        assert [i.due_date - j.due_date for i, j in zip(new.installments, old.installments)] == [delta] * len(
            old.installments
        )
        assert replace(new, due_date=old.due_date, installments=old.installments) == old


def test_as_of_defaults_to_today_in_athens() -> None:
    # 23:30 UTC on 31 March is already 1 April in Athens (UTC+3 in summer).
    with time_machine.travel(datetime(2026, 3, 31, 23, 30, tzinfo=ZoneInfo("UTC")), tick=False):
        today = list(DemoERP("eastcoast").iter_debts())
    assert today == list(DemoERP("eastcoast", as_of=date(2026, 4, 1)).iter_debts())


def test_unknown_agency_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="no demo agency with the code 'atlantis'.*eastcoast, mountvalley"):
        DemoERP("atlantis")
    with pytest.raises(ValueError, match="'atlantis'"):
        agency_profile("atlantis")


def test_negative_debtor_count_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        DemoERP("eastcoast", debtors=-1)


def test_demo_erp_is_an_always_reachable_connector() -> None:
    connector = DemoERP("mountvalley")
    assert isinstance(connector, ERPConnector)
    connector.check()  # raises ConnectionError if unreachable; the demo never is
    assert connector.profile == agency_profile("mountvalley")
    assert connector.profile.name_en == "Municipality of Mountain Valley"


def test_no_debtors_leaves_only_the_demo_citizens() -> None:
    records = debts("eastcoast", debtors=0)
    assert {r.tax_id for r in records} == {citizen.tax_id for citizen in DEMO_CITIZENS}


def test_factory_reads_seed_and_debtors_from_options() -> None:
    connector = demo_connector_factory("eastcoast-water", {"seed": "7", "debtors": 3})
    assert (connector.agency_code, connector.seed, connector.debtors) == ("eastcoast-water", 7, 3)
    defaults = demo_connector_factory("eastcoast", {})
    assert (defaults.seed, defaults.debtors) == (2026, 25)
    with pytest.raises(ValueError, match="'debtors' must be a whole number"):
        demo_connector_factory("eastcoast", {"debtors": "many"})
    with pytest.raises(ValueError, match="'seed' must be a whole number"):
        demo_connector_factory("eastcoast", {"seed": 2.5})


def test_external_ids_do_not_move_with_the_calendar() -> None:
    by_day: dict[str, set[str]] = defaultdict(set)
    for as_of in (AS_OF, AS_OF + timedelta(days=400)):
        for item in DemoERP("eastcoast", as_of=as_of).iter_debts():
            assert isinstance(item, DebtRecord)
            by_day[item.external_id].add(item.tax_id)
    assert all(len(tax_ids) == 1 for tax_ids in by_day.values())


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the demo CLI in a fresh interpreter, as a developer would."""
    return subprocess.run(
        [sys.executable, "-m", "erp_connectors.demo", *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )


def test_dump_prints_the_records_as_json_lines() -> None:
    result = run_cli("dump", "--agency", "mountvalley", "--seed", "7", "--debtors", "3", "--as-of", "2026-03-01")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [record_to_dict(r) for r in debts("mountvalley", seed=7, debtors=3)]
    assert lines == expected
    assert lines[1]["vehicle_plate"] == "ΙΚΑ 1234"
    assert isinstance(lines[0]["principal_minor"], int)
    assert lines[0]["due_date"] == (AS_OF + timedelta(days=-320)).isoformat()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("dump", "--agency", "atlantis"), "invalid choice: 'atlantis'"),
        (("dump", "--agency", "eastcoast", "--as-of", "01/03/2026"), "is not a date like"),
        (("dump", "--agency", "eastcoast", "--debtors", "-2"), "cannot be negative"),
    ],
)
def test_dump_refuses_bad_arguments_with_a_sentence(arguments: tuple[str, ...], message: str) -> None:
    result = run_cli(*arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
