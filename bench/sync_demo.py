"""Time a full sync of the demo ERP into a fresh database, and an unchanged repeat.

    .venv/bin/python bench/sync_demo.py --debtors 5000 [--database-url postgresql+psycopg://...]

Prints records, seconds and records/s of each pass, and the ratio repeat/first (a repeat should
cost far less: unchanged records write nothing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from app import create_app, migrate
from app.agencies.models import Agency
from app.demo import ensure_demo_agencies
from app.extensions import db
from app.sync.engine import sync_agency
from erp_connectors.demo import DemoERP


def main() -> None:
    """Run both passes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    migrate.upgrade(url)
    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        ensure_demo_agencies()
        agency = db.session.query(Agency).filter_by(code="eastcoast").one()
        timings = []
        for label in ("first", "repeat"):
            connector = DemoERP("eastcoast", debtors=args.debtors, as_of=date(2026, 3, 1))
            start = time.perf_counter()
            result = sync_agency(agency, connector)
            seconds = time.perf_counter() - start
            records = result.created + result.updated + result.unchanged + result.quarantined
            timings.append(seconds)
            print(
                f"{label:>6}: {records} records in {seconds:.2f} s = {records / seconds:,.0f} records/s "
                f"(created {result.created}, updated {result.updated}, unchanged {result.unchanged})"
            )
        print(f"repeat/first time ratio: {timings[1] / timings[0]:.2f}")


if __name__ == "__main__":
    main()
