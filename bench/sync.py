"""Sync throughput against raw COPY, repeat-sync cost, and memory, on PostgreSQL.

    .venv/bin/python bench/sync.py --debtors 40000 400000 [--database-url postgresql+psycopg://...]

For each size (demo debtors; each has about 2.5 debts) it runs, each in a fresh child process
so peak memory is its own: (1) a full sync of the demo ERP into an empty database, (2) a second,
unchanged sync, (3) a raw COPY of the same records into a bare table. It prints rows/s, the ratio
sync/COPY (target >= 0.30), repeat/first time (target <= 0.33) and peak RSS per size (target:
flat within 50 MB between sizes), and how many rows the sync wrote to each table. The database is
created and dropped by the script. Every pass includes generating the demo records, as a sync
includes reading its ERP.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
import uuid
from datetime import date

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

AS_OF = date(2026, 3, 1)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync_pass(url: str, debtors: int, label: str, queue: multiprocessing.Queue) -> None:
    from app import create_app
    from app.agencies.models import Agency
    from app.demo import ensure_demo_agencies
    from app.extensions import db
    from app.sync.services import sync_agency
    from erp_connectors.demo import DemoERP

    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        ensure_demo_agencies()
        agency = db.session.query(Agency).filter_by(code="eastcoast").one()
        start = time.perf_counter()
        run = sync_agency(agency, DemoERP("eastcoast", debtors=debtors, as_of=AS_OF), full=True)
        seconds = time.perf_counter() - start
        rows = run.created + run.updated + run.unchanged + run.quarantined
        written = {
            table: db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("debts", "installments", "debtors")
        }
    queue.put({"label": label, "rows": rows, "seconds": seconds, "rss_mb": _peak_rss_mb(),
               "created": run.created, "unchanged": run.unchanged, "tables": written})  # fmt: skip


def _copy_pass(url: str, debtors: int, queue: multiprocessing.Queue) -> None:
    import psycopg

    from erp_connectors.demo import DemoERP

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        connection.execute(
            "CREATE TABLE bare_debts (external_id text, tax_id text, category text, kind text,"
            " description text, principal_minor integer, paid_minor integer, currency text,"
            " due_date date, rf_reference text, status text)"
        )
        start = time.perf_counter()
        rows = 0
        with connection.cursor().copy("COPY bare_debts FROM STDIN") as copy:
            for record in DemoERP("eastcoast", debtors=debtors, as_of=AS_OF).iter_debts():
                copy.write_row((record.external_id, record.tax_id, record.category, record.kind,
                                record.description, record.principal_minor, record.paid_minor,
                                record.currency, record.due_date, record.rf_reference, record.status))  # fmt: skip
                rows += 1
        connection.commit()
        seconds = time.perf_counter() - start
    queue.put({"label": "copy", "rows": rows, "seconds": seconds, "rss_mb": _peak_rss_mb()})


def _in_child(target, *args) -> dict:  # noqa: ANN001
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=target, args=(*args, queue))
    process.start()
    process.join()
    if process.exitcode != 0 or queue.empty():
        raise SystemExit(f"{target.__name__} failed in its child process (exit code {process.exitcode}).")
    return queue.get()


def measure(server_url: str, debtors: int) -> dict:
    """All three passes for one size, on a database of their own."""
    from app import migrate

    name = f"civicpay_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        first = _in_child(_sync_pass, url, debtors, "first")
        repeat = _in_child(_sync_pass, url, debtors, "repeat")
        copy = _in_child(_copy_pass, url, debtors)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return {"debtors": debtors, "first": first, "repeat": repeat, "copy": copy}


def main() -> None:
    """Measure each size and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, nargs="+", default=[4000, 40000])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server URL whose user may create databases")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    results = []
    for debtors in args.debtors:
        result = measure(args.database_url, debtors)
        results.append(result)
        first, repeat, copy = result["first"], result["repeat"], result["copy"]
        sync_rate, copy_rate = first["rows"] / first["seconds"], copy["rows"] / copy["seconds"]
        print(f"{debtors:>9,} debtors = {first['rows']:>9,} debts")
        print(f"  full sync   {first['seconds']:8.1f} s  {sync_rate:9,.0f} rows/s  peak RSS {first['rss_mb']:6.0f} MB")
        print(f"  repeat sync {repeat['seconds']:8.1f} s  {repeat['rows'] / repeat['seconds']:9,.0f} rows/s  "
              f"peak RSS {repeat['rss_mb']:6.0f} MB  (unchanged {repeat['unchanged']:,})")  # fmt: skip
        print(f"  raw COPY    {copy['seconds']:8.1f} s  {copy_rate:9,.0f} rows/s  peak RSS {copy['rss_mb']:6.0f} MB")
        print(f"  ratio sync/COPY rows/s: {sync_rate / copy_rate:.2f}   (target >= 0.30)")
        print(f"  ratio repeat/first time: {repeat['seconds'] / first['seconds']:.2f}   (target <= 0.33)")
        tables = first["tables"]
        print(f"  (the sync wrote {tables['debts']:,} debts, {tables['installments']:,} installments and "
              f"{tables['debtors']:,} debtors, with their indexes and foreign keys; the COPY writes "
              f"{copy['rows']:,} rows of 11 columns into a table without either)")  # fmt: skip
        sys.stdout.flush()
    if len(results) > 1:
        rss = [max(r["first"]["rss_mb"], r["repeat"]["rss_mb"]) for r in results]
        print(f"peak RSS across sizes: {', '.join(f'{value:.0f} MB' for value in rss)}; "
              f"spread {max(rss) - min(rss):.0f} MB   (target <= 50 MB)")  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
