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
    #: Stripe (CARD_PROVIDER = "stripe"): the platform account's keys. Each agency's charges go to
    #: its own connected account when the agency has one (agencies.stripe_account). Secrets come
    #: from the environment or instance/config.py, never from the repository.
    STRIPE_SECRET_KEY: str | None = None
    STRIPE_PUBLISHABLE_KEY: str | None = None
    STRIPE_WEBHOOK_SECRET: str | None = None
    #: Where the Stripe API and Stripe.js live; tests point both at localstripe.
    STRIPE_API_BASE: str | None = None
    STRIPE_JS_URL = "https://js.stripe.com/v3/"
    #: Minutes after which the worker asks Stripe about a payment still pending (lost webhook,
    #: closed browser), and after which an unfinished card entry is given up and its debts freed.
    STRIPE_RECONCILE_AFTER_MINUTES = 10
    STRIPE_ABANDON_AFTER_MINUTES = 60
    #: Minutes after which the worker repairs a sandbox payment still pending (its process stopped
    #: between the charge and our record of it): finished by the sandbox's answer, else given up.
    SANDBOX_RECONCILE_AFTER_MINUTES = 5
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = 3600
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    LOGIN_RATE_LIMIT = "10 per minute"
    #: Flask-Limiter limits (per client address unless named per e-mail) for the account forms.
    REGISTER_RATE_LIMIT = "10 per hour"
    VERIFY_RESEND_RATE_LIMIT = "10 per hour"
    VERIFY_RESEND_EMAIL_RATE_LIMIT = "3 per hour"
    PASSWORD_RESET_RATE_LIMIT = "10 per hour"
    PASSWORD_RESET_EMAIL_RATE_LIMIT = "3 per hour"
    #: Guest payments: look-ups of a payment code per client address, and per code from anywhere.
    GUEST_LOOKUP_RATE_LIMIT = "20 per hour"
    GUEST_LOOKUP_CODE_RATE_LIMIT = "10 per hour"
    #: Guest card payments per client address (card-testing bots try many cards on one form).
    GUEST_PAY_RATE_LIMIT = "10 per hour"
    #: "Find my receipt" look-ups per client address (per receipt number: the code limit above).
    GUEST_RECEIPT_RATE_LIMIT = "10 per hour"
    #: Minutes the seats of an order stay held while its buyer reviews it and enters a card.
    CATALOG_HOLD_MINUTES = 15
    #: Orders of catalog items (tickets, donations) per client address: each holds seats.
    CATALOG_ORDER_RATE_LIMIT = "30 per hour"
    #: Wrong second factors for one payment code before the code is locked, and for how long.
    GUEST_LOCK_AFTER = 5
    GUEST_LOCK_MINUTES = 30
    #: Seconds every guest look-up takes at least, whatever its outcome; 0: no floor. The answer
    #: is constant-time without it (both failures run the same statements and the same hashing
    #: and comparison, see app/guest/services.py), and a floor sleeps inside the request: with
    #: sync workers, 0.4 s held a worker per look-up and capped the whole site at 5 look-ups a
    #: second on two workers. Set it only on threaded or async workers, where a sleep holds a
    #: thread, not a process.
    GUEST_LOOKUP_MIN_SECONDS = 0.0
    #: NIST SP 800-63B asks for at least 8; we ask for 12 (the maximum is fixed at 128).
    PASSWORD_MIN_LENGTH = 12
    #: Seconds an e-mail confirmation link works (2 days).
    EMAIL_VERIFY_MAX_AGE = 2 * 24 * 3600
    #: Seconds a password reset link works (1 hour); it also stops working once used.
    PASSWORD_RESET_MAX_AGE = 3600
    #: Scheme and host that links in e-mails start with, e.g. "https://pay.example.gov". Unset,
    #: links are built from the request's Host header: set it in production so a forged Host
    #: header cannot point a reset link elsewhere.
    PUBLIC_URL: str | None = None
    #: How e-mail leaves the portal: "smtp", "file" (.eml files in MAIL_FILE_DIR) or "console".
    MAIL_BACKEND = "smtp"
    MAIL_FROM = "Civic Pay <no-reply@localhost>"
    MAIL_SMTP_HOST = "localhost"
    MAIL_SMTP_PORT = 25
    #: Upgrade the connection with STARTTLS before sending (and refuse to send if it fails).
    MAIL_SMTP_STARTTLS = False
    MAIL_SMTP_USERNAME: str | None = None
    MAIL_SMTP_PASSWORD: str | None = None
    #: Seconds to wait for the mail server before giving up on a message.
    MAIL_SMTP_TIMEOUT = 10
    #: Folder of the "file" backend; unset, instance/mail/.
    MAIL_FILE_DIR: str | None = None
    LOG_LEVEL = "INFO"
    #: Key of secrets the portal stores encrypted (staff TOTP secrets): any long random string.
    #: Unset, one is derived from SECRET_KEY, so rotating SECRET_KEY then means staff enrol again.
    DATA_ENCRYPTION_KEY: str | None = None
    #: Wrong second-factor codes a staff member may enter (per account) before being made to wait.
    TREASURY_2FA_RATE_LIMIT = "5 per 5 minutes"
    #: Seconds an e-mailed invitation to join an agency's treasury staff works (7 days).
    TREASURY_INVITATION_MAX_AGE = 7 * 24 * 3600
    #: Payments per page of the treasury's payment history.
    TREASURY_PAGE_SIZE = 50
    #: Payments read per database round trip while streaming a CSV export.
    TREASURY_EXPORT_BATCH_SIZE = 500


