"""Treasury history and export on PostgreSQL: deep keyset pages as fast as the first, the CSV export
near the speed of PostgreSQL's own COPY, and its memory flat.

    .venv/bin/python bench/treasury.py --payments 2000000 --other 200000 --export-rows 200000 1000000 \
        --xlsx-rows 200000

It loads ``--payments`` one-line payments of one agency with COPY (plus ``--other`` of a second
agency, interleaved in time, which the first must never see), then, each in a child process of
its own (so each peak RSS is that measurement's alone):

- the history: the first page, page 10,000 (reached by its keyset cursor, as the "Older" link
  does; 500,000 payments down at 50 a page) and a page filtered by payment code; best of five.
  Target: page 10,000 / page 1 <= 1.5 (keyset pagination reads no skipped rows).
- the CSV export of about ``--export-rows`` rows (the newest local days holding that many), by
  the PostgreSQL path (COPY of rows formatted in SQL) and by the Python writer, against
  ``COPY (SELECT <the same lines' raw columns> ...) TO STDOUT`` of the same rows, read through
  psycopg the same way (best of two passes, the first warming the cache): unordered, and in the
  export's order. Target: export rows/s over the unordered COPY's >= 0.30. Peak RSS at two
  sizes shows whether memory grows with the rows.
- the XLSX export of ``--xlsx-rows`` rows (rows/s; no target).
- first, the settlement report over the newest 1, 30 and 365 local days (best of three), read
  from the withholdings ledger's daily totals (each payment's split booked with it, 2 % to a
  fund). Targets at 2 M payments: 30 days <= 0.2 s, 365 days <= 1 s. ``--settlement-only``
  stops there.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

#: Seconds between two payments of an agency.
SPACING_SECONDS = 37
START = datetime(2024, 1, 1, tzinfo=UTC)
ZONE = "Europe/Athens"
DEEP_PAGE = 10_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _load(url: str, payments: dict[str, int]) -> None:
    """The agencies, a debt per payment, and their one-line payments, loaded with COPY."""
    import psycopg

    from app import create_app
    from app.agencies.models import Agency
    from app.debts.models import Debtor
    from app.extensions import db

    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        for code in payments:
            db.session.add(Agency(code=code, name_el=code, name_en=code, currency="EUR", timezone=ZONE,
                                  withholdings={"default": [{"name": "Ταμείο", "percent": "2"}]}))  # fmt: skip
        db.session.add(Debtor(country="GR", tax_id="090000045", name="Bench Payer, Αθήνα"))
        db.session.commit()
        agencies = dict(db.session.execute(text("SELECT code, id FROM agencies")).all())
        debtor_id = db.session.scalar(text("SELECT id FROM debtors"))
    with psycopg.connect(_conninfo(url)) as connection:
        for code, count in payments.items():
            agency_id, tag = agencies[code], code[6:9].upper()
            # The second agency's payments fall between the first's: same clock, offset by half a step.
            offset = timedelta(seconds=0 if code == "bench-town" else SPACING_SECONDS / 2)
            with connection.cursor().copy(
                "COPY debts (agency_id, debtor_id, external_id, category, kind, description, principal_minor,"
                " paid_minor, currency, due_date, rf_reference, status, content_hash, synced_at) FROM STDIN"
            ) as copy:
                for number in range(count):
                    copy.write_row((agency_id, debtor_id, f"{code}-{number}", "certified", "property_fee",
                                    "Bench debt", 10000, 10000, "EUR", "2025-01-31",
                                    f"RF00{tag}{number}", "paid", "x", START))  # fmt: skip
            with connection.cursor().copy(
                "COPY payments (reference, status, currency, amount_minor, provider, provider_reference,"
                " card_brand, card_last4, channel, created_at, completed_at) FROM STDIN"
            ) as copy:
                for number in range(count):
                    moment = (START + offset + timedelta(seconds=SPACING_SECONDS * number)).replace(tzinfo=None)
                    copy.write_row((f"CP-{tag}{number:09d}", "succeeded", "EUR", 10000, "sandbox",
                                    f"sbx_{code}_{number}", "visa", "4242", "account", moment, moment))  # fmt: skip
            # The n-th payment pays the n-th debt (both were just loaded in order).
            connection.execute(
                "INSERT INTO payment_lines (payment_id, agency_id, debt_id, principal_minor, surcharge_minor,"
                " amount_minor, explanation)"
                " SELECT p.id, %(agency)s, d.id, 10000, 0, 10000, '[]'"
                " FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM payments WHERE reference LIKE %(prefix)s) p"
                " JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM debts WHERE agency_id = %(agency)s) d"
                " USING (n)",
                {"agency": agency_id, "prefix": f"CP-{tag}%"},
            )
            connection.commit()
        _book_splits(connection, agencies)
    with psycopg.connect(_conninfo(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _book_splits(connection, agencies: dict[str, int]) -> None:
    """What the payment.succeeded listener books for each line: 2 % to the fund, the rest the agency's."""
    local_day = "((p.completed_at AT TIME ZONE 'UTC') AT TIME ZONE %(zone)s)::date"
    for agency_id in agencies.values():
        parts = [
            (0, "Ταμείο", "'2'", "l.amount_minor * 2 / 100"),
            (1, "", "NULL", "l.amount_minor - l.amount_minor * 2 / 100"),
        ]
        for position, beneficiary, percent, amount in parts:
            connection.execute(
                "INSERT INTO split_entries (agency_id, payment_id, payment_line_id, kind, position, beneficiary,"
                " percent, amount_minor, currency, booked_at, day)"
                f" SELECT l.agency_id, l.payment_id, l.id, 'property_fee', {position}, %(beneficiary)s, {percent},"
                f" {amount}, 'EUR', p.completed_at, {local_day}"
                " FROM payment_lines l JOIN payments p ON p.id = l.payment_id WHERE l.agency_id = %(agency)s",
                {"agency": agency_id, "beneficiary": beneficiary, "zone": ZONE},
            )
        connection.execute(
            "INSERT INTO split_day_totals (agency_id, day, kind, beneficiary, currency, lines, collected_minor,"
            " reversed_minor)"
            " SELECT agency_id, day, kind, beneficiary, 'EUR', sum(CASE WHEN beneficiary = '' THEN 1 ELSE 0 END),"
            " sum(amount_minor), 0 FROM split_entries WHERE agency_id = %(agency)s"
            " GROUP BY agency_id, day, kind, beneficiary",
            {"agency": agency_id},
        )
        connection.commit()


