"""The treasury's one access check, run before every treasury view (and the ticket check), never in the views:

1. anonymous visitors go to the log-in page;
2. a person who is not staff sees 404 (only an invitation link is open to them);
3. staff who have not passed the second factor in this session go to it;
4. a route with ``<agency_code>`` answers 404 unless the person's role in that agency reaches the
   role the view declares with ``@requires_role`` ("view" when it declares none), so the agency's
   existence is not revealed. The agency and access are then on ``g``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import (
    Response,
    abort,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user

from app.db import utcnow
from app.extensions import login_manager
from app.templating import current_language
from app.treasury.access.services import is_staff, membership_for
from app.treasury.blueprint import bp

#: Session key: the id of the user who passed the second factor in this session.
SESSION_VERIFIED = "treasury_verified_user"
#: Views a staff member may open before passing the second factor.
SECOND_FACTOR_ENDPOINTS = frozenset({"treasury.second_factor", "treasury.second_factor_setup"})
#: Views open to a logged-in person who is not (yet) staff.
NON_STAFF_ENDPOINTS = frozenset({"treasury.accept_invitation"})

View = TypeVar("View", bound=Callable[..., Any])


def requires_role(role: str, *, platform_admin: bool = False) -> Callable[[View], View]:
    """Declare the least role an agency view needs; ``platform_admin`` lets platform admins in too."""

    def mark(view: View) -> View:
        view.treasury_role = role  # type: ignore[attr-defined]
        view.treasury_platform_admin = platform_admin  # type: ignore[attr-defined]
        return view

    return mark


def _staff() -> bool:
    if "treasury_is_staff" not in g:
        g.treasury_is_staff = current_user.is_authenticated and is_staff(current_user)
    return g.treasury_is_staff


def second_factor_passed() -> bool:
    """Whether the current person passed the treasury's second factor in this session."""
    return current_user.is_authenticated and session.get(SESSION_VERIFIED) == current_user.id


@bp.app_context_processor
def _treasury_globals() -> dict[str, Any]:
    return {"is_treasury_staff": lambda: current_user.is_authenticated and _staff()}


@bp.before_request
def guard():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    endpoint = request.endpoint or ""
    if endpoint in NON_STAFF_ENDPOINTS and not _staff():
        return None
    if not _staff():
        abort(404)
    if endpoint in SECOND_FACTOR_ENDPOINTS:
        return None
    if not second_factor_passed():
        target = "treasury.second_factor" if current_user.totp_confirmed_at else "treasury.second_factor_setup"
        return redirect(url_for(target, next=request.full_path if request.method == "GET" else None))
    agency_code = (request.view_args or {}).get("agency_code")
    if agency_code is None:
        return None
    view = current_app.view_functions[endpoint]
    access = membership_for(
        current_user,
        agency_code,
        getattr(view, "treasury_role", "view"),
        platform_admin_allowed=getattr(view, "treasury_platform_admin", False),
    )
    if access is None:
        abort(404)
    g.access = access
    g.agency = access.agency
    return None


@bp.after_request
def private(response: Response) -> Response:
    """Treasury pages hold personal data and payments: never cached, never referred elsewhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.app_template_filter("agency_time")
def agency_time(value: datetime | None, timezone: str) -> str:
    """A timestamp in the agency's time zone, in the request's language."""
    if value is None:
        return ""
    return format_datetime(value, format="medium", tzinfo=ZoneInfo(timezone), locale=current_language())


def agency_today() -> date:
    """Today in the agency of the request (the one on ``g``)."""
    return utcnow().astimezone(ZoneInfo(g.agency.timezone)).date()
