"""The demo ERP's fixed data: its agencies, the demo citizens and their hand-written debts, and the
words and amounts generated debts are drawn from.

Every name, tax id, plate and amount here is made up. The demo citizens' passwords are public on
purpose: they let anyone try the portal and must never be used outside a demo installation.
"""

from __future__ import annotations

from dataclasses import dataclass

from erp_connectors.base import AgencyProfile

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
ID_PREFIXES = {"eastcoast": "EC", "mountvalley": "MV", "eastcoast-water": "ECW"}

MUNICIPAL_KINDS = ("property_fee", "cleaning_lighting_fee", "traffic_fine", "market_stall_rent")
WATER_KINDS = ("water_bill",)
KINDS_BY_AGENCY = {"eastcoast": MUNICIPAL_KINDS, "mountvalley": MUNICIPAL_KINDS, "eastcoast-water": WATER_KINDS}

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
class PlannedDebt:
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
CITIZEN_DEBTS: dict[str, dict[str, tuple[PlannedDebt, ...]]] = {
    "eastcoast": {
        MARIA_TAX_ID: (
            PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Αιγαίου 14", -210, 18_640),
            PlannedDebt("uncertified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Αιγαίου 14", 25, 9_275),
            PlannedDebt("settled", "property_fee", "Ρύθμιση ΤΑΠ σε 3 δόσεις", -12, 45_000, installment_count=3),
            PlannedDebt(
                "certified", "market_stall_rent", "Μίσθωμα λαϊκής αγοράς, θέση 27", -95, 32_050, paid_minor=12_000
            ),
        ),
        JOHN_TAX_ID: (
            PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Ποσειδώνος 3", -150, 24_380),
            PlannedDebt("uncertified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Ποσειδώνος 3", 40, 6_115),
            PlannedDebt(
                "settled",
                "cleaning_lighting_fee",
                "Ρύθμιση τελών καθαριότητας σε 3 δόσεις",
                -5,
                36_000,
                installment_count=3,
            ),
        ),
    },
    "mountvalley": {
        MARIA_TAX_ID: (
            PlannedDebt("certified", "cleaning_lighting_fee", "Τέλη καθαριότητας, οδός Ελάτων 5", -320, 15_420),
            PlannedDebt(
                "uncertified",
                "traffic_fine",
                "Πρόστιμο ΚΟΚ, στάθμευση σε θέση ΑμεΑ",
                9,
                8_000,
                vehicle_plate="ΙΚΑ 1234",
            ),
            PlannedDebt("uncertified", "property_fee", "ΤΑΠ, οδός Ελάτων 5", 50, 27_310, paid_minor=10_000),
        ),
        JOHN_TAX_ID: (
            PlannedDebt("certified", "property_fee", "ΤΑΠ, οδός Πλατάνων 21", -60, 41_290),
            PlannedDebt(
                "uncertified",
                "traffic_fine",
                "Πρόστιμο ΚΟΚ, στάθμευση σε πεζόδρομο",
                14,
                4_000,
                vehicle_plate="ΥΡΝ 5820",
            ),
        ),
    },
    "eastcoast-water": {
        MARIA_TAX_ID: (
            PlannedDebt("certified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 104233", -130, 6_840),
            PlannedDebt("uncertified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 104233", 18, 3_215),
        ),
        JOHN_TAX_ID: (
            PlannedDebt(
                "certified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 118702", -75, 11_260, paid_minor=5_000
            ),
            PlannedDebt("uncertified", "water_bill", "Λογαριασμός ύδρευσης, παροχή 118702", 21, 2_790),
        ),
    },
}

FIRST_NAMES_FEMALE = ("Ελένη", "Αικατερίνη", "Βασιλική", "Σοφία", "Αγγελική", "Δήμητρα", "Ευαγγελία", "Ιωάννα")
FIRST_NAMES_MALE = ("Γιώργος", "Κώστας", "Νίκος", "Δημήτρης", "Παναγιώτης", "Βασίλης", "Χρήστος", "Αντώνης")
#: (male form, female form): Greek surnames change with gender
SURNAMES = (
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
STREETS = ("Αιγαίου", "Ελευθερίας", "Ποσειδώνος", "Αγίου Νικολάου", "Κολοκοτρώνη", "Μεγάλου Αλεξάνδρου", "Ελάτων")
TRAFFIC_OFFENCES = (
    ("Πρόστιμο ΚΟΚ, στάθμευση σε απαγορευμένη θέση", 4_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε πεζοδρόμιο", 8_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε θέση ΑμεΑ", 10_000),
    ("Πρόστιμο ΚΟΚ, στάθμευση σε στάση λεωφορείου", 20_000),
)
#: the letters Greek plates use: those that look the same in the Latin alphabet
PLATE_LETTERS = "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"


def agency_profile(agency_code: str) -> AgencyProfile:
    """The demo agency with this code; ValueError with a sentence if there is none."""
    for profile in DEMO_AGENCIES:
        if profile.code == agency_code:
            return profile
    known = ", ".join(profile.code for profile in DEMO_AGENCIES)
    raise ValueError(f"There is no demo agency with the code {agency_code!r}; the demo agencies are {known}.")
