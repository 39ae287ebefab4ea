"""A deterministic demo ERP: fictional agencies, demo citizens and debtors, for development and demos.

Every name, tax id, plate and amount here is made up. The demo citizens' passwords are public on
purpose: they let anyone try the portal and must never be used outside a demo installation.

    python -m erp_connectors.demo dump --agency eastcoast --as-of 2026-03-01
    python -m erp_connectors.demo serve --agency eastcoast --port 8081 [--debtors N] [--token T]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sys
import tempfile
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from stdnum.gr import vat as greek_vat
from stdnum.iso7064 import mod_97_10

from erp_connectors.base import (
    AckRejected,
    AgencyProfile,
    DebtRecord,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    payment_ack_from_dict,
    payment_ack_to_dict,
    record_to_dict,
)

DEMO_AGENCIES: tuple[AgencyProfile, ...] = (
    AgencyProfile(code="eastcoast", name_el="Δήμος Ανατολικής Ακτής", name_en="Municipality of East Coast"),
    AgencyProfile(code="mountvalley", name_el="Δήμος Ορεινής Κοιλάδας", name_en="Municipality of Mountain Valley"),
    AgencyProfile(
        code="eastcoast-water",
        name_el="ΔΕΥΑ Ανατολικής Ακτής",
        name_en="East Coast Municipal Water Company",
    ),
)

#: letters that start each agency's external ids and RF payloads
_ID_PREFIXES = {"eastcoast": "EC", "mountvalley": "MV", "eastcoast-water": "ECW"}

MUNICIPAL_KINDS = ("property_fee", "cleaning_lighting_fee", "traffic_fine", "market_stall_rent")
WATER_KINDS = ("water_bill",)
_KINDS_BY_AGENCY = {"eastcoast": MUNICIPAL_KINDS, "mountvalley": MUNICIPAL_KINDS, "eastcoast-water": WATER_KINDS}

#: bounds of every generated principal, in cents (5,00 € to 2.000,00 €)
MIN_AMOUNT_MINOR = 500
MAX_AMOUNT_MINOR = 200_000

#: days between two installments; a fixed count (not calendar months) so shifting as_of shifts every date alike
INSTALLMENT_INTERVAL_DAYS = 30


@dataclass(frozen=True)
class DemoCitizen:
    """A demo account whose debts exist in every demo agency; its password is public."""

    email: str
    password: str
    full_name: str
    #: a valid Greek AFM, fictional
    tax_id: str
    #: "el" or "en"
    language: str
    #: a fake Greek mobile number
    phone: str


# Computed once as stem + stdnum.gr.vat.calc_check_digit(stem) for the stems 14738260 and 15902417;
# hard-coded so that the accounts stay the same even if the generator changes.
MARIA_TAX_ID = "147382606"
JOHN_TAX_ID = "159024173"

DEMO_CITIZENS: tuple[DemoCitizen, ...] = (
    DemoCitizen(
        email="maria@example.org",
        password="demo-maria-2026",
        full_name="Μαρία Παπαδοπούλου",
        tax_id=MARIA_TAX_ID,
        language="el",
        phone="+306900000101",
    ),
    DemoCitizen(
        email="john@example.org",
        password="demo-john-2026",
        full_name="John Smith",
        tax_id=JOHN_TAX_ID,
        language="en",
        phone="+306900000102",
    ),
)


@dataclass(frozen=True)
class _PlannedDebt:
    """A hand-written debt of a demo citizen; due_in_days counts from as_of (negative: overdue)."""

    category: str
    kind: str
    description: str
    due_in_days: int
    principal_minor: int
    paid_minor: int = 0
    installment_count: int = 0
    vehicle_plate: str | None = None


# Hand-written so that a walkthrough can name exact amounts; each citizen has, in every agency,
# an overdue certified debt and a not-yet-due uncertified one.
_CITIZEN_DEBTS: dict[str, dict[str, tuple[_PlannedDebt, ...]]] = {
    "eastcoast": {
        MARIA_TAX_ID: (
            _PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Αιγαίου 14", -210, 18_640),
            _PlannedDebt("uncertified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Αιγαίου 14", 25, 9_275),
            _PlannedDebt("settled", "property_fee", "Ρύθμιση ΤΑΠ σε 3 δόσεις", -12, 45_000, installment_count=3),
            _PlannedDebt(
                "certified", "market_stall_rent", "Μίσθωμα λαϊκής αγοράς, θέση 27", -95, 32_050, paid_minor=12_000
            ),
        ),
        JOHN_TAX_ID: (
            _PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Ποσειδώνος 3", -150, 24_380),
            _PlannedDebt("uncertified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Ποσειδώνος 3", 40, 6_115),
            _PlannedDebt(
                "settled", "cleaning_lighting_fee", "Ρύθμιση τελών καθαριότητας σε 3 δόσεις", -5, 36_000,
                installment_count=3,
            ),
        ),
    },
    "mountvalley": {
        MARIA_TAX_ID: (
            _PlannedDebt("certified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Ελάτων 5", -320, 15_420),
            _PlannedDebt(
                "uncertified", "traffic_fine", "Πρόστιμο ΚΟΚ, στάθμευση σε θέση ΑμεΑ", 9, 8_000,
                vehicle_plate="ΙΚΑ 1234",
            ),
            _PlannedDebt("uncertified", "property_fee", "ΤΑΠ, οδός Ελάτων 5", 50, 27_310, paid_minor=10_000),
        ),
        JOHN_TAX_ID: (
            _PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Πλατάνων 21", -60, 41_290),
            _PlannedDebt(
                "uncertified", "traffic_fine", "Πρόστιμο ΚΟΚ, στάθμευση σε πεζόδρομο", 14, 4_000,
                vehicle_plate="ΥΡΝ 5820",
            ),
        ),
    },
    "eastcoast-water": {
        MARIA_TAX_ID: (
            _PlannedDebt("certified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 104233", -130, 6_840),
            _PlannedDebt("uncertified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 104233", 18, 3_215),
        ),
        JOHN_TAX_ID: (
            _PlannedDebt(
                "certified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 118702", -75, 11_260, paid_minor=5_000
            ),
            _PlannedDebt("uncertified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 118702", 21, 2_790),
        ),
    },
}

_FIRST_NAMES_FEMALE = ("Ελένη", "Αικατερίνη", "Βασιλική", "Σοφία", "Αγγελική", "Δήμητρα", "Ευαγγελία", "Ιωάννα")
_FIRST_NAMES_MALE = ("Γιώργος", "Κώστας", "Νίκος", "Δημήτρης", "Παναγιώτης", "Βασίλης", "Χρήστος", "Αντώνης")
#: (male form, female form): Greek surnames change with gender
_SURNAMES = (
    ("Παπαδόπουλος", "Παπαδοπούλου"),
    ("Γεωργίου", "Γεωργίου"),
    ("Καραγιάννης", "Καραγιάννη"),
    ("Οικονόμου", "Οικονόμου"),
    ("Σταματόπουλος", "Σταματοπούλου"),
    ("Λαμπράκης", "Λαμπράκη"),
    ("Μακρής", "Μακρή"),
    ("Χριστοδούλου", "Χριστοδούλου"),
    ("Αθανασίου", "Αθανασίου"),
    ("Νικολαΐδης", "Νικολαΐδου"),
)
_STREETS = ("Αιγαίου", "Ελευθερίας", "Ποσειδώνος", "Αγίου Νικολάου", "Κολοκοτρώνη", "Μεγάλου Αλεξάνδρου", "Ελάτων")
_TRAFFIC_OFFENCES = (
    ("Πρόστιμο ΚΟΚ, στάθμευση σε απαγορευμένη θέση", 4_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε πεζοδρόμιο", 8_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε θέση ΑμεΑ", 10_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε στάση λεωφορείου", 20_000),
)
#: the letters Greek plates use: those that look the same in the Latin alphabet
_PLATE_LETTERS = "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"


_GENERATED_CATEGORIES = ("certified", "uncertified", "settled")
#: running totals of the categories' weights 45, 35, 20
_CATEGORY_CUMULATIVE_WEIGHTS = (45, 80, 100)

#: generated debts were last changed by the ERP 1 to this many days before as_of
UPDATED_WITHIN_DAYS = 60
#: the hour of the ERP's nightly batch that stamps generated debts' updated_at
_UPDATE_TIME = time(6, 0, tzinfo=UTC)

#: the largest data set: the AFM stems run out beyond it (see _stem_range)
MAX_DEBTORS = 45_000_000
#: the first debtors draw AFM stems from 10,000,000-19,999,999, as the demo always did; at most half of that
#: space is used so the draws that hit a taken stem stay rare
_CLASSIC_STEM_DEBTORS = 5_000_000
#: debtors per saved state of the random stream: replaying one debtor replays at most this many
_CHECKPOINT_EVERY = 256
#: debtors indexed per step when a look-up needs the index to go further
_INDEX_STEP = 4_096
#: below this many taken AFM stems a set takes less memory than the bitmap (2.5 MB and up) that replaces it
_BITMAP_FROM = 32_768


def _stem_range(debtor: int) -> tuple[int, int]:
    if debtor <= _CLASSIC_STEM_DEBTORS:
        return 10_000_000, 20_000_000
    return 20_000_000, 100_000_000


class _StreamIndex:
    """Where each generated debtor of one (agency, seed) starts in the random stream; grows as walks go further.

    The stream depends on neither as_of nor the number of debtors, so one index serves every DemoERP of
    that agency and seed, and a debtor or debt can be replayed from the nearest checkpoint instead of
    from the start: that is what keeps look-ups quick in a data set of millions.
    """

    def __init__(self, agency_code: str, seed: int, first_generated_serial: int) -> None:
        self.lock = threading.Lock()
        self.first_generated_serial = first_generated_serial
        #: stems[d - 1]: the AFM of debtor d without its check digit
        self._stems = array("I")
        #: first_serials[d - 1]: the serial of debtor d's first debt
        self._first_serials = array("I")
        #: checkpoints[i]: the random state before debtor i * _CHECKPOINT_EVERY + 1
        self._checkpoints: list[tuple[int, array[int], float | None]] = []
        # Seeded by a string, not hash(), so the data is the same in every process and Python version.
        self._checkpoints.append(_pack_state(random.Random(f"{seed}:{agency_code}").getstate()))
        self._taken_set: set[int] | None = {int(citizen.tax_id[:8]) for citizen in DEMO_CITIZENS}
        self._taken_bits = bytearray()
        self._by_stem: tuple[int, array[int], array[int]] = (0, array("I"), array("I"))

    @property
    def frontier(self) -> int:
        """How many debtors are indexed."""
        return len(self._stems)

    def first_serial(self, debtor: int) -> int:
        """The serial of an indexed debtor's first debt."""
        return self._first_serials[debtor - 1]

    def resume(self, debtor: int) -> tuple[int, int, random.Random]:
        """A random stream positioned at the nearest checkpoint at or before debtor: (its debtor, serial, stream)."""
        with self.lock:
            checkpoint = min((debtor - 1) // _CHECKPOINT_EVERY, len(self._checkpoints) - 1)
            version, internal, gauss = self._checkpoints[checkpoint]
            start = checkpoint * _CHECKPOINT_EVERY + 1
            indexed = start <= len(self._first_serials)
            serial = self._first_serials[start - 1] if indexed else self.first_generated_serial
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        return start, serial, rng

    def next_stem(self, rng: random.Random, debtor: int, serial: int) -> int:
        """Draw debtor's AFM stem from rng exactly as the first walk did, indexing the debtor if it is new."""
        low, high = _stem_range(debtor)
        with self.lock:
            if debtor <= len(self._stems):
                known = self._stems[debtor - 1]
                # Stems are unique, so the first draw equal to the known stem is the one the first walk kept.
                while rng.randrange(low, high) != known:
                    pass
                return known
            # Walks go one debtor at a time from an indexed point, so this debtor is the next one to index.
            if (debtor - 1) % _CHECKPOINT_EVERY == 0 and len(self._checkpoints) == (debtor - 1) // _CHECKPOINT_EVERY:
                self._checkpoints.append(_pack_state(rng.getstate()))
            stem = rng.randrange(low, high)
            while self._is_taken(stem):
                stem = rng.randrange(low, high)
            self._take(stem)
            self._stems.append(stem)
            self._first_serials.append(serial)
            return stem

    def extend(self, walk: Callable[[int, int, date], Iterator[object]], debtors: int) -> None:
        """Index the first `debtors` debtors, walking on from the last checkpoint if needed."""
        if self.frontier < debtors:
            # Any date will do: the draws, and so the index, do not depend on it.
            for _ in walk(debtors, debtors, date(2000, 1, 1)):
                pass

    def debtor_by_serial(self, serial: int, limit: int) -> int | None:
        """The last of the first `limit` indexed debtors whose first serial is at or before this one."""
        position = bisect_right(self._first_serials, serial, 0, limit)
        return position or None

    def debtor_by_stem(self, stem: int, limit: int) -> int | None:
        """The debtor (among the first `limit`) with this AFM stem, if any."""
        with self.lock:
            indexed, stems, debtors = self._by_stem
            if indexed != len(self._stems):
                order = sorted(range(len(self._stems)), key=self._stems.__getitem__)
                stems = array("I", (self._stems[position] for position in order))
                debtors = array("I", (position + 1 for position in order))
                self._by_stem = (len(self._stems), stems, debtors)
        position = bisect_left(stems, stem)
        if position < len(stems) and stems[position] == stem and debtors[position] <= limit:
            return debtors[position]
        return None

    def _is_taken(self, stem: int) -> bool:
        if self._taken_set is not None:
            return stem in self._taken_set
        byte = stem >> 3
        return byte < len(self._taken_bits) and bool(self._taken_bits[byte] >> (stem & 7) & 1)

    def _take(self, stem: int) -> None:
        if self._taken_set is not None:
            self._taken_set.add(stem)
            if len(self._taken_set) < _BITMAP_FROM:
                return
            taken, self._taken_set = self._taken_set, None
            for old in taken:
                self._take(old)
            return
        byte = stem >> 3
        if byte >= len(self._taken_bits):
            self._taken_bits.extend(bytes(byte + 1 - len(self._taken_bits)))
        self._taken_bits[byte] |= 1 << (stem & 7)


def _pack_state(state: tuple[Any, ...]) -> tuple[int, array[int], float | None]:
    # A Mersenne Twister state as a tuple of Python ints takes ~22 KB; packed it takes 2.5 KB.
    version, internal, gauss = state
    return version, array("I", internal), gauss


_INDEXES: dict[tuple[str, int], _StreamIndex] = {}
_INDEXES_LOCK = threading.Lock()
#: indexes kept for the process; test runs try many seeds, and each index of a big data set is megabytes
_INDEXES_KEPT = 32


def _stream_index(agency_code: str, seed: int, first_generated_serial: int) -> _StreamIndex:
    with _INDEXES_LOCK:
        index = _INDEXES.pop((agency_code, seed), None)
        if index is None:
            index = _StreamIndex(agency_code, seed, first_generated_serial)
        _INDEXES[(agency_code, seed)] = index
        while len(_INDEXES) > _INDEXES_KEPT:
            del _INDEXES[next(iter(_INDEXES))]
        return index


# -- acknowledged payments --------------------------------------------------------------------------


@dataclass(frozen=True)
class _AckEntry:
    """A payment line the demo ERP accepted, and when it did (the debt's new updated_at)."""

    ack: PaymentAck
    recorded_at: datetime


#: the version of the state file's layout
_STATE_FORMAT = 1


class _AckLedger:
    """Every payment line the demo ERPs of this process accepted, by "agency/seed"; kept in a JSON file if given.

    Readers see a snapshot that is never changed in place; writers rebuild the book under a lock (and,
    with a file, under an exclusive lock on a side file, re-reading it first) and replace the file
    atomically, so a web app and a worker sharing the file never lose each other's acks.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._books: dict[str, dict[str, _AckEntry]] = {}
        self._file_signature: tuple[int, int, int] | None = None

    def snapshot(self, key: str) -> Mapping[str, _AckEntry]:
        """The book of one agency and seed as it is now: line id → entry, in the order they were recorded."""
        with self._lock:
            self._reload()
            return self._books.get(key, {})

    @contextmanager
    def updating(self, key: str) -> Iterator[dict[str, _AckEntry]]:
        """A copy of the book to change; saved (atomically) when the block ends without an exception."""
        with self._lock, _exclusive_file_lock(self.path):
            self._reload()
            current = self._books.get(key, {})
            book = dict(current)
            yield book
            if book != current:
                self._books[key] = book
                self._save()

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._books, self._file_signature = {}, None
            return
        signature = (status.st_ino, status.st_mtime_ns, status.st_size)
        if signature == self._file_signature:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            books = {
                key: {
                    item["ack"]["line_id"]: _AckEntry(
                        payment_ack_from_dict(item["ack"]), datetime.fromisoformat(item["recorded_at"])
                    )
                    for item in items
                }
                for key, items in data["acknowledgements"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"The demo ERP state file {self.path} cannot be read ({error}).") from None
        self._books, self._file_signature = books, signature

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": _STATE_FORMAT,
            "acknowledgements": {
                key: [
                    {"recorded_at": entry.recorded_at.isoformat(), "ack": payment_ack_to_dict(entry.ack)}
                    for entry in book.values()
                ]
                for key, book in self._books.items()
                if book
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed over it: readers see the old file or the new one, never half.
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, ensure_ascii=False, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        status = os.stat(self.path)
        self._file_signature = (status.st_ino, status.st_mtime_ns, status.st_size)


@contextmanager
def _exclusive_file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on path's side file, so writers in other processes take turns."""
    if path is None or fcntl is None:
        # Without fcntl (Windows), processes sharing a state file may race; the demo ERP is a sandbox.
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


_LEDGERS: dict[Path | None, _AckLedger] = {}
_LEDGERS_LOCK = threading.Lock()


def _ack_ledger(path: Path | None) -> _AckLedger:
    with _LEDGERS_LOCK:
        return _LEDGERS.setdefault(path, _AckLedger(path))


def _with_acks(record: DebtRecord, entries: Iterable[_AckEntry]) -> DebtRecord:
    """The record as the ERP reports it once these payment lines are booked."""
    for entry in entries:
        ack = entry.ack
        installments = record.installments
        if installments:
            remaining = ack.principal_minor
            booked = []
            for installment in installments:
                # Without an installment number, a payment settles the earliest installments first.
                if remaining and ack.installment_number in (None, installment.number):
                    share = min(remaining, installment.amount_minor - installment.paid_minor)
                    installment = replace(installment, paid_minor=installment.paid_minor + share)
                    remaining -= share
                booked.append(installment)
            installments = tuple(booked)
            paid = sum(installment.paid_minor for installment in installments)
        else:
            paid = min(record.principal_minor, record.paid_minor + ack.principal_minor)
        updated_at = entry.recorded_at if record.updated_at is None else max(record.updated_at, entry.recorded_at)
        record = replace(
            record,
            paid_minor=paid,
            installments=installments,
            status="paid" if paid == record.principal_minor else record.status,
            updated_at=updated_at,
        )
    return record


def _ack_problem(record: DebtRecord, ack: PaymentAck) -> str | None:
    """Why the ERP refuses this payment line for this debt, as a sentence, or None if it accepts it."""
    if ack.currency != record.currency:
        return f"The debt {record.external_id} is in {record.currency}, not {ack.currency}."
    if record.status == "cancelled":
        return f"The debt {record.external_id} was cancelled; it takes no payments."
    if ack.installment_number is None:
        owed, what = record.outstanding_minor, f"the debt {record.external_id}"
    else:
        numbers = [installment.number for installment in record.installments]
        if ack.installment_number not in numbers:
            count = f"{len(numbers)} installments" if numbers else "no installments"
            return (
                f"The debt {record.external_id} has {count}; "
                f"installment {ack.installment_number} does not exist."
            )
        installment = record.installments[numbers.index(ack.installment_number)]
        owed = installment.amount_minor - installment.paid_minor
        what = f"installment {installment.number} of the debt {record.external_id}"
    if ack.principal_minor > owed:
        return f"The payment of {ack.principal_minor} minor units exceeds the {owed} minor units still owed on {what}."
    return None


def _checked_since(changed_since: datetime | None) -> datetime | None:
    if changed_since is not None and (not isinstance(changed_since, datetime) or changed_since.utcoffset() is None):
        raise ValueError(f"changed_since must be a timezone-aware datetime, not {changed_since!r}.")
    return changed_since


def agency_profile(agency_code: str) -> AgencyProfile:
    """The demo agency with this code; ValueError with a sentence if there is none."""
    for profile in DEMO_AGENCIES:
        if profile.code == agency_code:
            return profile
    known = ", ".join(profile.code for profile in DEMO_AGENCIES)
    raise ValueError(f"There is no demo agency with the code {agency_code!r}; the demo agencies are {known}.")


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
            (citizen, plan) for citizen in DEMO_CITIZENS for plan in _CITIZEN_DEBTS[agency_code][citizen.tax_id]
        )
        self._index = _stream_index(agency_code, seed, first_generated_serial=len(self._plans) + 1)
        self._ledger = _ack_ledger(self.state_file)
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
        return (
            f"DemoERP({self.agency_code!r}, seed={self.seed}, debtors={self.debtors}, as_of={self._as_of!r}{state})"
        )

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
        return [_with_acks(record, acks.get(record.external_id, ())) for record in records]

    def debt(self, external_id: str) -> DebtRecord | None:
        """The debt with this external id as the ERP reports it now, or None if there is no such debt."""
        serial = self._serial_of(external_id)
        record = self._generated_debt(serial, self._today()) if serial is not None else None
        if record is None:
            return None
        return _with_acks(record, self._acks_by_debt().get(external_id, ()))

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
            problem = _ack_problem(_with_acks(record, entries), ack)
            if problem is not None:
                raise AckRejected(problem)
            book[ack.line_id] = _AckEntry(ack, datetime.now(UTC))
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
                record = _with_acks(record, acks.get(record.external_id, ()))
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
        name = _debtor_name(rng)
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
            index.extend(self._walk, min(self.debtors, index.frontier + _INDEX_STEP))
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
        prefix = f"{_ID_PREFIXES[self.agency_code]}-{self.seed % 10_000:04d}-"
        digits = external_id[len(prefix) :] if external_id.startswith(prefix) else ""
        if not (digits.isascii() and digits.isdigit()):
            return None
        serial = int(digits)
        # Only the exact spelling counts: EC-2026-0000123 is not EC-2026-000123.
        return serial if serial >= 1 and self._external_id(serial) == external_id else None

    def _acks_by_debt(self) -> dict[str, list[_AckEntry]]:
        by_debt: dict[str, list[_AckEntry]] = {}
        for entry in self._ledger.snapshot(self._ledger_key).values():
            by_debt.setdefault(entry.ack.external_id, []).append(entry)
        return by_debt

    def _external_id(self, serial: int) -> str:
        # The seed's last 4 digits keep other seeds' data sets apart; as_of stays out so ids survive the calendar.
        # Serials from 1,000,000 up simply take a seventh digit, so the ids below stay as they always were.
        return f"{_ID_PREFIXES[self.agency_code]}-{self.seed % 10_000:04d}-{serial:06d}"

    def _updated_at(self, serial: int, as_of: date) -> datetime:
        # A hash of the serial rather than a draw, so adding this field left every other generated value unchanged.
        # At least a day back, so that with as_of today no debt claims a change later than now.
        days_ago = 1 + zlib.crc32(f"{self.seed}:{self.agency_code}:{serial}".encode()) % UPDATED_WITHIN_DAYS
        return datetime.combine(as_of - timedelta(days=days_ago), _UPDATE_TIME)

    def _planned_record(self, citizen: DemoCitizen, plan: _PlannedDebt, serial: int, as_of: date) -> DebtRecord:
        external_id = self._external_id(serial)
        due_date = as_of + timedelta(days=plan.due_in_days)
        installments = _schedule(plan.principal_minor, plan.installment_count, due_date, paid_count=0)
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
        category = _GENERATED_CATEGORIES[bisect_right(_CATEGORY_CUMULATIVE_WEIGHTS, rng.random() * 100.0, 0, 2)]
        kind = rng.choice(_KINDS_BY_AGENCY[self.agency_code])
        description, principal = _describe(rng, kind)
        plate = _vehicle_plate(rng) if kind == "traffic_fine" else None

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
                paid_count = _installments_paid_so_far(rng, count, due_date, as_of)
            installments = _schedule(principal, count, due_date, paid_count)
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


