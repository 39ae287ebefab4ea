"""Demo data: the demo ERP's agencies and citizen accounts, created idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.accounts.services import ensure_user
from app.agencies.models import ALL_CATEGORIES, Agency
from app.catalog.models import CatalogItem
from app.extensions import db
from app.treasury.access.services import DemoStaff, ensure_demo_staff
from erp_connectors.demo import DEMO_AGENCIES, DEMO_CITIZENS, DemoCitizen


@dataclass(frozen=True)
class DemoSetup:
    """What `flask demo setup` did."""

    agencies_created: int
    agencies_total: int
    citizens: tuple[DemoCitizen, ...]
    #: One treasury administrator per demo agency (see app.treasury.access.services.ensure_demo_staff).
    staff: tuple[DemoStaff, ...] = ()


def ensure_demo_agencies() -> int:
    """Create each demo agency (wired to the demo ERP) unless it exists; returns how many were new."""
    existing = set(db.session.scalars(select(Agency.code)))
    created = 0
    for profile in DEMO_AGENCIES:
        if profile.code in existing:
            continue
        db.session.add(
            Agency(
                code=profile.code,
                name_el=profile.name_el,
                name_en=profile.name_en,
                currency=profile.currency,
                timezone=profile.timezone,
                country=profile.country,
                online_categories=list(ALL_CATEGORIES),
                online_kinds=None,
                surcharge_policy={},
                installments_in_order=True,
                # A parking fine's notice shows the car's plate; other notices the tax ID.
                guest_second_factor={"default": "tax_id_last4", "traffic_fine": "plate"},
                connector={"type": "demo", "options": {}},
            )
        )
        created += 1
    db.session.flush()
    return created


#: What the first demo agency sells online (code, kind, Greek and English names, price or range,
#: capacity, questions, account only): a concert with few seats, a donation, a permit.
DEMO_ITEMS = (
    {
        "code": "summer-concert",
        "kind": "ticket",
        "name_el": "Καλοκαιρινή συναυλία στο δημοτικό θέατρο",
        "name_en": "Summer concert at the municipal theatre",
        "description_el": "Σάββατο 4 Ιουλίου, 21:00. Ελεύθερη θέση.",
        "description_en": "Saturday 4 July, 21:00. Unreserved seating.",
        "price_minor": 1500,
        "capacity": 50,
        "max_per_order": 6,
        "questions": [
            {"key": "holder", "label_el": "Ονοματεπώνυμο", "label_en": "Name on the ticket", "required": True}
        ],
    },
    {
        "code": "animal-shelter",
        "kind": "donation",
        "name_el": "Δωρεά στο δημοτικό καταφύγιο ζώων",
        "name_en": "Donation to the municipal animal shelter",
        "description_el": "Κάθε ευρώ πηγαίνει σε τροφή και κτηνιατρική φροντίδα.",
        "description_en": "Every euro goes to food and veterinary care.",
        "min_minor": 500,
        "max_minor": 100000,
        "max_per_order": 1,
    },
    {
        "code": "market-stall",
        "kind": "permit",
        "name_el": "Άδεια θέσης στη λαϊκή αγορά (μηνιαία)",
        "name_en": "Street market stall permit (monthly)",
        "price_minor": 4000,
        "max_per_order": 1,
        "requires_account": True,
    },
)


def ensure_demo_items(agency: Agency) -> int:
    """The demo catalog of an agency, created unless its items exist; returns how many were new."""
    existing = set(db.session.scalars(select(CatalogItem.code).where(CatalogItem.agency_id == agency.id)))
    created = 0
    for values in DEMO_ITEMS:
        if values["code"] in existing:
            continue
        db.session.add(CatalogItem(agency_id=agency.id, currency=agency.currency, **values))
        created += 1
    db.session.flush()
    return created


def setup_demo() -> DemoSetup:
    """Demo agencies plus one account per demo citizen with its tax ID proven."""
    created = ensure_demo_agencies()
    first = db.session.scalar(select(Agency).where(Agency.code == DEMO_AGENCIES[0].code))
    if first is not None:
        ensure_demo_items(first)
    for citizen in DEMO_CITIZENS:
        ensure_user(
            email=citizen.email,
            password=citizen.password,
            full_name=citizen.full_name,
            language=citizen.language,
            tax_ids=[("GR", citizen.tax_id)],
        )
    total = len(db.session.scalars(select(Agency.id)).all())
    demo_codes = [profile.code for profile in DEMO_AGENCIES]
    agencies = db.session.scalars(select(Agency).where(Agency.code.in_(demo_codes)).order_by(Agency.code)).all()
    staff = tuple(ensure_demo_staff(agencies))
    return DemoSetup(agencies_created=created, agencies_total=total, citizens=DEMO_CITIZENS, staff=staff)
