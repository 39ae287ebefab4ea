"""Run Alembic from code (CLI commands, tests) against the app's database.

The migrations travel inside the installed distribution, as the top-level ``migrations``
package, and Alembic is configured here entirely from code: a wheel installed anywhere can
migrate without the source checkout or its alembic.ini. The alembic.ini at the repository's
root stays for people who run ``alembic`` by hand there; both point at the same folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

#: The package holding env.py, script.py.mako and versions/.
MIGRATIONS_PACKAGE = "migrations"


def script_location() -> Path:
    """The folder of the migrations package, wherever Civic Pay is installed."""
    location = Path(str(resources.files(MIGRATIONS_PACKAGE)))
    if not (location / "env.py").is_file():
        # Alembic reads env.py and the revisions as files; a zipped install cannot serve them.
        raise RuntimeError(f"Civic Pay's migrations are not files on disk at {location}; install it unzipped.")
    return location


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations, bound to a URL or an open connection."""
    config = Config()  # no alembic.ini: what it would say is set below
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["skip_logging_config"] = True  # the app, not Alembic, configures logging
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    command.downgrade(alembic_config(url), revision)
