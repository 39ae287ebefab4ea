"""Treasury history on PostgreSQL: keyset pages stay as fast deep in the list, export memory stays flat.

    .venv/bin/python bench/treasury.py --payments 20000 200000 [--database-url postgresql+psycopg://...]

For each size it loads that many one-line payments of one agency with COPY (plus as many of a
second agency, which the first must never see), then times: the first page of the history, a
page about 90 % of the way down (reached by its keyset cursor, as the "Older" link does), a
filtered first page (by payment code), and a full CSV export, streamed. It prints the times,
the ratio deep/first (target: about 1, since keyset pagination reads no skipped rows) and the
export's rows/s and peak RSS. Each size runs in a child process on a database of its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(url: str, payments: int) -> None:
    """Two agencies, one debt each per payment, and ``payments`` one-line payments per agency (COPY)."""
    import psycopg

    from app import create_app
    from app.agencies.models import Agency
    from app.debts.models import Debt, Debtor
    from app.extensions import db

    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        for code in ("bench-town", "bench-other"):
            db.session.add(Agency(code=code, name_el=code, name_en=code, currency="EUR", timezone="Europe/Athens"))
        db.session.add(Debtor(country="GR", tax_id="090000045", name="Bench Payer"))
        db.session.commit()
        agencies = dict(db.session.execute(text("SELECT code, id FROM agencies")).all())
        debtor_id = db.session.scalar(text("SELECT id FROM debtors"))
        debt_columns = [column.name for column in Debt.__table__.columns if column.name != "id"]
        assert debt_columns  # the COPY below names its own columns
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with psycopg.connect(conninfo) as connection:
        for code in ("bench-town", "bench-other"):
            agency_id = agencies[code]
            with connection.cursor().copy(
                "COPY debts (agency_id, debtor_id, external_id, category, kind, description, principal_minor,"
                " paid_minor, currency, due_date, rf_reference, status, content_hash, synced_at) FROM STDIN"
            ) as copy:
                for number in range(payments):
                    copy.write_row((agency_id, debtor_id, f"{code}-{number}", "certified", "property_fee",
                                    "Bench debt", 10000, 10000, "EUR", "2025-01-31",
                                    f"RF00{code[:6].upper()}{number}", "paid", "x", start))  # fmt: skip
            debt_ids = [row[0] for row in connection.execute(
                "SELECT id FROM debts WHERE agency_id = %s ORDER BY id", (agency_id,))]  # fmt: skip
            with connection.cursor().copy(
                "COPY payments (reference, status, currency, amount_minor, provider, provider_reference,"
                " card_brand, card_last4, channel, created_at, completed_at) FROM STDIN"
            ) as copy:
                for number in range(payments):
                    moment = start + timedelta(seconds=37 * number)
                    copy.write_row((f"CP-{code[6:9].upper()}{number:09d}", "succeeded", "EUR", 10000, "sandbox",
                                    f"sbx_{code}_{number}", "visa", "4242", "account", moment, moment))  # fmt: skip
            payment_ids = [row[0] for row in connection.execute(
                "SELECT id FROM payments WHERE reference LIKE %s ORDER BY id", (f"CP-{code[6:9].upper()}%",))]  # fmt: skip
            with connection.cursor().copy(
                "COPY payment_lines (payment_id, agency_id, debt_id, principal_minor, surcharge_minor,"
                " amount_minor, explanation) FROM STDIN"
            ) as copy:
                for payment_id, debt_id in zip(payment_ids, debt_ids, strict=True):
                    copy.write_row((payment_id, agency_id, debt_id, 10000, 0, 10000, "[]"))
        connection.execute("ANALYZE")
        connection.commit()


def _measure(url: str, payments: int, queue: multiprocessing.Queue) -> None:
    from app import create_app
    from app.agencies.models import Agency
    from app.extensions import db
    from app.treasury.services import Cursor, PaymentFilters, export_csv, payment_history

    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    with app.test_request_context():  # the export's header is translated, as in a request
        agency = db.session.query(Agency).filter_by(code="bench-town").one()
        payment_history(agency, PaymentFilters())  # warm the connection and the plan cache

        def timed(**kwargs: object) -> tuple[float, object]:
            best, page = float("inf"), None
            for _ in range(5):
                begin = time.perf_counter()
                page = payment_history(agency, **kwargs)
                best = min(best, time.perf_counter() - begin)
            return best, page

        first_seconds, first = timed(filters=PaymentFilters())
        deep_row = db.session.execute(
            text(
                "SELECT p.created_at, p.id FROM payments p JOIN payment_lines l ON l.payment_id = p.id"
                " WHERE l.agency_id = :agency ORDER BY p.created_at DESC, p.id DESC OFFSET :skip LIMIT 1"
            ),
            {"agency": agency.id, "skip": int(payments * 0.9)},
        ).one()
        cursor = Cursor(created_at=deep_row[0].replace(tzinfo=UTC), payment_id=deep_row[1])
        deep_seconds, deep = timed(filters=PaymentFilters(), before=cursor)
        code = db.session.scalar(text("SELECT rf_reference FROM debts WHERE agency_id = :a LIMIT 1"), {"a": agency.id})
        filtered_seconds, _ = timed(filters=PaymentFilters(rf_reference=code))
        begin = time.perf_counter()
        exported = sum(chunk.count("\n") for chunk in export_csv(agency, PaymentFilters())) - 1
        export_seconds = time.perf_counter() - begin
        assert len(first.rows) == len(deep.rows) == app.config["TREASURY_PAGE_SIZE"]
        assert exported == payments, (exported, payments)  # never the other agency's rows
    queue.put({
        "first_ms": first_seconds * 1000, "deep_ms": deep_seconds * 1000, "filtered_ms": filtered_seconds * 1000,
        "export_rows": exported, "export_s": export_seconds, "rss_mb": _peak_rss_mb(),
    })  # fmt: skip


def measure(server_url: str, payments: int) -> dict:
    """Load and measure one size on a database of its own."""
    from app import migrate

    name = f"civicpay_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        begin = time.perf_counter()
        _load(url, payments)
        load_seconds = time.perf_counter() - begin
        queue: multiprocessing.Queue = multiprocessing.Queue()
        process = multiprocessing.Process(target=_measure, args=(url, payments, queue))
        process.start()
        process.join()
        if process.exitcode != 0 or queue.empty():
            raise SystemExit(f"the measurement failed (exit code {process.exitcode})")
        result = queue.get()
        result["load_s"] = load_seconds
        return result
    finally:
        create_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    arguments = parser.parse_args()
    print(f"{'payments':>10} {'first ms':>9} {'deep ms':>8} {'deep/first':>10} {'by code ms':>10} "
          f"{'export rows/s':>13} {'export RSS MB':>13}")  # fmt: skip
    for payments in arguments.payments:
        r = measure(arguments.database_url, payments)
        print(f"{payments:>10,} {r['first_ms']:>9.1f} {r['deep_ms']:>8.1f} {r['deep_ms'] / r['first_ms']:>10.2f} "
              f"{r['filtered_ms']:>10.1f} {r['export_rows'] / r['export_s']:>13,.0f} {r['rss_mb']:>13.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
