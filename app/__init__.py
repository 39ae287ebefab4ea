"""Civic Pay: the application factory."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask

from app.config import load_config
from app.extensions import babel, csrf, db, limiter, login_manager
from app.i18n import CachedFormTranslationsRequest


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the portal: configuration, extensions, blueprints, CLI commands, error pages."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("CIVICPAY_INSTANCE_PATH") or None,
        instance_relative_config=True,
    )
    load_config(app, overrides)
    app.request_class = CachedFormTranslationsRequest
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_listeners()
    register_cli(app)
    return app


def register_listeners() -> None:
    """Connect each delivering feature to the events it listens to, and its outbox topics."""
    from app.erp_writeback import handlers as erp_writeback
    from app.payments import audit_trail, splits
    from app.receipts import handlers as receipts

    audit_trail.register()
    splits.register()  # the withholdings ledger books in the payment's and the refund's transaction
    receipts.register()
    erp_writeback.register()


def configure_logging(app: Flask) -> None:
    """Log to stderr in one plain format; never the secret key or database password."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("civicpay")
    root.handlers[:] = [handler]
    root.setLevel(app.config["LOG_LEVEL"])
    root.propagate = False
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(app.config["LOG_LEVEL"])


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions to this app."""
    from app import unit_of_work
    from app.i18n import select_locale, select_timezone
    from app.mail import init_mail

    db.init_app(app)
    unit_of_work.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    login_manager.init_app(app)
    init_mail(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "accounts.login"
    login_manager.login_message_category = "info"

    from app.accounts.services import load_user
    from app.i18n import lazy_gettext

    login_manager.login_message = lazy_gettext("Please log in to see this page.")
    login_manager.user_loader(load_user)
    logging.getLogger("civicpay").info(
        "Civic Pay (%s) on %s",
        app.config["ENV_NAME"],
        db.engine_of(app).url.render_as_string(hide_password=True),
    )


def register_blueprints(app: Flask) -> None:
    """Mount every feature's blueprint and the error pages."""
    from app.accounts.views import bp as accounts_bp
    from app.api.views import bp as api_bp
    from app.checkout.views import bp as checkout_bp
    from app.dashboard.views import bp as dashboard_bp
    from app.guest import shop_views  # noqa: F401 - adds the catalog's pages to the guest blueprint
    from app.guest.views import bp as guest_bp
    from app.main.views import bp as main_bp
    from app.main.views import register_error_pages
    from app.payments.views import bp as payments_bp
    from app.receipts.views import bp as receipts_bp
    from app.taxids.views import bp as taxids_bp
    from app.templating import register_template_helpers
    from app.treasury import register_blueprints as register_treasury
    from app.webhooks.views import bp as webhooks_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(checkout_bp)
    app.register_blueprint(guest_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(receipts_bp)
    app.register_blueprint(taxids_bp)
    register_treasury(app)  # the treasury blueprint with every room's routes, and the ticket check's
    # The push API authenticates each request with a bearer token, not a cookie: no CSRF.
    csrf.exempt(api_bp)
    # Webhooks are signed by the provider (checked in the view), not sent from our pages: no CSRF.
    csrf.exempt(webhooks_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(api_bp)
    register_error_pages(app)
    register_template_helpers(app)


def register_cli(app: Flask) -> None:
    """Add the `flask db`, `flask erp`, `flask demo`, `flask api`, `flask outbox` and `flask worker` commands."""
    from app.api.cli import api_cli
    from app.checkout.cli import payments_cli
    from app.cli import db_cli, demo_cli
    from app.outbox.cli import outbox_cli
    from app.sync.cli import erp_cli
    from app.treasury.cli import treasury_cli
    from app.worker import worker_command

    app.cli.add_command(db_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(erp_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(api_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(treasury_cli)