class DevelopmentConfig(BaseConfig):
    """`make run` on a laptop: SQLite in instance/, a throwaway secret, plain HTTP cookies."""

    ENV_NAME = "development"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_SECURE = False
    #: Mail is written to instance/mail/*.eml, never sent.
    MAIL_BACKEND = "file"


class TestingConfig(DevelopmentConfig):
    """The test suite: the database comes from the test fixtures."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-only-secret"
    #: Limits stay on (so their wiring is tested) but high; the rate-limit test lowers them.
    LOGIN_RATE_LIMIT = "1000 per minute"
    REGISTER_RATE_LIMIT = "1000 per minute"
    VERIFY_RESEND_RATE_LIMIT = "1000 per minute"
    VERIFY_RESEND_EMAIL_RATE_LIMIT = "1000 per minute"
    PASSWORD_RESET_RATE_LIMIT = "1000 per minute"
    PASSWORD_RESET_EMAIL_RATE_LIMIT = "1000 per minute"
    GUEST_LOOKUP_RATE_LIMIT = "1000 per minute"
    GUEST_LOOKUP_CODE_RATE_LIMIT = "1000 per minute"
    GUEST_PAY_RATE_LIMIT = "1000 per minute"
    CATALOG_ORDER_RATE_LIMIT = "1000 per minute"
    GUEST_RECEIPT_RATE_LIMIT = "1000 per minute"
    #: The timing test sets its own floor; the rest of the suite does not wait.
    GUEST_LOOKUP_MIN_SECONDS = 0.0
    TREASURY_2FA_RATE_LIMIT = "1000 per minute"
    #: Mail goes to the test output unless a test points the "smtp" backend at its local
    #: aiosmtpd server (tests/mail/smtp.py).
    MAIL_BACKEND = "console"


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
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "STRIPE_JS_URL",
    "RATELIMIT_STORAGE_URI",
    "LOG_LEVEL",
    "BABEL_DEFAULT_LOCALE",
    "PUBLIC_URL",
    "MAIL_BACKEND",
    "MAIL_FROM",
    "MAIL_SMTP_HOST",
    "MAIL_SMTP_PORT",
    "MAIL_SMTP_STARTTLS",
    "MAIL_SMTP_USERNAME",
    "MAIL_SMTP_PASSWORD",
    "MAIL_SMTP_TIMEOUT",
    "MAIL_FILE_DIR",
    "DATA_ENCRYPTION_KEY",
    "TREASURY_2FA_RATE_LIMIT",
)


def load_config(app, overrides: dict | None = None) -> None:
    """Fill ``app.config`` from the config class, the environment, instance/config.py, overrides."""
    env_name = (overrides or {}).get("ENV_NAME") or os.environ.get("CIVICPAY_ENV", "production")
    if env_name not in CONFIGS:
        raise ConfigurationError(f"CIVICPAY_ENV={env_name!r} is not known; use one of {', '.join(CONFIGS)}.")
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
