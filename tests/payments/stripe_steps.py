"""Steps of the Stripe card tests through the test client: review the debts, start, enter the card.

The browser's part (Stripe.js confirming the card) is done with the HTTP calls localstripe's
Stripe.js makes (tests/stripe_server.py).
"""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.helpers import csrf_token, page_text
from tests.stripe_server import browser_confirm_card_setup

CARD_OK = "4242 4242 4242 4242"


def review(client: FlaskClient, keys: list[str]) -> str:
    response = client.post("/checkout", data={"item": keys, "csrf_token": csrf_token(client, "/debts")})
    assert response.status_code == 303, page_text(client.get("/debts"))
    return response.headers["Location"]


def call(client: FlaskClient, review_url: str, step: str, **body: str):
    token = csrf_token(client, review_url)
    return client.post(f"{review_url}/card/{step}", json=body, headers={"X-CSRFToken": token})


def pay_both(client: FlaskClient, citizen: dict) -> str:
    water, parking = citizen["debts"]
    return review(client, [f"d{water}", f"d{parking}"])


def start_and_enter_card(client: FlaskClient, url: str, review_url: str, number: str, **kwargs: bool) -> str:
    start = call(client, review_url, "start")
    assert start.status_code == 200, start.json
    setup = browser_confirm_card_setup(url, start.json["client_secret"], number, **kwargs)
    assert setup.get("status") == "succeeded", setup
    return start.json["payment"]
