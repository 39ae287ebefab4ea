"""The citizen's dashboard in-process: time per page at 3, 30 and 300 debts, statements per page,
and where the time goes (cProfile).

    .venv/bin/python bench/dashboard.py                      # SQLite in a temporary directory
    .venv/bin/python bench/dashboard.py --postgres           # a fresh database on 127.0.0.1:5432
    .venv/bin/python bench/dashboard.py --profile 30         # plus the top of a cProfile at 30 debts

One citizen owes the debts, spread over three agencies (certified, settled with three
installments, uncertified; several kinds, all overdue), in Greek: the language with the most
formatting. Each size is timed over ``--repeat`` requests through Flask's test client (no HTTP
server), after two warm-up requests; the best is compared (the machine is shared, and only the
best is free of others' load). Target: 300 debts <= 5 x the time of 30.

``seed_citizen`` is shared with ``bench/load.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, event, text

#: The citizen every benchmark logs in as.
EMAIL = "bench-citizen@example.org"
PASSWORD = "bench-citizen-password"
KINDS = ("property_fee", "cleaning_lighting_fee", "traffic_fine", "water_bill", "market_stall_rent")


def seed_citizen(debts: int, *, agencies: int = 3, tag: str = "") -> dict[str, str]:
    """A citizen (EMAIL, Greek) owing ``debts`` debts over ``agencies`` agencies; inside an app context.

    Returns one payment code of a guest-payable debt (``code``) and its second factor (``factor``).
    """
    from app.accounts.models import TaxIdLink, User
    from app.accounts.services import hash_password
    from app.agencies.models import Agency
    from app.db import utcnow
    from app.debts.models import Debt, Debtor, Installment
    from app.domain.references import rf_for_debt
    from app.extensions import db

    rows = [
        Agency(code=f"bench{tag}{number}", name_el=f"Δήμος Δοκιμής {number}", name_en=f"Bench Town {number}",
               connector={"type": "push"}, surcharge_policy={} if number else {"grace_days": 5})
        for number in range(agencies)
    ]  # fmt: skip
    db.session.add_all(rows)
    tax_id = "099999990"  # not bench/treasury.py's payer: bench/load.py seeds both
    debtor = Debtor(country="GR", tax_id=tax_id, name="Μαρία Δοκιμή")
    user = User(email=EMAIL, password_hash=hash_password(PASSWORD), full_name="Μαρία Δοκιμή", language="el",
                email_verified_at=utcnow())  # fmt: skip
    db.session.add_all([debtor, user])
    db.session.flush()
    db.session.add(TaxIdLink(user_id=user.id, country="GR", tax_id=tax_id, verified_at=utcnow()))
    today = date.today()
    first_code = ""
    for number in range(debts):
        agency = rows[number % agencies]
        category = ("certified", "certified", "settled", "uncertified")[number % 4]
        external_id = f"B{tag}-{number:06d}"
        debt = Debt(
            agency_id=agency.id, debtor_id=debtor.id, external_id=external_id, category=category,
            kind=KINDS[number % len(KINDS)], description=f"Οφειλή {number}, οδός Αιγαίου {number % 90 + 1}",
            currency="EUR", principal_minor=1000 + 137 * number, paid_minor=0,
            due_date=today - timedelta(days=10 + 17 * (number % 40)), rf_reference=rf_for_debt(agency.code,
            external_id), status="open", vehicle_plate="ΙΚΑ1234" if number % 5 == 2 else None,
        )  # fmt: skip
        db.session.add(debt)
        first_code = first_code or debt.rf_reference
        if category == "settled":
            db.session.flush()
            for part in range(3):
                db.session.add(Installment(debt_id=debt.id, number=part + 1, amount_minor=(1000 + 137 * number) // 3,
                                           due_date=debt.due_date + timedelta(days=30 * part), paid_minor=0,
                                           status="open"))  # fmt: skip
    db.session.commit()
    return {"code": first_code, "factor": tax_id[-4:]}


def make_app(url: str):
    """The portal on ``url`` (migrated here), quiet, with test-mode limits and no guest floor."""
    from app import create_app, migrate

    migrate.upgrade(url)
    return create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})


def logged_in_client(app):
    """A test client logged in as the bench citizen, in Greek."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303, response.status_code
    return client


@contextlib.contextmanager
def database(postgres: bool):
    """A fresh, empty database URL (SQLite file, or a PostgreSQL database dropped afterwards)."""
    if not postgres:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    name = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(size: int, postgres: bool, repeat: int, profile: bool, sort: str = "tottime") -> dict[str, float]:
    """Median milliseconds and statements per dashboard for one citizen with ``size`` debts."""
    from app.extensions import db

    with database(postgres) as url:
        app = make_app(url)
        with app.app_context():
            seed_citizen(size)
        client = logged_in_client(app)
        for _ in range(2):
            assert client.get("/debts").status_code == 200
        statements = []
        engine = db.engine_of(app)
        listener = lambda *args: statements.append(args[2])  # noqa: E731 - every statement, BEGIN too
        event.listen(engine, "before_cursor_execute", listener)
        client.get("/debts")
        event.remove(engine, "before_cursor_execute", listener)
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get("/debts")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        result = {
            "ms": min(timings),
            "median": statistics.median(timings),
            "statements": len(statements),
            "kb": len(response.data) / 1024,
        }
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(repeat):
                client.get("/debts")
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(40)
            print(out.getvalue())
        db.engine_of(app).dispose()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 30, 300])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--profile", type=int, default=None, help="profile the dashboard at this many debts")
    arguments = parser.parse_args()
    results = {}
    for size in arguments.sizes:
        results[size] = measure(size, arguments.postgres, arguments.repeat, profile=size == arguments.profile)
        figures = results[size]
        print(
            f"{size:>5} debts: best {figures['ms']:6.1f} ms, median {figures['median']:6.1f} ms, "
            f"{figures['statements']:>2} statements, {figures['kb']:.0f} KB"
        )
    if 30 in results and 300 in results:
        ratio = results[300]["ms"] / results[30]["ms"]
        print(f"300 debts / 30 debts: {ratio:.1f} x (target <= 5)")


if __name__ == "__main__":
    main()
