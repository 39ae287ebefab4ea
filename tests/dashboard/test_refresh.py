"""On-demand refresh: stale data is re-read from the ERP over HTTP, briefly; a slow ERP shows
the cached data with its time, and a checkout is refused when the ERP reports a change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.agencies.models import Agency
from app.checkout.services import CheckoutError, quote_debts
from app.dashboard.services import dashboard_for_user
from app.debts.models import Debt
from app.extensions import db
from app.sync.engine import sync_agency
from erp_connectors.demo import MARIA_TAX_ID
from erp_connectors.demo.server import DemoERPServer
from tests.factories import AgencyFactory, DebtorFactory, UserFactory, link

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)


@pytest.fixture()
def erp():
    with DemoERPServer("eastcoast", debtors=2, seed=77, as_of=NOW.date()) as server:
        yield server


@pytest.fixture()
def maria(db_session: None, erp: DemoERPServer):
    agency = AgencyFactory(
        code="eastcoast",
        connector={"type": "rest", "options": {"base_url": erp.url, "retries": 0, "timeout": [1, 1]}},
        refresh_max_age_seconds=300,
    )
    sync_agency(agency, now=NOW)
    user = UserFactory()
    debtor = DebtorFactory.build(country="GR", tax_id=MARIA_TAX_ID)
    link(user, debtor)
    return user.id, agency.id


def test_fresh_data_is_not_asked_again(maria, erp: DemoERPServer) -> None:
    user_id, agency_id = maria
    before = erp.requests_served
    dashboard = dashboard_for_user(user_id, NOW + timedelta(minutes=1))
    assert erp.requests_served == before
    assert dashboard.groups and dashboard.freshness[agency_id].refreshed is False


def test_stale_data_is_refreshed_from_the_erp(maria, erp: DemoERPServer) -> None:
    user_id, agency_id = maria
    before = erp.requests_served
    dashboard = dashboard_for_user(user_id, NOW + timedelta(minutes=10))
    assert erp.requests_served > before
    assert dashboard.freshness[agency_id].refreshed and dashboard.freshness[agency_id].error is None


def test_a_slow_erp_shows_cached_data_as_of_the_last_sync(maria, erp: DemoERPServer) -> None:
    user_id, agency_id = maria
    erp.delay_seconds = 3
    dashboard = dashboard_for_user(user_id, NOW + timedelta(minutes=10))
    outcome = dashboard.freshness[agency_id]
    assert outcome.error and outcome.as_of == NOW
    assert sum(len(group.items) for group in dashboard.groups) > 0  # the cached debts still show


def test_checkout_is_refused_when_the_erp_reports_a_change(maria, erp: DemoERPServer) -> None:
    user_id, agency_id = maria
    [group] = dashboard_for_user(user_id, NOW).groups
    item = next(item for item in group.items if item.installment is None)
    # The ERP changes the debt behind our back: here, as if paid at the counter.
    debt = db.session.get(Debt, item.debt.id)
    debt.content_hash = "stale"  # our copy no longer matches what the ERP will send
    db.session.commit()
    with pytest.raises(CheckoutError) as error:
        quote_debts(user_id, [item.key], NOW + timedelta(minutes=10))
    assert error.value.code == "changed"


def test_checkout_goes_ahead_when_nothing_changed(maria) -> None:
    user_id, _agency_id = maria
    [group] = dashboard_for_user(user_id, NOW).groups
    item = next(item for item in group.items if item.installment is None)
    quote = quote_debts(user_id, [item.key], NOW + timedelta(minutes=10))
    assert quote.total_minor == item.total_minor


def test_dashboard_page_says_as_of_when_the_erp_is_slow(client, maria, erp: DemoERPServer, app) -> None:
    import time_machine

    from app.accounts.models import User
    from tests.factories import PASSWORD
    from tests.helpers import log_in, page_text

    user_id, _agency_id = maria
    email = db.session.get(User, user_id).email
    erp.delay_seconds = 3
    with time_machine.travel(NOW + timedelta(minutes=10), tick=True):
        log_in(client, email, PASSWORD)
        page = page_text(client.get("/debts"))
    assert "did not answer just now" in page
    assert db.session.scalars(select(Agency.code)).all() == ["eastcoast"]
