"""Tests of linking a tax ID to an account; shared helpers and fixtures (import them explicitly).

``from tests.taxids import new_afm, sms`` as with tests/mail/smtp.py: fixtures of a non-root
conftest cannot be shared, so they live here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from stdnum.gr import vat

from app.extensions import limiter
from app.taxids.sms import RecordingSMSGateway

_stems = random.Random()
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def new_afm() -> str:
    """A valid Greek AFM nobody else in the test run uses (a random stem and its check digit)."""
    stem = f"{_stems.randrange(10_000_000, 100_000_000)}"
    return stem + vat.calc_check_digit(stem)


def code_in(text: str) -> str:
    """The one 6-digit code in a message's text."""
    codes = _CODE.findall(text)
    assert len(codes) == 1, f"expected one 6-digit code in:\n{text}"
    return codes[0]


@pytest.fixture()
def sms(app: Flask) -> Iterator[RecordingSMSGateway]:
    """Text messages go to a RecordingSMSGateway for this test (real gateways come later)."""
    saved = app.config.get("SMS_GATEWAY")
    gateway = RecordingSMSGateway()
    app.config["SMS_GATEWAY"] = gateway
    try:
        yield gateway
    finally:
        if saved is None:
            app.config.pop("SMS_GATEWAY", None)
        else:
            app.config["SMS_GATEWAY"] = saved


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters start empty: ids of rolled-back rows come back on SQLite."""
    limiter.reset()
    yield
    limiter.reset()
