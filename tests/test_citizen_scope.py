"""No citizen reaches another's payment, receipt, quote or tax ID by URL: every route, walked.

The walk reads the app's URL map, so a new route with an id in its path is covered (or must be
listed as public on purpose) without anyone remembering to add it here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.payments.models import Payment
from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, UserFactory, link
from tests.helpers import csrf_token, log_in

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)
#: Blueprints whose routes hold a citizen's own things.
CITIZEN_BLUEPRINTS = ("checkout", "payments", "receipts", "taxids", "guest")
#: Routes with an id in the path that are public by design, and why.
PUBLIC = {
    "receipts.verify": "an HMAC-signed token, showing only what the paper receipt shows",
    "guest.start_with_code": "a payment code typed from a notice; the second factor guards it",
    "guest.item": "an agency's catalog item: on public sale, like a shop window",
    "guest.order": "ordering a public catalog item; the order belongs to the session that made it",
    "guest.basket": "an agency's public catalog, several items in one order; the order is the session's",
}


@pytest.fixture(autouse=True)
def _morning():
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


@pytest.fixture()
def owners_things(client: FlaskClient) -> dict[str, str]:
    """A citizen with a paid payment, an open quote and a tax ID; then a stranger logs in."""
    owner, debtor = UserFactory(), DebtorFactory()
    tax_link = link(owner, debtor)
    agency = AgencyFactory()
    paid = DebtFactory(agency=agency, debtor=debtor, principal_minor=5000, due_date=date(2026, 5, 31))
    open_debt = DebtFactory(agency=agency, debtor=debtor, principal_minor=7000, due_date=date(2026, 5, 31))
    ids = {"link_id": str(tax_link.id), "paid": paid.id, "open": open_debt.id, "email": owner.email}
    stranger, strangers_debtor = UserFactory(), DebtorFactory()
    link(stranger, strangers_debtor)
    stranger_email = stranger.email

    log_in(client, ids["email"], PASSWORD)
    review = client.post("/checkout", data={"item": [f"d{ids['paid']}"], "csrf_token": csrf_token(client, "/debts")})
    review_url = review.headers["Location"]
    card = {"holder": "O", "number": "4242424242424242", "expiry": "12/30", "cvc": "123"}
    paid_answer = client.post(review_url + "/pay", data=card | {"csrf_token": csrf_token(client, review_url)})
    assert paid_answer.status_code == 303
    reference = db.session.scalars(select(Payment.reference)).one()
    quote = client.post("/checkout", data={"item": [f"d{ids['open']}"], "csrf_token": csrf_token(client, "/debts")})
    token = quote.headers["Location"].rsplit("/", 1)[1]
    client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})
    log_in(client, stranger_email, PASSWORD)
    return {"reference": reference, "token": token, "link_id": ids["link_id"]}


def citizen_rules(app: Flask) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in CITIZEN_BLUEPRINTS and rule.arguments and rule.endpoint not in PUBLIC
    ]


def test_every_citizen_route_with_an_id_refuses_a_stranger(
    app: Flask, client: FlaskClient, owners_things: dict[str, str]
) -> None:
    rules = citizen_rules(app)
    assert len(rules) >= 12, [rule.rule for rule in rules]  # the walk really walks
    token = csrf_token(client, "/debts")
    for rule in rules:
        unknown = set(rule.arguments) - set(owners_things)
        assert not unknown, f"{rule.rule}: teach this test the owner's value of {unknown}"
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: owners_things[m.group(1)], rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "GET":
                response = client.get(url)
            else:
                response = client.post(url, data={"csrf_token": token}, json=None, headers={"X-CSRFToken": token})
            assert response.status_code in (403, 404), f"{method} {url} answered {response.status_code}"


def test_the_owner_reaches_the_same_routes(app: Flask, client: FlaskClient, owners_things: dict[str, str]) -> None:
    """The walk above fails for the right reason: the owner's own pages do open."""
    client.post("/logout", data={"csrf_token": csrf_token(client, "/debts")})
    owner = db.session.scalars(select(Payment)).one().user_id
    from app.accounts.models import User

    log_in(client, db.session.get(User, owner).email, PASSWORD)
    for url in (
        f"/payments/{owners_things['reference']}",
        f"/payments/{owners_things['reference']}/receipt.pdf",
        f"/checkout/{owners_things['token']}",
        f"/tax-ids/{owners_things['link_id']}",
    ):
        assert client.get(url).status_code in (200, 303), url  # a proven tax ID redirects to its list
