"""Tests for the demo ERP: determinism, valid data, and the shapes the demo walkthroughs rely on."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine
from stdnum import iso11649
from stdnum.gr import vat as greek_vat

from erp_connectors.base import (
    CATEGORIES,
    AckRejected,
    DebtRecord,
    ERPConnector,
    PaymentAck,
    record_to_dict,
    validate_record,
)
from erp_connectors.demo import (
    DEMO_AGENCIES,
    DEMO_CITIZENS,
    MAX_AMOUNT_MINOR,
    MAX_DEBTORS,
    MIN_AMOUNT_MINOR,
    MUNICIPAL_KINDS,
    UPDATED_WITHIN_DAYS,
    DemoCitizen,
    DemoERP,
    agency_profile,
    demo_connector_factory,
    demo_rf_reference,
)
from erp_connectors.demo import stream as demo_stream

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
        assert [i.due_date - j.due_date for i, j in zip(new.installments, old.installments, strict=False)] == [
            delta
        ] * len(old.installments)
        assert new.updated_at is not None and old.updated_at is not None
        assert new.updated_at - old.updated_at == delta
        assert replace(new, due_date=old.due_date, installments=old.installments, updated_at=old.updated_at) == old


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


def test_factory_reads_seed_debtors_and_state_file_from_options(tmp_path: Path) -> None:
    connector = demo_connector_factory(
        "eastcoast-water", {"seed": "7", "debtors": 3, "state_file": str(tmp_path / "acks.json")}
    )
    assert (connector.agency_code, connector.seed, connector.debtors) == ("eastcoast-water", 7, 3)
    assert connector.state_file == tmp_path / "acks.json"
    defaults = demo_connector_factory("eastcoast", {})
    assert (defaults.seed, defaults.debtors, defaults.state_file) == (2026, 25, None)
    with pytest.raises(ValueError, match="'state_file' must be the path of a JSON file"):
        demo_connector_factory("eastcoast", {"state_file": 7})
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


# -- data that must not change --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agency_code", "count", "fingerprint"),
    [
        ("eastcoast", 72, "d9ca661d842b0d37282e361086abc3ff4c61b1c24d63ebc4bbbe605eba0091e8"),
        ("mountvalley", 61, "ded65e813ce8abfa4cbf8d49cabf35f7abff933aa9b62d7114001f98be98c2a4"),
        ("eastcoast-water", 63, "fc785f4a1305332bb4a1a31d3b43a0be0d24dcf36a3066464a95ec76c3e92a68"),
    ],
)
def test_default_data_set_is_exactly_what_installations_already_hold(
    agency_code: str, count: int, fingerprint: str
) -> None:
    # Synced databases key debts by external id; if the generator drifted, ids would point at other debts.
    rows = []
    for record in debts(agency_code):
        row = record_to_dict(record)
        row.pop("updated_at")  # added later, outside the random stream
        rows.append(row)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert (len(rows), digest) == (count, fingerprint)


def test_first_generated_debtor_of_eastcoast_is_pinned() -> None:
    first_generated = debts("eastcoast")[9]
    assert (first_generated.external_id, first_generated.tax_id, first_generated.principal_minor) == (
        "EC-2026-000010",
        "154967715",
        93_446,
    )


def test_external_ids_widen_past_a_million_without_renaming_the_first() -> None:
    connector = DemoERP("eastcoast-water")
    assert connector._external_id(1) == "ECW-2026-000001"
    assert connector._external_id(999_999) == "ECW-2026-999999"
    assert connector._external_id(1_000_000) == "ECW-2026-1000000"
    assert demo_rf_reference("ECW-2026-1000000") == "RF22ECW20261000000"
    assert iso11649.is_valid("RF22ECW20261000000")
    # A zero-padded spelling of a small serial is not an alias of it.
    assert connector.debt("ECW-2026-0000001") is None
    assert connector.debt("ECW-2026-000001") is not None


def test_data_sets_above_the_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 45,000,000 debtors"):
        DemoERP("eastcoast", debtors=MAX_DEBTORS + 1)


# -- updated_at and changed_since -----------------------------------------------------------------


def test_generated_records_say_when_the_erp_last_changed_them() -> None:
    records = debts("mountvalley")
    stamps = {record.updated_at for record in records}
    assert all(
        stamp is not None
        and stamp.tzinfo is UTC
        and stamp.time() == time(6, 0)
        and AS_OF - timedelta(days=UPDATED_WITHIN_DAYS) <= stamp.date() < AS_OF
        for stamp in stamps
    )
    assert len(stamps) > 10, "spread over many days, so that changed_since picks a part"
    assert records == debts("mountvalley")


def test_with_as_of_today_no_debt_claims_a_change_later_than_now() -> None:
    # Just after midnight in Athens, still the evening before in UTC: the earliest moment of a new as_of.
    with time_machine.travel(datetime(2026, 3, 31, 21, 5, tzinfo=UTC), tick=False):
        latest = max(r.updated_at for r in DemoERP("eastcoast").iter_debts() if isinstance(r, DebtRecord))
        assert latest is not None and latest <= datetime.now(UTC)


def test_changed_since_keeps_the_debts_changed_at_or_after_it_in_order() -> None:
    connector = DemoERP("eastcoast", debtors=60, as_of=AS_OF)
    everything = [r for r in connector.iter_debts() if isinstance(r, DebtRecord) and r.updated_at is not None]
    since = datetime(2026, 2, 20, 6, 0, tzinfo=UTC)
    changed = list(connector.iter_debts(changed_since=since))
    assert changed == [r for r in everything if r.updated_at >= since]  # type: ignore[operator]
    assert 0 < len(changed) < len(everything)
    assert any(r.updated_at == since for r in changed if isinstance(r, DebtRecord)), "the bound is inclusive"
    # The same instant in Athens' offset is the same bound.
    assert list(connector.iter_debts(since.astimezone(ZoneInfo("Europe/Athens")))) == changed
    assert list(connector.iter_debts(datetime(2026, 3, 2, tzinfo=UTC))) == []


def test_changed_since_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoERP("eastcoast").iter_debts(datetime(2026, 2, 20, 6, 0))


# -- looking up one debtor or debt ----------------------------------------------------------------


@pytest.mark.parametrize("agency_code", AGENCY_CODES)
def test_fetch_debtor_returns_exactly_their_debts_from_the_stream(agency_code: str) -> None:
    # 700 debtors: past a few checkpoints of the random stream, so look-ups replay from the middle.
    connector = DemoERP(agency_code, seed=77, debtors=700, as_of=AS_OF)
    records = [r for r in connector.iter_debts() if isinstance(r, DebtRecord)]
    by_tax_id: dict[str, list[DebtRecord]] = defaultdict(list)
    for record in records:
        by_tax_id[record.tax_id].append(record)
    for tax_id in [*list(by_tax_id)[:3], *list(by_tax_id)[-3:], DEMO_CITIZENS[1].tax_id]:
        assert connector.fetch_debtor("GR", tax_id) == by_tax_id[tax_id]
    for record in records[::97]:
        assert connector.debt(record.external_id) == record
    assert connector.fetch_debtor("GR", "123456783") == []  # a valid AFM nobody here has
    assert connector.fetch_debtor("GR", "12345678X") == []
    assert connector.fetch_debtor("CY", records[-1].tax_id) == []
    assert connector.debt("EC-9999-000001") is None
    # One past the last debt of the last debtor: no such debt.
    assert connector.debt(connector._external_id(len(records) + 1)) is None


def test_iter_debts_after_continues_the_stream_after_a_debt() -> None:
    connector = DemoERP("eastcoast", seed=78, debtors=400, as_of=AS_OF)
    records = [r for r in connector.iter_debts() if isinstance(r, DebtRecord)]
    for position in (0, 5, 6, 300, len(records) - 2, len(records) - 1):
        assert list(connector.iter_debts_after(records[position].external_id)) == records[position + 1 :]
    assert list(connector.iter_debts_after(None)) == records
    with pytest.raises(ValueError, match="not an external id of this demo ERP"):
        connector.iter_debts_after("MV-2026-000001")


def test_concurrent_walks_of_a_fresh_data_set_agree() -> None:
    # The first walks index the random stream as they go; they must not trip over each other.
    expected = debts("mountvalley", seed=79, debtors=900)
    demo_stream._INDEXES.pop(("mountvalley", 79), None)
    connector = DemoERP("mountvalley", seed=79, debtors=900, as_of=AS_OF)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: list(connector.iter_debts()), range(4)))
    assert all(result == expected for result in results)


def test_the_taken_tax_id_bitmap_draws_the_same_debtors_as_the_set(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = debts("eastcoast", seed=80, debtors=300)
    # Big data sets switch from a set of taken AFMs to a bitmap; here from the 20th debtor on.
    monkeypatch.setattr(demo_stream, "_BITMAP_FROM", 20)
    monkeypatch.setattr(demo_stream, "_INDEXES", {})
    assert debts("eastcoast", seed=80, debtors=300) == expected


# -- acknowledged payments ------------------------------------------------------------------------

_seeds = itertools.count(9_001)


@pytest.fixture
def erp() -> Iterator[DemoERP]:
    """An eastcoast demo ERP with a ledger of its own (a seed no other test uses), cleared afterwards."""
    connector = DemoERP("eastcoast", seed=next(_seeds), as_of=AS_OF)
    yield connector
    connector.clear_acknowledgements()


def ack_for(
    record: DebtRecord, line: int, principal: int, installment: int | None = None, **changes: Any
) -> PaymentAck:
    """A payment line of the portal's payment CP-TEST for this debt."""
    return PaymentAck(
        line_id=f"CP-TEST:{line}",
        payment_reference="CP-TEST",
        external_id=record.external_id,
        installment_number=installment,
        principal_minor=principal,
        surcharge_minor=changes.pop("surcharge_minor", 0),
        currency=changes.pop("currency", "EUR"),
        paid_at=changes.pop("paid_at", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
    )


def marias(connector: DemoERP) -> list[DebtRecord]:
    """Maria's eastcoast debts: certified 186,40; uncertified 92,75; settled 450,00 in 3; stall 320,50 (120 paid)."""
    records = connector.fetch_debtor("GR", DEMO_CITIZENS[0].tax_id)
    assert all(isinstance(record, DebtRecord) for record in records)
    return records  # type: ignore[return-value]


def test_acknowledged_debt_is_reported_paid_from_then_on(erp: DemoERP) -> None:
    certified = marias(erp)[0]
    assert (certified.principal_minor, certified.paid_minor, certified.status) == (18_640, 0, "open")
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC), tick=False):
        erp.acknowledge(ack_for(certified, 1, 18_640, surcharge_minor=1_500))
    paid = marias(erp)[0]
    assert (paid.paid_minor, paid.status, paid.outstanding_minor) == (18_640, "paid", 0)
    assert paid.updated_at == datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC), "when the ERP recorded it"
    assert erp.debt(certified.external_id) == paid
    assert paid in list(erp.iter_debts())
    assert list(erp.iter_debts(changed_since=datetime(2026, 3, 2, tzinfo=UTC))) == [paid]
    assert erp.acknowledged("CP-TEST:1") and not erp.acknowledged("CP-TEST:2")
    assert erp.ack_count == 1


