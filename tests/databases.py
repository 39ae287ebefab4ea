"""Where the test suite's databases come from.

SQLite: a file per test worker. PostgreSQL, in this order: TEST_DATABASE_URL or DATABASE_URL;
the server at 127.0.0.1:5432 if one answers; else a throwaway server started from the installed
PostgreSQL binaries (through ``runuser -u postgres`` when we are root, since PostgreSQL refuses
to run as root). Each test worker gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import normalise_database_url

#: The database the suite runs on: CIVICPAY_TEST_DB=sqlite (the default) or postgresql.
BACKEND = os.environ.get("CIVICPAY_TEST_DB", "sqlite")


class NoPostgres(RuntimeError):
    """No PostgreSQL server could be found or started."""


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return found[0] if found else shutil.which(name)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise NoPostgres(f"{' '.join(command[:5])}... failed: {result.stderr.strip() or result.stdout.strip()}")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a private PostgreSQL server for this test run and stop it afterwards."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise NoPostgres("no PostgreSQL server answers and no initdb/pg_ctl binaries are installed")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="civicpay-pg-"))
    if as_root:
        shutil.chown(workdir, "postgres")
    data = workdir / "data"
    port = _free_port()
    _run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"])
    _run(
        [*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(workdir / "log"),
         "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A URL of a PostgreSQL maintenance database we may create databases on."""
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if os.environ.get("CIVICPAY_TEST_PG") == "throwaway":  # force the last resort, to test it
        with throwaway_postgres() as url:
            yield url
    elif configured:
        yield normalise_database_url(configured)
    elif _answers("127.0.0.1", 5432):
        user = "postgres"
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/postgres"
    else:
        with throwaway_postgres() as url:
            yield url


@contextmanager
def fresh_postgres_database(server_url: str, label: str) -> Iterator[str]:
    """Create an empty database for one test worker, and drop it afterwards."""
    name = f"civicpay_test_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            deadline = time.monotonic() + 10
            while True:
                try:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        admin.dispose()


@contextmanager
def fresh_sqlite_database(directory: Path, label: str) -> Iterator[str]:
    """A new SQLite file for one test worker."""
    path = directory / f"civicpay_test_{label}.sqlite3"
    yield f"sqlite:///{path}"
