"""Steps the treasury tests share: signing staff in, enrolling their second factor, the morning they happen."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyotp
from flask.testing import FlaskClient

from app.accounts.models import User
from tests.factories import PASSWORD, totp_code
from tests.helpers import csrf_token, log_in

MORNING = datetime(2026, 3, 1, 8, tzinfo=UTC)


def pass_second_factor(client: FlaskClient, code: str | None = None):
    """Post a code (default: the authenticator's current one) to /treasury/2fa."""
    token = csrf_token(client, "/treasury/2fa")
    return client.post("/treasury/2fa", data={"code": code or totp_code(), "csrf_token": token})


def sign_in(client: FlaskClient, user: User) -> None:
    """Log in with the password, then pass the second factor; fails the test if either fails."""
    log_in(client, user.email, PASSWORD)
    response = pass_second_factor(client)
    assert response.status_code == 303, response.get_data(as_text=True)


SECRET_ON_PAGE = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
RECOVERY_CODE = re.compile(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>")


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """Walk the set-up page like a person with an authenticator app; returns (secret, codes)."""
    page = client.get("/treasury/2fa/setup")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    secret = SECRET_ON_PAGE.search(html).group(1)
    data = {"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(client, "/treasury/2fa/setup")}
    confirmed = client.post("/treasury/2fa/setup", data=data)
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    return secret, RECOVERY_CODE.findall(confirmed.get_data(as_text=True))
