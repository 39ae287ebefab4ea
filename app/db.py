"""Database plumbing: the declarative base, shared column types and the per-app session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

#: Stable constraint names, so Alembic revisions name the same constraint the same way on
#: every database (SQLite and PostgreSQL would otherwise invent different names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware.

    SQLite keeps no time zone, PostgreSQL does: storing naive UTC everywhere gives both the same
    values, and returning aware datetimes keeps local-time arithmetic honest in Python.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Timestamps must be timezone-aware.")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def make_engine(url: str, **options: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys and a busy timeout like a real server."""
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"timeout": 15})
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN
            # itself (the recipe in SQLAlchemy's SQLite dialect documentation).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine


class AppSession(Session):
    """A session that talks to the current Flask app's engine unless bound explicitly.

    Tests bind the factory to one connection (an outer transaction); otherwise each app keeps
    its own engine, so building a second app (tests of configuration) never rebinds the first.
    """

    def get_bind(self, mapper: Any = None, clause: Any = None, **kwargs: Any) -> Any:
        if self.bind is not None:
            return self.bind
        from flask import current_app

        return current_app.extensions["civicpay_db"]


class Database:
    """One engine per app, and a session scoped to the thread, removed after each app context.

    Written here rather than taking Flask-SQLAlchemy because tests must rebind the session to
    one outer transaction (warehouse's pattern), which is a one-line ``session_factory.configure``.
    """

    def __init__(self) -> None:
        self.session_factory = sessionmaker(class_=AppSession)
        self.session: scoped_session[Session] = scoped_session(self.session_factory)

    def init_app(self, app: Any) -> None:
        """Create the app's engine from DATABASE_URL; close the session after each app context."""
        app.extensions["civicpay_db"] = make_engine(app.config["DATABASE_URL"])

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    @staticmethod
    def engine_of(app: Any) -> Engine:
        """The engine of a given app."""
        return app.extensions["civicpay_db"]
