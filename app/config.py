"""Settings from the environment, with ``instance/config.py`` overrides.

No secret has a default outside development: a production start without ``SECRET_KEY`` stops
with a sentence saying what to set.
"""

from __future__ import annotations

import os
from pathlib import Path


class ConfigurationError(RuntimeError):
    """The portal cannot start with this configuration."""


class BaseConfig:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    SECRET_KEY: str | None = None
    DATABASE_URL: str | None = None
    #: Languages the portal speaks; the first is the default.
    LANGUAGES = ("el", "en")
    BABEL_DEFAULT_LOCALE = "el"
    BABEL_DEFAULT_TIMEZONE = "Europe/Athens"
    #: Card provider used when an agency names none: "sandbox" takes test cards only.
    CARD_PROVIDER = "sandbox"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = 3600
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    LOGIN_RATE_LIMIT = "10 per minute"
    LOG_LEVEL = "INFO"


class DevelopmentConfig(BaseConfig):
    """`make run` on a laptop: SQLite in instance/, a throwaway secret, plain HTTP cookies."""

    ENV_NAME = "development"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_SECURE = False


class TestingConfig(DevelopmentConfig):
    """The test suite: the database comes from the test fixtures."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-only-secret"
    #: Limits stay on (so their wiring is tested) but high; the rate-limit test lowers them.
    LOGIN_RATE_LIMIT = "1000 per minute"


class ProductionConfig(BaseConfig):
    """A real deployment: every secret from the environment."""

    ENV_NAME = "production"


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}

#: Settings read from the environment when set there (strings; booleans as 1/0/true/false).
ENVIRONMENT_SETTINGS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "CARD_PROVIDER",
    "RATELIMIT_STORAGE_URI",
    "LOG_LEVEL",
    "BABEL_DEFAULT_LOCALE",
)


def load_config(app, overrides: dict | None = None) -> None:  # noqa: ANN001 - a Flask app
    """Fill ``app.config`` from the config class, the environment, instance/config.py, overrides."""
    env_name = (overrides or {}).get("ENV_NAME") or os.environ.get("CIVICPAY_ENV", "production")
    if env_name not in CONFIGS:
        raise ConfigurationError(
            f"CIVICPAY_ENV={env_name!r} is not known; use one of {', '.join(CONFIGS)}."
        )
    app.config.from_object(CONFIGS[env_name])
    for name in ENVIRONMENT_SETTINGS:
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_pyfile("config.py", silent=True)
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    if not app.config.get("DATABASE_URL"):
        if env_name == "production":
            raise ConfigurationError(
                "DATABASE_URL is not set. Set it to the PostgreSQL database of this portal, "
                "e.g. postgresql+psycopg://civicpay@db.example.org/civicpay."
            )
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'civicpay.sqlite3'}"
    if not app.config.get("SECRET_KEY"):
        if env_name != "development":
            raise ConfigurationError(
                "SECRET_KEY is not set. Set the SECRET_KEY environment variable (or SECRET_KEY in "
                "instance/config.py) to a long random string, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        app.config["SECRET_KEY"] = _development_secret(instance)
    app.config["DATABASE_URL"] = normalise_database_url(app.config["DATABASE_URL"])


def normalise_database_url(url: str) -> str:
    """Make ``postgres://`` and ``postgresql://`` URLs use psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _development_secret(instance: Path) -> str:
    """A random secret kept in instance/ so development sessions survive a restart."""
    import secrets

    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
