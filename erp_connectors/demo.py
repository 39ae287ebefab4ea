"""A deterministic demo ERP: fictional agencies, demo citizens and debtors, for development and demos.

Every name, tax id, plate and amount here is made up. The demo citizens' passwords are public on
purpose: they let anyone try the portal and must never be used outside a demo installation.

    python -m erp_connectors.demo dump --agency eastcoast --as-of 2026-03-01
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stdnum.gr import vat as greek_vat
from stdnum.iso7064 import mod_97_10

from erp_connectors.base import (
    AgencyProfile,
    DebtRecord,
    InstallmentRecord,
    RecordError,
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


def agency_profile(agency_code: str) -> AgencyProfile:
    """The demo agency with this code; ValueError with a sentence if there is none."""
    for profile in DEMO_AGENCIES:
        if profile.code == agency_code:
            return profile
    known = ", ".join(profile.code for profile in DEMO_AGENCIES)
    raise ValueError(f"There is no demo agency with the code {agency_code!r}; the demo agencies are {known}.")


class DemoERP:
    """A sandbox ERP that always holds the same fictional debts for a given agency, seed and size."""

    def __init__(self, agency_code: str, *, seed: int = 2026, debtors: int = 25, as_of: date | None = None) -> None:
        self._profile = agency_profile(agency_code)
        if debtors < 0:
            raise ValueError(f"The number of demo debtors cannot be negative (got {debtors}).")
        self.agency_code = agency_code
        self.seed = seed
        self.debtors = debtors
        # None means "today", resolved at each iteration so a long-lived connector keeps up with the calendar.
        self._as_of = as_of

    @property
    def profile(self) -> AgencyProfile:
        """The agency this ERP belongs to."""
        return self._profile

    def __repr__(self) -> str:
        return f"DemoERP({self.agency_code!r}, seed={self.seed}, debtors={self.debtors}, as_of={self._as_of!r})"

    def check(self) -> None:
        """Always reachable: it lives in this process."""

    def iter_debts(self) -> Iterator[DebtRecord | RecordError]:
        """Yield the demo citizens' debts, then those of the generated debtors, always in the same order."""
        as_of = self._as_of or _today_in(self._profile.timezone)
        # Seeded by a string, not hash(), so the data is the same in every process and Python version.
        rng = random.Random(f"{self.seed}:{self.agency_code}")
        serials = iter(range(1, 1_000_000))
        taken_tax_ids = {citizen.tax_id for citizen in DEMO_CITIZENS}

        for citizen in DEMO_CITIZENS:
            for plan in _CITIZEN_DEBTS[self.agency_code][citizen.tax_id]:
                yield self._planned_record(citizen, plan, next(serials), as_of)

        for debtor_number in range(1, self.debtors + 1):
            tax_id = _new_tax_id(rng, taken_tax_ids)
            name = _debtor_name(rng)
            has_contact = rng.random() < 0.5
            email = f"{self.agency_code}.debtor{debtor_number:03d}@example.org" if has_contact else None
            # From 1000 up, so no generated number equals a demo citizen's (+30690000 0101, 0102).
            phone = f"+30690000{rng.randrange(1_000, 10_000)}" if has_contact else None
            for _ in range(rng.randint(1, 4)):
                yield self._generated_record(rng, next(serials), as_of, tax_id, name, email, phone)

    def _external_id(self, serial: int) -> str:
        # The seed's last 4 digits keep other seeds' data sets apart; as_of stays out so ids survive the calendar.
        return f"{_ID_PREFIXES[self.agency_code]}-{self.seed % 10_000:04d}-{serial:06d}"

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
        category = rng.choices(("certified", "uncertified", "settled"), weights=(45, 35, 20))[0]
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
        )


def demo_rf_reference(external_id: str) -> str:
    """A valid ISO 11649 RF reference built from the letters and digits of an external id."""
    payload = "".join(character for character in external_id if character.isalnum()).upper()
    if len(payload) > 21:
        raise ValueError(f"The external id {external_id!r} is too long for an RF reference (at most 21 characters).")
    return f"RF{mod_97_10.calc_check_digits(payload + 'RF')}{payload}"


def demo_connector_factory(agency_code: str, options: Mapping[str, object]) -> DemoERP:
    """Build a DemoERP from configuration options 'seed' and 'debtors' (ints or numeric strings)."""
    return DemoERP(
        agency_code,
        seed=_int_option(options, "seed", 2026),
        debtors=_int_option(options, "debtors", 25),
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


def _today_in(timezone: str) -> date:
    # The agency's calendar decides what is overdue, not the server's; without tz data, the server's will do.
    try:
        return datetime.now(ZoneInfo(timezone)).date()
    except ZoneInfoNotFoundError:
        return date.today()


def _new_tax_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        # Stems starting with 1 look like the AFMs of individuals.
        stem = str(rng.randrange(10_000_000, 20_000_000))
        tax_id = stem + greek_vat.calc_check_digit(stem)
        if tax_id not in taken:
            taken.add(tax_id)
            return tax_id


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
    """Command line entry point: `dump` prints an agency's demo debts as JSON Lines."""
    parser = argparse.ArgumentParser(prog="python -m erp_connectors.demo", description="The Civic Pay demo ERP.")
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="print an agency's demo debts as JSON Lines")
    dump.add_argument("--agency", required=True, choices=[profile.code for profile in DEMO_AGENCIES])
    dump.add_argument("--seed", type=int, default=2026)
    dump.add_argument("--debtors", type=int, default=25)
    dump.add_argument("--as-of", type=_iso_date, default=None, help="YYYY-MM-DD; today in the agency if left out")
    arguments = parser.parse_args(argv)

    try:
        connector = DemoERP(arguments.agency, seed=arguments.seed, debtors=arguments.debtors, as_of=arguments.as_of)
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


if __name__ == "__main__":
    sys.exit(main())
