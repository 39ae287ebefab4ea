"""Test fixtures: one migrated database per worker; each test runs in a rolled-back transaction.

Choose the database with CIVICPAY_TEST_DB=sqlite (default) or postgresql; `make test` runs the
suite once with each. Under CI (the CI variable set), a PostgreSQL run that finds no server
fails instead of skipping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, migrate
from app.db import Base
from app.extensions import db
from tests.databases import BACKEND, NoPostgres, fresh_postgres_database, fresh_sqlite_database, postgres_server

IN_CI = bool(os.environ.get("CI"))

#: Fixture modules every test can use without importing them: the local SMTP server
#: (``smtp_server``, ``mailbox``). Their helper classes are imported as usual.
pytest_plugins = ["tests.mail.smtp"]


def pytest_report_header(config: pytest.Config) -> str:
    """Say which database this run uses."""
    return f"civicpay database backend: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only skip on SQLite (they test row locks SQLite does not have)."""
    if BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL row locking; runs in the PostgreSQL pass")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """An empty database of this test worker, for this run only."""
    with ExitStack() as stack:
        if BACKEND == "postgresql":
            try:
                server = stack.enter_context(postgres_server())
            except NoPostgres as error:
                if IN_CI:
                    pytest.fail(f"CI is set but PostgreSQL is unavailable: {error}", pytrace=False)
                pytest.skip(f"PostgreSQL is unavailable: {error}")
            url = stack.enter_context(fresh_postgres_database(server, worker_id))
        elif BACKEND == "sqlite":
            url = stack.enter_context(fresh_sqlite_database(tmp_path_factory.mktemp("db"), worker_id))
        else:
            raise pytest.UsageError(f"CIVICPAY_TEST_DB={BACKEND!r}: use sqlite or postgresql")
        yield url


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The portal, configured for tests, on a database migrated with `alembic upgrade head`."""
    migrate.upgrade(database_url)
    application = create_app({"ENV_NAME": "testing", "DATABASE_URL": database_url})
    # No app context stays pushed: each test-client request must get its own, as in production
    # (Flask-Login keeps the current user on the app context's ``g``).
    yield application
    db.engine_of(application).dispose()


@pytest.fixture()
def app_ctx(app: Flask, db_session: None) -> Iterator[Flask]:
    """An app context for calling services that read ``current_app`` (not for client requests)."""
    with app.test_request_context():
        yield app


@pytest.fixture()
def db_session(app: Flask) -> Iterator[None]:
    """Run the test inside one outer transaction that is rolled back afterwards.

    Services still call commit(): with join_transaction_mode="create_savepoint" those commits
    only release savepoints, so nothing a test writes outlives it.
    """
    connection = db.engine_of(app).connect()
    outer = connection.begin()
    db.session.remove()
    original = dict(db.session_factory.kw)
    db.session_factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield
    finally:
        db.session.remove()
        db.session_factory.kw.clear()
        db.session_factory.kw.update(original)
        outer.rollback()
        connection.close()


@pytest.fixture()
def committed_db(app: Flask) -> Iterator[None]:
    """Real commits (for concurrency and browser tests); every table is emptied afterwards."""
    db.session.remove()
    try:
        yield
    finally:
        db.session.remove()
        empty_all_tables(app)


def empty_all_tables(app: Flask) -> None:
    """Delete every row of every table (children first)."""
    from app.audit.append_only import audit_log_unlocked

    with db.engine_of(app).begin() as connection, audit_log_unlocked(connection):
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture()
def client(app: Flask, db_session: None) -> FlaskClient:
    """A test client (English unless a test says otherwise) inside the test's transaction."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return test_client


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This worker's localstripe (tests/stripe_server.py), started on first use."""
    from tests.stripe_server import localstripe_server

    with localstripe_server(tmp_path_factory.mktemp("localstripe")) as url:
        yield url


@pytest.fixture()
def stripe_app(app: Flask, localstripe_url: str) -> Iterator[Flask]:
    """The app with CARD_PROVIDER = "stripe", pointed at localstripe, for one test."""
    from tests.stripe_server import stripe_settings

    saved = {key: app.config.get(key) for key in stripe_settings(localstripe_url)}
    app.config.update(stripe_settings(localstripe_url))
    yield app
    app.config.update(saved)


@pytest.fixture()
def set_limits(app: Flask) -> Iterator[Callable[..., None]]:
    """``set_limits(LOGIN_RATE_LIMIT="2 per hour", ...)``: settings for one test; rate-limit counters start empty."""
    from app.extensions import limiter

    saved: dict[str, object] = {}

    def set_(**settings: object) -> None:
        for name, value in settings.items():
            saved.setdefault(name, app.config[name])
            app.config[name] = value
        limiter.reset()

    try:
        yield set_
    finally:
        app.config.update(saved)
        limiter.reset()


@pytest.fixture()
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters start and end empty: ids of rolled-back rows come back on SQLite."""
    from app.extensions import limiter

    limiter.reset()
    yield
    limiter.reset()


#: Transaction control, which every request pays alike and SQLite's driver sends as statements.
_TRANSACTION_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


@pytest.fixture()
def count_statements(app: Flask) -> Callable[[], AbstractContextManager[list[str]]]:
    """``with count_statements() as statements: client.get(...)``: the SQL statements sent meanwhile.

    Transaction control (BEGIN, SAVEPOINT...) is left out: only the queries and writes are counted.
    """
    from sqlalchemy import event

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def record(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
            if not _TRANSACTION_CONTROL.match(statement):
                statements.append(statement)

        engine = db.engine_of(app)
        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting
