"""The DemoERP connector: a sandbox ERP that always holds the same fictional debts, and its factory."""

from __future__ import annotations

import os
import random
import zlib
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stdnum.gr import vat as greek_vat

from erp_connectors.base import AckRejected, AgencyProfile, DebtRecord, InstallmentRecord, PaymentAck, RecordError
from erp_connectors.demo.data import (
    CITIZEN_DEBTS,
    DEMO_CITIZENS,
    ID_PREFIXES,
    KINDS_BY_AGENCY,
    DemoCitizen,
    PlannedDebt,
    agency_profile,
)
from erp_connectors.demo.ledger import AckEntry, ack_ledger, ack_problem, with_acks
from erp_connectors.demo.records import (
    CATEGORY_CUMULATIVE_WEIGHTS,
    GENERATED_CATEGORIES,
    UPDATE_TIME,
    UPDATED_WITHIN_DAYS,
    debtor_name,
    demo_rf_reference,
    describe,
    installments_paid_so_far,
    schedule,
    vehicle_plate,
)
from erp_connectors.demo.stream import INDEX_STEP, MAX_DEBTORS, stream_index


def _checked_since(changed_since: datetime | None) -> datetime | None:
    if changed_since is not None and (not isinstance(changed_since, datetime) or changed_since.utcoffset() is None):
        raise ValueError(f"changed_since must be a timezone-aware datetime, not {changed_since!r}.")
    return changed_since


