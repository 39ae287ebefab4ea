"""The template helpers bound once per render write exactly what Flask-Babel's own helpers write."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.templating import _bound_helpers
from tests.factories import PASSWORD, AgencyFactory, DebtFactory, DebtorFactory, InstallmentFactory, UserFactory, link
from tests.helpers import log_in

_TOKENS = re.compile(r'(name="csrf_token"[^>]*value=|id="csrf_token"[^>]*value=)"[^"]+"')


@contextmanager
def without_bound_helpers(app: Flask) -> Iterator[None]:
    """Render with Flask-Babel's gettext and the plain helpers, as before they were bound."""
    processors = app.template_context_processors[None]
    processors.remove(_bound_helpers)
    try:
        yield
    finally:
        processors.append(_bound_helpers)


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return _TOKENS.sub(r"\1TOKEN", response.get_data(as_text=True))


@pytest.mark.parametrize("language", ["el", "en"])
def test_the_dashboard_is_written_alike_with_and_without_the_bound_helpers(
    app: Flask, client: FlaskClient, language: str
) -> None:
    user = UserFactory(language=language)
    debtor = DebtorFactory()
    link(user, debtor)
    town = AgencyFactory(surcharge_policy={"cap_percent": "1", "minimum_minor": 100})
    water = AgencyFactory(surcharge_policy={"period": "day", "rate_percent": "0.024", "grace_days": 3})
    # Markup in a description must come out escaped in both ways, inside a translated sentence too.
    DebtFactory(agency=town, debtor=debtor, description='Fee <b>"A&B"</b>', due_date=date(2025, 6, 30))
    DebtFactory(agency=town, debtor=debtor, category="uncertified", kind="parking_permit")
    DebtFactory(agency=water, debtor=debtor, kind="water_bill", due_date=date(2099, 1, 1), principal_minor=123456789)
    arrangement = DebtFactory(agency=water, debtor=debtor, category="settled", kind="traffic_fine")
    for number in (1, 2):
        InstallmentFactory(debt=arrangement, number=number, due_date=date(2025, 10 + number, 1))
    log_in(client, user.email, PASSWORD)
    for path in ("/debts", "/debts?kind=water_bill", "/payments"):
        bound = page(client, path)
        with without_bound_helpers(app):
            plain = page(client, path)
        assert bound == plain
    assert "Fee &lt;b&gt;" in page(client, "/debts")  # escaped, never markup