def _app(url: str):
    from app import create_app

    return create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})


def _history(url: str, payments: int, queue: multiprocessing.Queue) -> None:
    from app.agencies.models import Agency
    from app.extensions import db
    from app.treasury.history.services import Cursor, PaymentFilters, payment_history

    app = _app(url)
    with app.test_request_context():
        agency = db.session.query(Agency).filter_by(code="bench-town").one()
        size = app.config["TREASURY_PAGE_SIZE"]
        page_number = min(DEEP_PAGE, payments // size)  # a small trial run has fewer pages
        payment_history(agency, PaymentFilters())  # warm the connection and the plan cache

        def timed(**kwargs: object) -> tuple[float, object]:
            best, page = float("inf"), None
            for _ in range(5):
                begin = time.perf_counter()
                page = payment_history(agency, **kwargs)
                best = min(best, time.perf_counter() - begin)
            return best, page

        first_seconds, first = timed(filters=PaymentFilters())
        # The cursor the "Older" link of page 9,999 carries: the last payment on it.
        deep_row = db.session.execute(
            text(
                "SELECT p.created_at, p.id FROM payments p JOIN payment_lines l ON l.payment_id = p.id"
                " WHERE l.agency_id = :agency ORDER BY p.created_at DESC, p.id DESC OFFSET :skip LIMIT 1"
            ),
            {"agency": agency.id, "skip": (page_number - 1) * size - 1},
        ).one()
        cursor = Cursor(created_at=deep_row[0].replace(tzinfo=UTC), payment_id=deep_row[1])
        deep_seconds, deep = timed(filters=PaymentFilters(), before=cursor)
        code = db.session.scalar(text("SELECT rf_reference FROM debts WHERE agency_id = :a LIMIT 1"), {"a": agency.id})
        filtered_seconds, _ = timed(filters=PaymentFilters(rf_reference=code))
        assert len(first.rows) == len(deep.rows) == size
        assert all(row.payment.reference.startswith("CP-TOW") for row in deep.rows)  # never the other agency's
    queue.put({"first_ms": first_seconds * 1000, "deep_ms": deep_seconds * 1000, "filtered_ms": filtered_seconds * 1000,
               "page": page_number})  # fmt: skip


def _export_filters(url: str, rows: int):
    """The newest local days of bench-town that hold about ``rows`` payments."""
    from app.treasury.history.services import PaymentFilters

    engine = create_engine(url)
    with engine.connect() as connection:
        newest = connection.execute(
            text("SELECT max(created_at) FROM payments WHERE reference LIKE 'CP-TOW%'")
        ).scalar_one()
    engine.dispose()
    last_day = newest.replace(tzinfo=UTC).astimezone(ZoneInfo(ZONE)).date()
    days = math.ceil(rows * SPACING_SECONDS / 86400)
    return PaymentFilters(date_from=last_day - timedelta(days=days - 1), date_to=last_day)


def _export(url: str, rows: int, method: str, queue: multiprocessing.Queue) -> None:
    from app.agencies.models import Agency
    from app.extensions import db
    from app.treasury.history.export import export_csv, export_xlsx

    filters = _export_filters(url, rows)
    app = _app(url)
    with app.test_request_context():  # the export's header is translated, as in a request
        agency = db.session.query(Agency).filter_by(code="bench-town").one()
        db.session.execute(text("SELECT 1"))
        rss_before = _peak_rss_mb()
        begin = time.perf_counter()
        if method == "xlsx":
            with tempfile.TemporaryFile() as target:
                exported = export_xlsx(agency, filters, target)
        else:
            exported = sum(chunk.count(b"\r\n") for chunk in export_csv(agency, filters, method=method)) - 1
        seconds = time.perf_counter() - begin
        db.session.rollback()  # as at the end of a request
    queue.put({"rows": exported, "seconds": seconds, "rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before})


#: The lines' raw columns, for PostgreSQL's own COPY of the same rows (no formatting, no filter logic).
_RAW_COPY = """
COPY (
  SELECT p.created_at, p.reference, p.status, p.channel, p.provider, p.provider_reference, p.card_last4,
         d.external_id, d.rf_reference, d.category, d.kind, i.number, r.tax_id, r.name,
         l.principal_minor, l.surcharge_minor, l.amount_minor, 'EUR'
  FROM payments p
  JOIN payment_lines l ON l.payment_id = p.id AND l.agency_id = %(agency)s
  LEFT JOIN debts d ON d.id = l.debt_id
  LEFT JOIN debtors r ON r.id = d.debtor_id
  LEFT JOIN installments i ON i.id = l.installment_id
  WHERE p.created_at >= %(start)s AND p.created_at < %(end)s
  {order}
) TO STDOUT WITH (FORMAT csv)
"""


def _raw_copy(url: str, rows: int, ordered: bool, queue: multiprocessing.Queue) -> None:
    import psycopg

    filters = _export_filters(url, rows)
    zone = ZoneInfo(ZONE)
    start = datetime.combine(filters.date_from, datetime.min.time(), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    end = end.astimezone(UTC).replace(tzinfo=None)
    order = "ORDER BY p.created_at DESC, p.id DESC, l.id" if ordered else ""
    with psycopg.connect(_conninfo(url)) as connection:
        agency = connection.execute("SELECT id FROM agencies WHERE code = 'bench-town'").fetchone()[0]
        seconds = float("inf")
        for _ in range(2):  # the first pass also brings the tables into the cache; the best one counts
            count = 0
            begin = time.perf_counter()
            with (
                connection.cursor() as cursor,
                cursor.copy(_RAW_COPY.format(order=order), {"agency": agency, "start": start, "end": end}) as copy,
            ):
                for block in copy:
                    count += bytes(block).count(b"\n")
            seconds = min(seconds, time.perf_counter() - begin)
    queue.put({"rows": count, "seconds": seconds, "rss_mb": _peak_rss_mb()})


#: The settlement report's ranges, in local days ending on the newest day of payments.
SETTLEMENT_DAYS = (1, 30, 365)


def _settlement(url: str, queue: multiprocessing.Queue) -> None:
    """The settlement report of bench-town over 1, 30 and 365 days: best of three after a warm-up."""
    from app.agencies.models import Agency
    from app.extensions import db
    from app.treasury.reports.services import settlement_report

    app = _app(url)
    with app.app_context():
        agency = db.session.query(Agency).filter_by(code="bench-town").one()
        newest = db.session.execute(
            text("SELECT max(completed_at) FROM payments WHERE reference LIKE 'CP-TOW%'")
        ).scalar_one()
        last_day = newest.replace(tzinfo=UTC).astimezone(ZoneInfo(ZONE)).date()
        results = {}
        for days in SETTLEMENT_DAYS:
            first_day = last_day - timedelta(days=days - 1)
            report = settlement_report(agency, first_day, last_day)
            best = float("inf")
            for _ in range(3):
                begin = time.perf_counter()
                report = settlement_report(agency, first_day, last_day)
                best = min(best, time.perf_counter() - begin)
                db.session.rollback()
            results[days] = {"ms": best * 1000, "lines": report.total.lines, "gross": report.total.gross_minor}
    queue.put(results)


def _child(target, *args) -> dict:
    # Spawned, not forked: a forked child starts with the parent's pages resident, and its peak
    # RSS would grow with whatever the parent held (the old loader's lists of a million ids
    # showed as 45 MB more "export memory" at 1M rows than at 200k).
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed (exit code {process.exitcode})")
    return result


def run(
    server_url: str, payments: int, other: int, export_rows: list[int], xlsx_rows: list[int], *,
    reuse: str | None = None, keep: bool = False, settlement_only: bool = False,
) -> None:  # fmt: skip
    """Load one database (or ``reuse`` one kept by ``keep``) and print every figure; then drop it unless kept."""
    from app import migrate

    name = reuse or f"civicpay_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    if not reuse:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        if not reuse:
            migrate.upgrade(url)
            begin = time.perf_counter()
            _load(url, {"bench-town": payments, "bench-other": other})
            print(f"loaded {payments:,} + {other:,} payments (one line each) in {time.perf_counter() - begin:.0f} s"
                  f" into {name}", flush=True)  # fmt: skip

        settlement = _child(_settlement, url)
        print(f"\nsettlement of {payments:,} payments (targets: 30 days <= 200 ms, 365 days <= 1000 ms):", flush=True)
        for days, result in settlement.items():
            print(f"  {days:>3} days: {result['ms']:8.1f} ms  ({result['lines']:,} lines, gross {result['gross']:,})",
                  flush=True)  # fmt: skip
        if settlement_only:
            return

        history = _child(_history, url, payments)
        print(f"\nhistory of {payments:,} payments: page 1 {history['first_ms']:.2f} ms, page {history['page']:,} "
              f"{history['deep_ms']:.2f} ms, ratio {history['deep_ms'] / history['first_ms']:.2f} (target <= 1.5); "
              f"filtered by payment code {history['filtered_ms']:.2f} ms", flush=True)  # fmt: skip

        print(f"\n{'export':<26} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs COPY':>8} {'vs ordered':>10} "
              f"{'peak RSS MB':>11}", flush=True)  # fmt: skip
        for rows in export_rows:
            raw = _child(_raw_copy, url, rows, False)
            ordered = _child(_raw_copy, url, rows, True)
            raw_rate, ordered_rate = raw["rows"] / raw["seconds"], ordered["rows"] / ordered["seconds"]
            for label, result in (("COPY raw columns", raw), ("COPY raw columns, ordered", ordered)):
                print(f"{label:<26} {result['rows']:>10,} {result['seconds']:>8.2f} {result['rows'] / result['seconds']:>10,.0f} "
                      f"{'':>8} {'':>10} {result['rss_mb']:>11.0f}", flush=True)  # fmt: skip
            for method, label in (("copy", "export CSV (PostgreSQL)"), ("python", "export CSV (Python)")):
                result = _child(_export, url, rows, method)
                assert result["rows"] == raw["rows"], (result["rows"], raw["rows"])  # the same rows, never more
                rate = result["rows"] / result["seconds"]
                print(f"{label:<26} {result['rows']:>10,} {result['seconds']:>8.2f} {rate:>10,.0f} "
                      f"{rate / raw_rate:>8.2f} {rate / ordered_rate:>10.2f} {result['rss_mb']:>11.0f}"
                      f"  (RSS {result['rss_before_mb']:.0f} MB before the export)", flush=True)  # fmt: skip
        for rows in xlsx_rows:
            result = _child(_export, url, rows, "xlsx")
            rate = result["rows"] / result["seconds"]
            print(f"{'export XLSX':<26} {result['rows']:>10,} {result['seconds']:>8.2f} "
                  f"{rate:>10,.0f} {'':>8} {'':>10} {result['rss_mb']:>11.0f}", flush=True)  # fmt: skip
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=2_000_000, help="payments of the agency measured")
    parser.add_argument("--other", type=int, default=200_000, help="payments of a second agency, never shown")
    parser.add_argument("--export-rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--xlsx-rows", type=int, nargs="*", default=[200_000])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database (its name is printed)")
    parser.add_argument("--settlement-only", action="store_true", help="measure the settlement report only")
    parser.add_argument(
        "--reuse", metavar="NAME", help="measure a database kept by --keep (same sizes) instead of loading"
    )
    arguments = parser.parse_args()
    run(arguments.database_url, arguments.payments, arguments.other, arguments.export_rows, arguments.xlsx_rows,
        reuse=arguments.reuse, keep=arguments.keep or bool(arguments.reuse),
        settlement_only=arguments.settlement_only)  # fmt: skip


if __name__ == "__main__":
    main()
