"""Steps and values of the guest-payment tests: the frozen morning, the fixtures' debtor, the pages' forms."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask.testing import FlaskClient

from tests.helpers import csrf_token

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)  # 10:00 in Athens
GOOD_CARD = "4242 4242 4242 4242"
#: The Greek AFM of the fixtures' debtor, and its name: neither may ever reach a guest's page.
TAX_ID = "147382606"
DEBTOR_NAME = "Μαρία Παπαδοπούλου"
REVIEW_URL = re.compile(r"/pay/review/([A-Za-z0-9_-]{43})$")
RECEIPT_URL = re.compile(r"/pay/receipt/(CP-[0-9A-Z-]+)$")


def look_up(client: FlaskClient, code: str, factor: str, **environ: str):
    """Submit the code and check detail on /pay."""
    data = {"code": code, "factor": factor, "csrf_token": csrf_token(client, "/pay")}
    return client.post("/pay", data=data, environ_overrides=environ or None)


def pay(client: FlaskClient, review_path: str, number: str = GOOD_CARD, **extra: str):
    """Submit the card form of a review page."""
    data = {"holder": "A Guest", "number": number, "expiry": "12/30", "cvc": "123"}
    data.update(extra)
    data["csrf_token"] = csrf_token(client, review_path)
    return client.post(review_path, data=data)


def review_path(response) -> str:
    """The review page a successful look-up redirects to."""
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert REVIEW_URL.search(location), location
    return location


def receipt_path(response) -> str:
    """The receipt page a successful payment redirects to."""
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert RECEIPT_URL.search(location), location
    return location


def item_path(item) -> str:
    return f"/buy/{item.agency.code}/{item.code}"


def order(client: FlaskClient, path: str, **fields: str):
    """Submit the order form of the item page at ``path``."""
    data = {"csrf_token": csrf_token(client, path), **fields}
    return client.post(path, data=data)