def test_the_same_line_twice_counts_once(erp: DemoERP) -> None:
    uncertified = marias(erp)[1]
    ack = ack_for(uncertified, 1, 1_000)
    assert erp.record_ack(ack) is True
    assert erp.record_ack(ack) is False
    erp.acknowledge(ack)
    assert erp.ack_count == 1
    assert marias(erp)[1].paid_minor == 1_000
    with pytest.raises(AckRejected, match="CP-TEST:1 was already recorded with other details"):
        erp.acknowledge(ack_for(uncertified, 1, 2_000))


def test_installments_are_paid_one_by_one_or_earliest_first(erp: DemoERP) -> None:
    settled = marias(erp)[2]
    assert [i.amount_minor for i in settled.installments] == [15_000, 15_000, 15_000]
    erp.acknowledge(ack_for(settled, 1, 15_000, installment=2))
    after_second = marias(erp)[2]
    assert [i.paid_minor for i in after_second.installments] == [0, 15_000, 0]
    assert (after_second.paid_minor, after_second.status) == (15_000, "open")
    erp.acknowledge(ack_for(settled, 2, 20_000))
    assert [i.paid_minor for i in marias(erp)[2].installments] == [15_000, 15_000, 5_000]
    erp.acknowledge(ack_for(settled, 3, 10_000, installment=3))
    final = marias(erp)[2]
    assert (final.paid_minor, final.status) == (45_000, "paid")
    assert all(validate_record(r) == [] for r in erp.iter_debts())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_ack", "reason"),
    [
        (lambda debts: replace(ack_for(debts[0], 1, 100), external_id="EC-0000-000001"), "no debt with the id"),
        (lambda debts: ack_for(debts[2], 1, 100, installment=4), "has 3 installments; installment 4 does not exist"),
        (lambda debts: ack_for(debts[0], 1, 100, installment=1), "has no installments; installment 1 does not exist"),
        (lambda debts: ack_for(debts[3], 1, 20_051), "20051 minor units exceeds the 20050 minor units still owed"),
        (lambda debts: ack_for(debts[2], 1, 15_001, installment=1), "still owed on installment 1 of the debt"),
        (lambda debts: ack_for(debts[0], 1, 100, currency="USD"), "is in EUR, not USD"),
    ],
)
def test_acks_the_erp_cannot_book_are_rejected_for_good(erp: DemoERP, make_ack: Any, reason: str) -> None:
    before = marias(erp)
    with pytest.raises(AckRejected, match=reason):
        erp.acknowledge(make_ack(before))
    assert marias(erp) == before and erp.ack_count == 0