class DemoERP:
    """A sandbox ERP that always holds the same fictional debts for a given agency, seed and size.

    Payments acknowledged to it are remembered per (agency, seed): in this process, or in the JSON
    state file if one is given, so that a web app and a worker in other processes see the same ledger.
    """

    #: iter_debts honours changed_since
    supports_changed_since = True

    def __init__(
        self,
        agency_code: str,
        *,
        seed: int = 2026,
        debtors: int = 25,
        as_of: date | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._profile = agency_profile(agency_code)
        if debtors < 0:
            raise ValueError(f"The number of demo debtors cannot be negative (got {debtors}).")
        if debtors > MAX_DEBTORS:
            raise ValueError(f"The demo ERP makes at most {MAX_DEBTORS:,} debtors (got {debtors:,}).")
        self.agency_code = agency_code
        self.seed = seed
        self.debtors = debtors
        # None means "today", resolved at each iteration so a long-lived connector keeps up with the calendar.
        self._as_of = as_of
        self.state_file = Path(state_file).resolve() if state_file is not None else None
        self._plans = tuple(
            (citizen, plan) for citizen in DEMO_CITIZENS for plan in CITIZEN_DEBTS[agency_code][citizen.tax_id]
        )
        self._index = stream_index(agency_code, seed, first_generated_serial=len(self._plans) + 1)
        self._ledger = ack_ledger(self.state_file)
        self._ledger_key = f"{agency_code}/{seed}"
        #: Refunds told to this ERP, by refund reference (kept in memory only).
        self._refunds: dict[str, dict[str, Any]] = {}
        #: Sales of catalog items told to this ERP, by line id (kept in memory only).
        self._sales: dict[str, dict[str, Any]] = {}

    @property
    def profile(self) -> AgencyProfile:
        """The agency this ERP belongs to."""
        return self._profile

    def __repr__(self) -> str:
        state = f", state_file={str(self.state_file)!r}" if self.state_file is not None else ""
        return f"DemoERP({self.agency_code!r}, seed={self.seed}, debtors={self.debtors}, as_of={self._as_of!r}{state})"

    def check(self) -> None:
        """Always reachable: it lives in this process."""

    def iter_debts(self, changed_since: datetime | None = None) -> Iterator[DebtRecord | RecordError]:
        """Yield the demo citizens' debts, then those of the generated debtors, always in the same order.

        With changed_since, only the debts whose updated_at is at or after it; the bound is inclusive
        so that a change made at that very instant is never missed.
        """
        return self._stream(0, _checked_since(changed_since))

    def iter_debts_after(
        self, after_external_id: str | None, changed_since: datetime | None = None
    ) -> Iterator[DebtRecord]:
        """Like iter_debts, but starting after the debt with this external id (keyset paging); ValueError if unknown."""
        after_serial = 0
        if after_external_id is not None:
            serial = self._serial_of(after_external_id)
            if serial is None:
                raise ValueError(f"{after_external_id!r} is not an external id of this demo ERP.")
            after_serial = serial
        return self._stream(after_serial, _checked_since(changed_since))

    def fetch_debtor(self, tax_country: str, tax_id: str) -> list[DebtRecord | RecordError]:
        """This debtor's debts at this agency in every status, payments acknowledged so far included."""
        if tax_country != "GR" or not (len(tax_id) == 9 and tax_id.isascii() and tax_id.isdigit()):
            return []
        as_of = self._today()
        citizen_records = [
            self._planned_record(citizen, plan, serial, as_of)
            for serial, (citizen, plan) in enumerate(self._plans, start=1)
            if citizen.tax_id == tax_id
        ]
        if citizen_records:
            records = citizen_records
        else:
            debtor = self._debtor_of_tax_id(tax_id)
            if debtor is None:
                return []
            records = next(self._walk(debtor, debtor, as_of))[2]
        acks = self._acks_by_debt()
        return [with_acks(record, acks.get(record.external_id, ())) for record in records]

    def debt(self, external_id: str) -> DebtRecord | None:
        """The debt with this external id as the ERP reports it now, or None if there is no such debt."""
        serial = self._serial_of(external_id)
        record = self._generated_debt(serial, self._today()) if serial is not None else None
        if record is None:
            return None
        return with_acks(record, self._acks_by_debt().get(external_id, ()))

    def acknowledge(self, ack: PaymentAck) -> None:
        """Record a paid line; the same line_id again is a no-op; AckRejected for an unknown debt or bad amount."""
        self.record_ack(ack)

    def record_ack(self, ack: PaymentAck) -> bool:
        """Like acknowledge, and say whether the line was new (False: this exact line was recorded before)."""
        serial = self._serial_of(ack.external_id)
        # Replayed before taking the ledger's lock: the first look-up of a large data set walks the whole stream.
        record = self._generated_debt(serial, self._today()) if serial is not None else None
        with self._ledger.updating(self._ledger_key) as book:
            earlier = book.get(ack.line_id)
            if earlier is not None:
                if earlier.ack == ack:
                    return False
                raise AckRejected(
                    f"The payment line {ack.line_id} was already recorded with other details "
                    f"(debt {earlier.ack.external_id}, {earlier.ack.principal_minor} minor units)."
                )
            if record is None:
                raise AckRejected(f"The ERP has no debt with the id {ack.external_id}.")
            entries = [entry for entry in book.values() if entry.ack.external_id == ack.external_id]
            problem = ack_problem(with_acks(record, entries), ack)
            if problem is not None:
                raise AckRejected(problem)
            book[ack.line_id] = AckEntry(ack, datetime.now(UTC))
        return True

    def acknowledge_refund(self, refund: Mapping[str, Any]) -> None:
        """Record a refund of a payment it knows; the same refund again is a no-op (AckRejected if it differs)."""
        self.record_refund(refund)

    def record_refund(self, refund: Mapping[str, Any]) -> bool:
        """Like acknowledge_refund, and say whether the refund was new."""
        reference = refund.get("refund_reference")
        payment = refund.get("payment_reference")
        amount = refund.get("amount_minor")
        if not isinstance(reference, str) or not reference or not isinstance(payment, str):
            raise AckRejected("A refund needs its refund_reference and payment_reference.")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise AckRejected(f"The refunded amount {amount!r} is not a positive whole number of minor units.")
        known = self._ledger.snapshot(self._ledger_key)
        if not any(entry.ack.payment_reference == payment for entry in known.values()):
            raise AckRejected(f"The ERP has no payment {payment} to refund.")
        earlier = self._refunds.get(reference)
        if earlier is not None:
            if earlier == dict(refund):
                return False
            raise AckRejected(f"The refund {reference} was already recorded with other details.")
        self._refunds[reference] = dict(refund)
        return True

    def refunded(self, refund_reference: str) -> bool:
        """Whether a refund with this reference has been recorded (in memory, for this process)."""
        return refund_reference in self._refunds

    def acknowledge_sale(self, sale: Mapping[str, Any]) -> None:
        """Book a sale of a catalog item; the same line again is a no-op (AckRejected if it differs)."""
        self.record_sale(sale)

    def record_sale(self, sale: Mapping[str, Any]) -> bool:
        """Like acknowledge_sale, and say whether the sale was new."""
        line_id = sale.get("line_id")
        amount = sale.get("amount_minor")
        quantity = sale.get("quantity")
        if not isinstance(line_id, str) or not line_id or not isinstance(sale.get("item_code"), str):
            raise AckRejected("A sale needs its line_id and item_code.")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise AckRejected(f"The sold amount {amount!r} is not a positive whole number of minor units.")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise AckRejected(f"The sold quantity {quantity!r} is not a positive whole number.")
        earlier = self._sales.get(line_id)
        if earlier is not None:
            if earlier == dict(sale):
                return False
            raise AckRejected(f"The sale {line_id} was already recorded with other details.")
        self._sales[line_id] = dict(sale)
        return True

    def sold(self, line_id: str) -> dict[str, Any] | None:
        """The sale recorded for this line id, if any (in memory, for this process)."""
        return self._sales.get(line_id)

    def acknowledged(self, line_id: str) -> bool:
        """Whether a payment line with this id has been recorded."""
        return line_id in self._ledger.snapshot(self._ledger_key)

    @property
    def ack_count(self) -> int:
        """How many payment lines this agency and seed have recorded."""
        return len(self._ledger.snapshot(self._ledger_key))

    def clear_acknowledgements(self) -> None:
        """Forget every payment line of this agency and seed (in memory, and in the state file if any)."""
        with self._ledger.updating(self._ledger_key) as book:
            book.clear()

    def warm_up(self) -> None:
        """Index the whole data set now, so that the first look-up of a debtor or debt does not wait for it."""
        self._index.extend(self._walk, self.debtors)

    # -- the random stream ------------------------------------------------------------------------

    def _today(self) -> date:
        return self._as_of or _today_in(self._profile.timezone)

    def _stream(self, after_serial: int, since: datetime | None) -> Iterator[DebtRecord]:
        as_of = self._today()
        acks = self._acks_by_debt()
        for record in self._records_after(after_serial, as_of):
            if acks:
                record = with_acks(record, acks.get(record.external_id, ()))
            if since is None or (record.updated_at is not None and record.updated_at >= since):
                yield record

    def _records_after(self, after_serial: int, as_of: date) -> Iterator[DebtRecord]:
        for serial, (citizen, plan) in enumerate(self._plans, start=1):
            if serial > after_serial:
                yield self._planned_record(citizen, plan, serial, as_of)
        first_debtor = 1 if after_serial < self._index.first_generated_serial else self._debtor_holding(after_serial)
        if first_debtor is None:
            return
        for _, first_serial, records in self._walk(first_debtor, self.debtors, as_of):
            for serial, record in enumerate(records, start=first_serial):
                if serial > after_serial:
                    yield record

    def _walk(self, first: int, last: int, as_of: date) -> Iterator[tuple[int, int, list[DebtRecord]]]:
        """Yield (debtor number, first serial, records) of debtors first..last, replayed from the nearest checkpoint."""
        index = self._index
        debtor, serial, rng = index.resume(first)
        while debtor <= last:
            stem = index.next_stem(rng, debtor, serial)
            records = self._debtor_records(rng, debtor, serial, stem, as_of)
            if debtor >= first:
                yield debtor, serial, records
            serial += len(records)
            debtor += 1

    def _debtor_records(self, rng: random.Random, debtor: int, serial: int, stem: int, as_of: date) -> list[DebtRecord]:
        # The order of the draws is the data set: change it and every generated debtor changes.
        tax_id = f"{stem}{greek_vat.calc_check_digit(str(stem))}"
        name = debtor_name(rng)
        has_contact = rng.random() < 0.5
        email = f"{self.agency_code}.debtor{debtor:03d}@example.org" if has_contact else None
        # From 1000 up, so no generated number equals a demo citizen's (+30690000 0101, 0102).
        phone = f"+30690000{rng.randrange(1_000, 10_000)}" if has_contact else None
        return [
            self._generated_record(rng, serial + offset, as_of, tax_id, name, email, phone)
            for offset in range(rng.randint(1, 4))
        ]

    def _debtor_holding(self, serial: int) -> int | None:
        """The generated debtor whose debts include this serial (or the last one before it), indexing as needed."""
        index = self._index
        while index.frontier < self.debtors and (index.frontier == 0 or index.first_serial(index.frontier) <= serial):
            index.extend(self._walk, min(self.debtors, index.frontier + INDEX_STEP))
        return index.debtor_by_serial(serial, min(index.frontier, self.debtors))

    def _debtor_of_tax_id(self, tax_id: str) -> int | None:
        stem = int(tax_id[:8])
        if tax_id != f"{stem}{greek_vat.calc_check_digit(str(stem))}":
            return None
        self._index.extend(self._walk, self.debtors)
        return self._index.debtor_by_stem(stem, self.debtors)

    def _generated_debt(self, serial: int, as_of: date) -> DebtRecord | None:
        """The debt with this serial as generated, before any acknowledgement."""
        if serial < 1:
            return None
        if serial < self._index.first_generated_serial:
            citizen, plan = self._plans[serial - 1]
            return self._planned_record(citizen, plan, serial, as_of)
        debtor = self._debtor_holding(serial)
        if debtor is None:
            return None
        _, first_serial, records = next(self._walk(debtor, debtor, as_of))
        position = serial - first_serial
        return records[position] if 0 <= position < len(records) else None

    def _serial_of(self, external_id: str) -> int | None:
        prefix = f"{ID_PREFIXES[self.agency_code]}-{self.seed % 10_000:04d}-"
        digits = external_id[len(prefix) :] if external_id.startswith(prefix) else ""
        if not (digits.isascii() and digits.isdigit()):
            return None
        serial = int(digits)
        # Only the exact spelling counts: EC-2026-0000123 is not EC-2026-000123.
        return serial if serial >= 1 and self._external_id(serial) == external_id else None

    def _acks_by_debt(self) -> dict[str, list[AckEntry]]:
        by_debt: dict[str, list[AckEntry]] = {}
        for entry in self._ledger.snapshot(self._ledger_key).values():
            by_debt.setdefault(entry.ack.external_id, []).append(entry)
        return by_debt

    def _external_id(self, serial: int) -> str:
        # The seed's last 4 digits keep other seeds' data sets apart; as_of stays out so ids survive the calendar.
        # Serials from 1,000,000 up simply take a seventh digit, so the ids below stay as they always were.
        return f"{ID_PREFIXES[self.agency_code]}-{self.seed % 10_000:04d}-{serial:06d}"

    def _updated_at(self, serial: int, as_of: date) -> datetime:
        # A hash of the serial rather than a draw, so adding this field left every other generated value unchanged.
        # At least a day back, so that with as_of today no debt claims a change later than now.
        days_ago = 1 + zlib.crc32(f"{self.seed}:{self.agency_code}:{serial}".encode()) % UPDATED_WITHIN_DAYS
        return datetime.combine(as_of - timedelta(days=days_ago), UPDATE_TIME)

    def _planned_record(self, citizen: DemoCitizen, plan: PlannedDebt, serial: int, as_of: date) -> DebtRecord:
        external_id = self._external_id(serial)
        due_date = as_of + timedelta(days=plan.due_in_days)
        installments = schedule(plan.principal_minor, plan.installment_count, due_date, paid_count=0)
        return DebtRecord(
            external_id=external_id,
            tax_id=citizen.tax_id,
            tax_country="GR",
            debtor_name=citizen.full_name,
            category=plan.category,
            kind=plan.kind,
            description=plan.description,
            principal_minor=plan.principal_minor,
            paid_minor=plan.paid_minor,
            currency=self._profile.currency,
            due_date=due_date,
            rf_reference=demo_rf_reference(external_id),
            installments=installments,
            contact_email=citizen.email,
            contact_phone=citizen.phone,
            vehicle_plate=plan.vehicle_plate,
            updated_at=self._updated_at(serial, as_of),
        )

    def _generated_record(
        self,
        rng: random.Random,
        serial: int,
        as_of: date,
        tax_id: str,
        name: str,
        email: str | None,
        phone: str | None,
    ) -> DebtRecord:
        # What rng.choices(categories, weights=(45, 35, 20)) does, draw for draw, without rebuilding its tables.
        category = GENERATED_CATEGORIES[bisect_right(CATEGORY_CUMULATIVE_WEIGHTS, rng.random() * 100.0, 0, 2)]
        kind = rng.choice(KINDS_BY_AGENCY[self.agency_code])
        description, principal = describe(rng, kind)
        plate = vehicle_plate(rng) if kind == "traffic_fine" else None

        outcome = rng.random()
        status = "paid" if outcome < 0.07 else "cancelled" if outcome < 0.10 else "open"
        installments: tuple[InstallmentRecord, ...] = ()
        if category == "settled" and principal < 6_000:
            # Agencies settle in installments only above a threshold; small debts stay certified.
            category = "certified"
        if category == "settled":
            count = rng.randint(3, 12)
            due_date = as_of + timedelta(days=rng.randint(-240, 20))
            if status == "paid":
                paid_count = count
            elif status == "cancelled":
                paid_count = 0
            else:
                paid_count = installments_paid_so_far(rng, count, due_date, as_of)
            installments = schedule(principal, count, due_date, paid_count)
            description = f"Ρύθμιση σε {count} δόσεις: {description}"
            paid = sum(installment.paid_minor for installment in installments)
            if paid == principal:
                status = "paid"
        else:
            offset = rng.randint(-900, -15) if category == "certified" else rng.randint(-20, 75)
            due_date = as_of + timedelta(days=offset)
            if status == "paid":
                paid = principal
            elif status == "open" and rng.random() < 0.25:
                # Whole euros, at least one and always less than the principal: a partial payment.
                paid = rng.randrange(1, principal // 100) * 100
            else:
                paid = 0

        external_id = self._external_id(serial)
        return DebtRecord(
            external_id=external_id,
            tax_id=tax_id,
            tax_country="GR",
            debtor_name=name,
            category=category,
            kind=kind,
            description=description,
            principal_minor=principal,
            paid_minor=paid,
            currency=self._profile.currency,
            due_date=due_date,
            rf_reference=demo_rf_reference(external_id),
            installments=installments,
            status=status,
            contact_email=email,
            contact_phone=phone,
            vehicle_plate=plate,
            updated_at=self._updated_at(serial, as_of),
        )


def demo_connector_factory(agency_code: str, options: Mapping[str, object]) -> DemoERP:
    """Build a DemoERP from options 'seed' and 'debtors' (ints or numeric strings) and 'state_file' (a path)."""
    state_file = options.get("state_file")
    if state_file is not None and (not isinstance(state_file, (str, os.PathLike)) or not str(state_file).strip()):
        raise ValueError(f"The demo ERP option 'state_file' must be the path of a JSON file, not {state_file!r}.")
    return DemoERP(
        agency_code,
        seed=_int_option(options, "seed", 2026),
        debtors=_int_option(options, "debtors", 25),
        state_file=state_file or None,
    )


def _int_option(options: Mapping[str, object], name: str, default: int) -> int:
    value = options.get(name, default)
    problem = f"The demo ERP option {name!r} must be a whole number, not {value!r}."
    # Options from the environment arrive as text; a float or bool would hide a configuration mistake.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(problem)
    try:
        return int(value)
    except ValueError:
        raise ValueError(problem) from None


def _today_in(zone: str) -> date:
    # The agency's calendar decides what is overdue, not the server's; without tz data, the server's will do.
    try:
        return datetime.now(ZoneInfo(zone)).date()
    except ZoneInfoNotFoundError:
        return date.today()
