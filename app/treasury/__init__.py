"""Treasury console: the agency staff's rooms, one blueprint.

Each room is a package of its own views, forms and services, named by what staff do there:

* ``access``: staff memberships and roles, invitations, the second factor and recovery codes,
  and the one access check every treasury page passes (``access.guard``);
* ``history``: payment history, its filters, one payment's page, the CSV and XLSX export;
* ``refunds``: refunding from the payment page;
* ``operations``: sync runs, quarantined ERP records, dead write-back messages;
* ``settings``: what is payable online, surcharges, withholdings, credentials, e-mail texts;
* ``reports``: settlement and adoption;
* ``audit``: the agency's audit log (``audit_text`` words it for every audit page);
* ``catalog``: the agency's catalog items and the door's ticket check (``tickets_bp``);
* ``platform``: platform administration.

Every room adds its routes to the one ``treasury`` blueprint (``blueprint.bp``), so endpoint names
(``treasury.payments``) and URLs do not depend on the room.
"""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Add every room's routes to the treasury blueprint and mount it, with the ticket check's."""
    # Importing a room's views adds its routes to ``bp``; the guard comes first, as it did.
    from app.treasury.access import guard  # noqa: F401
    from app.treasury.access import views as access_views  # noqa: F401
    from app.treasury.audit import views as audit_views  # noqa: F401
    from app.treasury.blueprint import bp, tickets_bp
    from app.treasury.catalog import views as catalog_views  # noqa: F401
    from app.treasury.history import views as history_views  # noqa: F401
    from app.treasury.operations import views as operations_views  # noqa: F401
    from app.treasury.platform import views as platform_views  # noqa: F401
    from app.treasury.refunds import views as refund_views  # noqa: F401
    from app.treasury.reports import views as report_views  # noqa: F401
    from app.treasury.settings import views as settings_views  # noqa: F401

    app.register_blueprint(bp)
    app.register_blueprint(tickets_bp)