def test_cancelled_and_already_paid_debts_take_no_payment() -> None:
    connector = DemoERP("eastcoast-water", seed=next(_seeds), debtors=60, as_of=AS_OF)
    records = [r for r in connector.iter_debts() if isinstance(r, DebtRecord)]
    cancelled = next(r for r in records if r.status == "cancelled")
    paid = next(r for r in records if r.status == "paid")
    with pytest.raises(AckRejected, match="was cancelled"):
        connector.acknowledge(ack_for(cancelled, 1, 100))
    with pytest.raises(AckRejected, match="exceeds the 0 minor units still owed"):
        connector.acknowledge(ack_for(paid, 2, 100))


def test_acks_are_shared_by_instances_of_the_same_agency_and_seed_only(erp: DemoERP) -> None:
    erp.acknowledge(ack_for(marias(erp)[0], 1, 18_640))
    assert DemoERP("eastcoast", seed=erp.seed).acknowledged("CP-TEST:1")
    assert marias(DemoERP("eastcoast", seed=erp.seed, as_of=AS_OF))[0].status == "paid"
    assert not DemoERP("mountvalley", seed=erp.seed).acknowledged("CP-TEST:1")
    assert not DemoERP("eastcoast", seed=erp.seed + 50_000).acknowledged("CP-TEST:1")


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter (another process, like the portal's worker)."""
    return subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60
    )


