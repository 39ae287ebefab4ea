"""Sync throughput against raw COPY, repeat-sync cost, and memory, on PostgreSQL.

    .venv/bin/python bench/sync.py --debtors 40000 400000 [--trials 3] [--database-url postgresql+psycopg://...]

For each size (demo debtors; each has about 2.5 debts) it runs, each in a fresh child process
so peak memory is its own: (1) a full sync of the demo ERP into an empty database, (2) a second,
unchanged sync, (3) a raw COPY of the same records into a bare table, (4) reading the demo ERP
alone, with no database. It prints rows/s, the ratio sync/COPY (target >= 0.30), repeat/first
time (target <= 0.33), peak RSS per size (target: flat within 50 MB between sizes), how much the
repeat and the COPY add per record to reading the ERP, and how many rows the sync wrote to each
table. The database is created and dropped by the script. Every pass includes generating the
demo records, as a sync includes reading its ERP. With ``--trials N`` each size is measured N
times, each trial on a fresh database, and the figures printed are the trials' medians (a noisy
machine moves one trial by 20 % or more); each trial's own ratios are printed too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
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
    from app.sync.engine import sync_agency
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


def _read_pass(debtors: int, queue: multiprocessing.Queue) -> None:
    """Reading the demo ERP alone, as every pass does: the least any sync of these records can cost."""
    from erp_connectors.demo import DemoERP

    start = time.perf_counter()
    rows = sum(1 for _ in DemoERP("eastcoast", debtors=debtors, as_of=AS_OF).iter_debts())
    queue.put({"label": "read", "rows": rows, "seconds": time.perf_counter() - start, "rss_mb": _peak_rss_mb()})


def _in_child(target, *args) -> dict:
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
        read = _in_child(_read_pass, debtors)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return {"debtors": debtors, "first": first, "repeat": repeat, "copy": copy, "read": read}


def main() -> None:
    """Measure each size and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, nargs="+", default=[4000, 40000])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server URL whose user may create databases")  # fmt: skip
    parser.add_argument("--trials", type=int, default=1, help="measure each size this many times; print medians")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    results = []
    for debtors in args.debtors:
        trials = [measure(args.database_url, debtors) for _ in range(max(1, args.trials))]
        results.extend(trials)
        _report(debtors, trials)
    if len(args.debtors) > 1:
        rss = [
            max(max(t["first"]["rss_mb"], t["repeat"]["rss_mb"]) for t in results if t["debtors"] == debtors)
            for debtors in args.debtors
        ]
        print(f"peak RSS across sizes: {', '.join(f'{value:.0f} MB' for value in rss)}; "
              f"spread {max(rss) - min(rss):.0f} MB   (target <= 50 MB)")  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))


def _report(debtors: int, trials: list[dict]) -> None:
    """Print one size's figures: medians over its trials, and each trial's ratios."""

    def median(pass_: str, key: str) -> float:
        return statistics.median(trial[pass_][key] for trial in trials)

    rows = trials[0]["first"]["rows"]
    first_s, repeat_s, copy_s = median("first", "seconds"), median("repeat", "seconds"), median("copy", "seconds")
    sync_ratios = [
        (t["first"]["rows"] / t["first"]["seconds"]) / (t["copy"]["rows"] / t["copy"]["seconds"]) for t in trials
    ]
    repeat_ratios = [t["repeat"]["seconds"] / t["first"]["seconds"] for t in trials]
    label = f" (medians of {len(trials)} trials)" if len(trials) > 1 else ""
    print(f"{debtors:>9,} debtors = {rows:>9,} debts{label}")
    print(
        f"  full sync   {first_s:8.1f} s  {rows / first_s:9,.0f} rows/s  peak RSS {median('first', 'rss_mb'):6.0f} MB"
    )
    print(f"  repeat sync {repeat_s:8.1f} s  {rows / repeat_s:9,.0f} rows/s  peak RSS {median('repeat', 'rss_mb'):6.0f} MB  "
          f"(unchanged {trials[0]['repeat']['unchanged']:,})")  # fmt: skip
    print(f"  raw COPY    {copy_s:8.1f} s  {trials[0]['copy']['rows'] / copy_s:9,.0f} rows/s  "
          f"peak RSS {median('copy', 'rss_mb'):6.0f} MB")  # fmt: skip
    print(f"  ratio sync/COPY rows/s: {statistics.median(sync_ratios):.2f}   (target >= 0.30)"
          + (f"   trials: {', '.join(f'{r:.2f}' for r in sync_ratios)}" if len(trials) > 1 else ""))  # fmt: skip
    print(f"  ratio repeat/first time: {statistics.median(repeat_ratios):.2f}   (target <= 0.33)"
          + (f"   trials: {', '.join(f'{r:.2f}' for r in repeat_ratios)}" if len(trials) > 1 else ""))  # fmt: skip
    read_s = median("read", "seconds")
    print(f"  ERP read    {read_s:8.1f} s  {rows / read_s:9,.0f} rows/s  (generating the demo records alone; every pass "
          f"includes it): the repeat adds {(repeat_s - read_s) / rows * 1e6:.1f} µs per record to it, "
          f"the COPY {(copy_s - read_s) / rows * 1e6:.1f} µs")  # fmt: skip
    tables = trials[0]["first"]["tables"]
    print(f"  (the sync wrote {tables['debts']:,} debts, {tables['installments']:,} installments and "
          f"{tables['debtors']:,} debtors, with their indexes and foreign keys; the COPY writes "
          f"{trials[0]['copy']['rows']:,} rows of 11 columns into a table without either)")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
