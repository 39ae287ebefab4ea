"""Small helpers shared by tests: CSRF tokens from real pages, logging in through the form, codes in messages."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a page hands out (the suite keeps CSRF on, as in production)."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: FlaskClient, email: str, password: str) -> None:
    """Log in through the real form; fails the test if it does not work."""
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})
    assert response.status_code == 303, response.get_data(as_text=True)


def page_text(response) -> str:
    """The response body as text, non-breaking spaces made plain for readable asserts."""
    return response.get_data(as_text=True).replace("\xa0", " ")


def code_in(text: str) -> str:
    """The one 6-digit code in a message's text."""
    codes = _CODE.findall(text)
    assert len(codes) == 1, f"expected one 6-digit code in:\n{text}"
    return codes[0]