def test_acks_in_a_state_file_are_seen_by_other_processes(tmp_path: Path) -> None:
    state = tmp_path / "demo-erp.json"
    seed = next(_seeds)
    web = DemoERP("eastcoast", seed=seed, as_of=AS_OF, state_file=state)
    web.acknowledge(ack_for(marias(web)[0], 1, 18_640))

    worker = run_python(
        "from datetime import date, datetime, UTC\n"
        "from erp_connectors.base import PaymentAck\n"
        "from erp_connectors.demo import DemoERP\n"
        f"erp = DemoERP('eastcoast', seed={seed}, as_of=date(2026, 3, 1), state_file={str(state)!r})\n"
        "debts = erp.fetch_debtor('GR', '147382606')\n"
        "print(erp.ack_count, debts[0].status)\n"
        "erp.acknowledge(PaymentAck('CP-TEST:2', 'CP-TEST', debts[1].external_id, None, 9_275, 0, 'EUR',"
        " datetime(2026, 3, 2, 10, 0, tzinfo=UTC)))\n"
    )
    assert worker.stdout.split() == ["1", "paid"]
    # The file changed under this process, which reads it again.
    assert web.ack_count == 2 and marias(web)[1].status == "paid"
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert [item["ack"]["line_id"] for item in saved["acknowledgements"][f"eastcoast/{seed}"]] == [
        "CP-TEST:1",
        "CP-TEST:2",
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo-erp.json", "demo-erp.json.lock"]
    # Without the state file, this process's memory knows nothing of them.
    assert DemoERP("eastcoast", seed=seed).ack_count == 0


def test_processes_writing_one_state_file_at_once_lose_no_ack(tmp_path: Path) -> None:
    state = tmp_path / "demo-erp.json"
    seed = next(_seeds)
    script = (
        "import sys\n"
        "from datetime import date, datetime, UTC\n"
        "from erp_connectors.base import PaymentAck\n"
        "from erp_connectors.demo import DemoERP\n"
        f"erp = DemoERP('mountvalley', seed={seed}, debtors=40, as_of=date(2026, 3, 1), state_file={str(state)!r})\n"
        "open_debts = [r for r in erp.iter_debts() if r.status == 'open' and not r.installments]\n"
        "for n, debt in enumerate(open_debts[:12]):\n"
        "    erp.acknowledge(PaymentAck(f'CP-{sys.argv[1]}:{n}', 'CP', debt.external_id, None, 1, 0, 'EUR',"
        " datetime(2026, 3, 2, tzinfo=UTC)))\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, name], cwd=PROJECT_ROOT) for name in ("A", "B", "C")]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    assert DemoERP("mountvalley", seed=seed, state_file=state).ack_count == 36


def test_an_unreadable_state_file_is_reported_with_a_sentence(tmp_path: Path) -> None:
    state = tmp_path / "demo-erp.json"
    state.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=f"The demo ERP state file {re.escape(str(state))} cannot be read"):
        DemoERP("eastcoast", seed=next(_seeds), state_file=state).acknowledged("CP-TEST:1")


def test_dump_shows_acknowledged_payments_from_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "demo-erp.json"
    seed = next(_seeds)
    connector = DemoERP("eastcoast", seed=seed, as_of=AS_OF, state_file=state)
    connector.acknowledge(ack_for(marias(connector)[0], 1, 18_640))
    result = run_cli(
        "dump", "--agency", "eastcoast", "--seed", str(seed), "--debtors", "0", "--as-of", "2026-03-01",
        "--state-file", str(state),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["status"] == "paid"


def test_serve_starts_a_demo_erp_that_answers_health() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "erp_connectors.demo", "serve", "--agency", "mountvalley", "--port", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        match = re.search(r"serving at (http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        answer = requests.get(match.group(1) + "/health", timeout=5)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "agency": "mountvalley"}
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0


def test_serve_refuses_addresses_beyond_loopback() -> None:
    result = run_cli("serve", "--agency", "eastcoast", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "only listens on loopback addresses" in result.stderr
