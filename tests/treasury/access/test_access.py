"""Every treasury route × every role × own and another agency's ids: the scope holds on the server.

The routes are read from the app's URL map (endpoints starting "treasury."), so a route added
later is walked too. Its least role is "view" unless MINIMUM_ROLE says otherwise: a new route
that needs more must be listed there, or the "view" case below fails and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from app import create_app
from app.extensions import db
from app.outbox.models import OutboxMessage
from app.sync.models import QuarantinedRecord
from app.treasury.models import ROLES, StaffInvitation, role_at_least
from tests.factories import (
    PASSWORD,
    AgencyFactory,
    CatalogItemFactory,
    DebtFactory,
    StaffMembershipFactory,
    UserFactory,
    paid_payment,
    staff_member,
)
from tests.helpers import csrf_token, log_in
from tests.treasury.helpers import sign_in

#: Endpoints that need more than the "view" role.
MINIMUM_ROLE = {
    "treasury.refund": "refund",
    "treasury.staff": "admin",
    "treasury.invite": "admin",
    "treasury.change_role": "admin",
    "treasury.remove": "admin",
    "treasury.revoke_invitation": "admin",
    "treasury.settings": "admin",
    "treasury.audit": "admin",
    "treasury.audit_export": "admin",
    "treasury.credentials": "admin",
    "treasury.remove_credential": "admin",
    "treasury.email_notes": "admin",
    "treasury.dismiss_quarantined": "admin",
    "treasury.retry_quarantine": "admin",
    "treasury.retry_outbox_message": "refund",
    "treasury.new_item": "admin",
    "treasury.edit_item": "admin",
}
#: Routes whose form, posted with only its CSRF token, answers 400 (its field errors) once let in.
FORMS_POSTED_EMPTY = {"treasury.refund", "treasury.dismiss_quarantined", "treasury.remove_credential"}
#: Open before the second factor (they *are* the second factor).
SECOND_FACTOR_PAGES = {"treasury.second_factor", "treasury.second_factor_setup"}
#: Open to a logged-in person who is not staff (an invitation makes them staff).
OPEN_TO_NON_STAFF = {"treasury.accept_invitation"}

# The URL map as the app builds it; an app on an unused in-memory database suffices to read it.
_RULES = sorted(
    (rule for rule in create_app({"ENV_NAME": "testing", "DATABASE_URL": "sqlite://"}).url_map.iter_rules()
     if rule.endpoint.startswith(("treasury.", "tickets."))),
    key=lambda rule: rule.rule,
)  # fmt: skip
ALL_ENDPOINTS = [rule.endpoint for rule in _RULES]
AGENCY_ENDPOINTS = [rule.endpoint for rule in _RULES if "agency_code" in rule.arguments]
OTHER_ENDPOINTS = [endpoint for endpoint in ALL_ENDPOINTS if endpoint not in AGENCY_ENDPOINTS]


def test_the_walk_sees_the_routes_it_should() -> None:
    assert {
        "treasury.payments",
        "treasury.payment",
        "treasury.export",
        "treasury.export_xlsx",
        "treasury.staff",
    } <= set(AGENCY_ENDPOINTS)
    assert {
        "treasury.settings", "treasury.audit", "treasury.audit_export",
        "treasury.settlement", "treasury.settlement_export", "treasury.adoption",
    } <= set(AGENCY_ENDPOINTS)  # fmt: skip
    assert set(MINIMUM_ROLE) <= set(AGENCY_ENDPOINTS)


@dataclass
class World:
    """Two agencies, each with a payment, a second staff member and a pending invitation."""

    home: dict
    other: dict


def _agency_side() -> dict:
    agency = AgencyFactory()
    debt = DebtFactory(agency=agency)
    payment = paid_payment((debt, 5000))
    colleague = StaffMembershipFactory(agency=agency, role="admin")
    invitation = StaffInvitation(agency_id=agency.id, email=f"new-{agency.code}@example.org", role="view")
    db.session.add(invitation)
    quarantined = QuarantinedRecord(agency_id=agency.id, external_id="BAD-1", reason="No tax ID.", raw="{}")
    dead = OutboxMessage(topic="erp_payment_ack", key=f"erp_payment_ack:{agency.code}", agency_id=agency.id,
                         payload={}, status="dead", attempts=12)  # fmt: skip
    db.session.add_all([quarantined, dead])
    db.session.commit()
    item = CatalogItemFactory(agency=agency)
    return {
        "item_id": item.id,
        "agency_code": agency.code,
        "reference": payment.reference,
        "membership_id": colleague.id,
        "invitation_id": invitation.id,
        "record_id": quarantined.id,
        "message_id": dead.id,
        "token": "not-a-real-token",
        "agency": agency,
        "name": agency.name_en,
    }


@pytest.fixture()
def world(db_session: None) -> World:
    return World(home=_agency_side(), other=_agency_side())


def _rule(app: Flask, endpoint: str) -> Rule:
    return next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)


def _url(rule: Rule, values: dict) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = re.sub(rf"<(?:[a-z]+:)?{argument}>", str(values[argument]), path)
    return path


def _post_data(client: FlaskClient, page: str) -> dict:
    return {"csrf_token": csrf_token(client, page), "email": "someone@example.org", "role": "view"}


def _call(client: FlaskClient, rule: Rule, url: str, token_page: str):
    if "GET" in rule.methods:
        return client.get(url)
    return client.post(url, data=_post_data(client, token_page))


@pytest.mark.parametrize("endpoint", AGENCY_ENDPOINTS)
@pytest.mark.parametrize("role", ROLES)
def test_agency_routes_answer_404_outside_the_role_and_the_agency(
    app: Flask, client: FlaskClient, world: World, endpoint: str, role: str
) -> None:
    user = staff_member(world.home["agency"], role)
    sign_in(client, user)
    rule = _rule(app, endpoint)
    token_page = "/treasury"

    # Another agency's code (with that agency's ids): 404, whatever the role.
    other = _call(client, rule, _url(rule, world.other), token_page)
    assert other.status_code == 404, f"{endpoint} as {role} leaks agency {world.other['agency_code']}"

    # Own agency's code with another agency's ids: 404 (only routes that take ids).
    if set(rule.arguments) - {"agency_code"}:
        mixed = {**world.other, "agency_code": world.home["agency_code"]}
        answer = _call(client, rule, _url(rule, mixed), token_page)
        assert answer.status_code == 404, f"{endpoint} as {role} shows another agency's record"

    # Own agency and own ids: allowed from the least role up, 404 below it.
    own = _call(client, rule, _url(rule, world.home), token_page)
    if role_at_least(role, MINIMUM_ROLE.get(endpoint, "view")):
        # A form posted empty is let in and answers 400 with its errors (the refund form).
        reached = (200, 303, 400) if endpoint in FORMS_POSTED_EMPTY else (200, 303)
        assert own.status_code in reached, f"{endpoint} as {role}: {own.status_code}"
    else:
        assert own.status_code == 404, f"{endpoint} is open to {role}"


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_anonymous_visitors_are_sent_to_log_in(app: Flask, client: FlaskClient, world: World, endpoint: str) -> None:
    rule = _rule(app, endpoint)
    response = _call(client, rule, _url(rule, world.home), "/login")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_staff_must_pass_the_second_factor_first(app: Flask, client: FlaskClient, world: World, endpoint: str) -> None:
    user = staff_member(world.home["agency"], "admin")
    log_in(client, user.email, PASSWORD)  # the password only
    rule = _rule(app, endpoint)
    response = _call(client, rule, _url(rule, world.home), "/debts")
    if endpoint in SECOND_FACTOR_PAGES:
        assert response.status_code in (200, 302)
        if response.status_code == 302:  # set up already: the setup page sends to the code page
            assert response.headers["Location"].startswith("/treasury/2fa")
    else:
        assert response.status_code == 302, endpoint
        assert response.headers["Location"].startswith("/treasury/2fa"), endpoint


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_people_who_are_not_staff_see_nothing(app: Flask, client: FlaskClient, world: World, endpoint: str) -> None:
    citizen = UserFactory()
    log_in(client, citizen.email, PASSWORD)
    rule = _rule(app, endpoint)
    response = _call(client, rule, _url(rule, world.home), "/debts")
    if endpoint in OPEN_TO_NON_STAFF:
        assert response.status_code == 400  # the made-up token: "not valid", not a 404
    else:
        assert response.status_code == 404, endpoint


def test_a_platform_admin_manages_staff_but_does_not_read_payments(
    app: Flask, client: FlaskClient, world: World
) -> None:
    operator = staff_member(None, is_platform_admin=True)
    sign_in(client, operator)
    home = world.home
    assert client.get(f"/treasury/{home['agency_code']}/staff").status_code == 200
    assert client.get(f"/treasury/{home['agency_code']}/payments").status_code == 404
    assert client.get(f"/treasury/{home['agency_code']}/payments/{home['reference']}").status_code == 404
    assert client.get(f"/treasury/{home['agency_code']}/payments.csv").status_code == 404
    assert client.get(f"/treasury/{home['agency_code']}/payments.xlsx").status_code == 404
    for page in ("settings", "audit", "audit.csv", "settlement", "settlement.csv", "adoption"):
        assert client.get(f"/treasury/{home['agency_code']}/{page}").status_code == 404, page


def test_the_index_lists_only_the_persons_agencies(client: FlaskClient, world: World) -> None:
    user = staff_member(world.home["agency"], "view")
    sign_in(client, user)
    page = client.get("/treasury").get_data(as_text=True)
    assert world.home["name"] in page
    assert world.other["name"] not in page
    assert f"/treasury/{world.home['agency_code']}/staff" not in page  # a viewer manages no staff