def demo_rf_reference(external_id: str) -> str:
    """A valid ISO 11649 RF reference built from the letters and digits of an external id."""
    payload = "".join(filter(str.isalnum, external_id)).upper()
    if len(payload) > 21:
        raise ValueError(f"The external id {external_id!r} is too long for an RF reference (at most 21 characters).")
    if not payload.isascii():
        return f"RF{mod_97_10.calc_check_digits(payload + 'RF')}{payload}"
    # ISO 7064 MOD 97-10 done with one int(): stdnum's digit-by-digit loop was a quarter of the generation time.
    check = 98 - int((payload + "RF00").translate(_LETTER_VALUES)) % 97
    return f"RF{check:02d}{payload}"


#: A=10 ... Z=35, as ISO 11649 turns letters into digits
_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


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


def _debtor_name(rng: random.Random) -> str:
    male_surname, female_surname = rng.choice(_SURNAMES)
    if rng.random() < 0.5:
        return f"{rng.choice(_FIRST_NAMES_FEMALE)} {female_surname}"
    return f"{rng.choice(_FIRST_NAMES_MALE)} {male_surname}"


def _describe(rng: random.Random, kind: str) -> tuple[str, int]:
    """A description and a principal in cents for a generated debt of this kind."""
    address = f"οδός {rng.choice(_STREETS)} {rng.randint(1, 120)}"
    if kind == "traffic_fine":
        offence, amount = rng.choice(_TRAFFIC_OFFENCES)
        return offence, amount
    if kind == "property_fee":
        return f"ΤΑΠ, {address}", rng.randint(2_000, 60_000)
    if kind == "cleaning_lighting_fee":
        return f"Τέλη καθαριότητας, {address}", rng.randint(3_000, 80_000)
    if kind == "market_stall_rent":
        return f"Μίσθωμα λαϊκής αγοράς, θέση {rng.randint(1, 80)}", rng.randint(10_000, MAX_AMOUNT_MINOR)
    if kind == "water_bill":
        return f"Λογαριασμός ύδρευσης, παροχή {rng.randint(100_000, 199_999)}", rng.randint(MIN_AMOUNT_MINOR, 30_000)
    raise ValueError(f"The demo ERP has no amounts for the kind {kind!r}.")


