"""Demo data: the demo ERP's agencies and citizen accounts, created idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.accounts.services import ensure_user
from app.agencies.models import ALL_CATEGORIES, Agency
from app.extensions import db
from app.treasury.services import DemoStaff, ensure_demo_staff
from erp_connectors.demo import DEMO_AGENCIES, DEMO_CITIZENS, DemoCitizen


@dataclass(frozen=True)
class DemoSetup:
    """What `flask demo setup` did."""

    agencies_created: int
    agencies_total: int
    citizens: tuple[DemoCitizen, ...]
    #: One treasury administrator per demo agency (see app.treasury.services.ensure_demo_staff).
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
    db.session.commit()
    return created


def setup_demo() -> DemoSetup:
    """Demo agencies plus one account per demo citizen with its tax ID proven."""
    created = ensure_demo_agencies()
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
