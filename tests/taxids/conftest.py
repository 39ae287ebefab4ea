"""Fixtures of the tax-ID tests: a recording SMS gateway, and empty rate-limit counters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from app.taxids.sms import RecordingSMSGateway


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
def _every_test_has_fresh_rate_limits(fresh_rate_limits: None) -> None:
    """Every tax-ID test starts with empty rate-limit counters (``fresh_rate_limits``, tests/conftest.py)."""