def _vehicle_plate(rng: random.Random) -> str:
    letters = "".join(rng.choice(_PLATE_LETTERS) for _ in range(3))
    return f"{letters} {rng.randint(1000, 9999)}"


def _installments_paid_so_far(rng: random.Random, count: int, first_due: date, as_of: date) -> int:
    """How many installments, from the first, a debtor has paid: only past ones, stopping at the first missed."""
    paid = 0
    for index in range(count):
        due = first_due + timedelta(days=index * INSTALLMENT_INTERVAL_DAYS)
        if due >= as_of or rng.random() >= 0.75:
            break
        paid += 1
    return paid


def _schedule(principal_minor: int, count: int, first_due: date, paid_count: int) -> tuple[InstallmentRecord, ...]:
    """Split a principal into count installments; the first takes the leftover cents so the sum is exact."""
    if count == 0:
        return ()
    base, leftover = divmod(principal_minor, count)
    installments = []
    for index in range(count):
        amount = base + leftover if index == 0 else base
        installments.append(
            InstallmentRecord(
                number=index + 1,
                due_date=first_due + timedelta(days=index * INSTALLMENT_INTERVAL_DAYS),
                amount_minor=amount,
                paid_minor=amount if index < paid_count else 0,
            )
        )
    return tuple(installments)


def _record_line(item: DebtRecord | RecordError) -> str:
    if isinstance(item, RecordError):
        return json.dumps({"error": item.reason, "raw": item.raw}, ensure_ascii=False, default=str)
    return json.dumps(record_to_dict(item), ensure_ascii=False)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-31.") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: `dump` prints an agency's demo debts as JSON Lines, `serve` serves them over HTTP."""
    parser = argparse.ArgumentParser(prog="python -m erp_connectors.demo", description="The Civic Pay demo ERP.")
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="print an agency's demo debts as JSON Lines")
    serve = commands.add_parser("serve", help="serve an agency's demo ERP over HTTP on a loopback address")
    for command in (dump, serve):
        command.add_argument("--agency", required=True, choices=[profile.code for profile in DEMO_AGENCIES])
        command.add_argument("--seed", type=int, default=2026)
        command.add_argument("--debtors", type=int, default=25)
        command.add_argument(
            "--as-of", type=_iso_date, default=None, help="YYYY-MM-DD; today in the agency if left out"
        )
        command.add_argument("--state-file", default=None, help="JSON file of acknowledged payments, for all processes")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8081, help="0 lets the system choose (default 8081)")
    serve.add_argument("--token", default=None, help="require this bearer token")
    serve.add_argument("--page-size", type=int, default=100, help="debts per page unless the client asks (100)")
    arguments = parser.parse_args(argv)
    if arguments.command == "serve":
        return _serve(arguments, serve)

    try:
        connector = DemoERP(
            arguments.agency,
            seed=arguments.seed,
            debtors=arguments.debtors,
            as_of=arguments.as_of,
            state_file=arguments.state_file,
        )
    except ValueError as error:
        dump.error(str(error))
    if isinstance(sys.stdout, io.TextIOWrapper):
        # JSON Lines are UTF-8 whatever the console's code page; the Greek text must not be mangled.
        sys.stdout.reconfigure(encoding="utf-8")
    try:
        for item in connector.iter_debts():
            sys.stdout.write(_record_line(item) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has had enough; point stdout at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _serve(arguments: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    # Imported here: the server module imports this one.
    from erp_connectors.demo_server import DemoERPServer

    try:
        server = DemoERPServer(
            arguments.agency,
            host=arguments.host,
            port=arguments.port,
            debtors=arguments.debtors,
            seed=arguments.seed,
            token=arguments.token,
            page_size=arguments.page_size,
            as_of=arguments.as_of,
            state_file=arguments.state_file,
        )
    except ValueError as error:
        command.error(str(error))
    except OSError as error:
        print(f"The demo ERP cannot listen on {arguments.host}:{arguments.port}: {error.strerror}.", file=sys.stderr)
        return 1
    # Indexed in the background, so the first debtor look-up of a big data set does not wait for a full walk.
    threading.Thread(target=server.erp.warm_up, name="demo-erp-warm-up", daemon=True).start()
    print(f"Demo ERP of {arguments.agency} serving at {server.url} (Ctrl+C to stop)", flush=True)
    # SIGTERM (a supervisor, or a test's terminate()) ends it as cleanly as Ctrl+C does.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _exit_on_signal(signal_number: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
