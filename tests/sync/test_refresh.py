"""On-demand refresh of one debtor: only when stale, within a timeout, keeping the cache otherwise."""

from __future__ import annotations

import time
from datetime import timedelta

from app.sync.engine import sync_agency
from app.sync.refresh import refresh_debtor
from tests.factories import AgencyFactory
from tests.sync.helpers import AFM, NOW, ListConnector, debt, record


def test_refresh_reads_the_erp_only_when_stale_and_reports_changes(db_session: None) -> None:
    agency = AgencyFactory(refresh_max_age_seconds=600)
    sync_agency(agency, ListConnector([record()]), now=NOW)
    fresh = refresh_debtor(
        agency, "GR", AFM, NOW + timedelta(minutes=5), connector=ListConnector([record(principal_minor=1)])
    )
    assert not fresh.refreshed and debt(agency.id, "A-1").principal_minor == 12000
    stale = refresh_debtor(
        agency, "GR", AFM, NOW + timedelta(minutes=15), connector=ListConnector([record(principal_minor=9900)])
    )
    assert stale.refreshed and stale.changed == {"A-1"}
    assert debt(agency.id, "A-1").principal_minor == 9900


def test_refresh_gives_up_after_the_timeout_and_keeps_the_cache(db_session: None) -> None:
    agency = AgencyFactory(refresh_max_age_seconds=0)
    sync_agency(agency, ListConnector([record()]), now=NOW)
    slow = ListConnector([record(principal_minor=1)], delay=2.0)
    started = time.monotonic()
    outcome = refresh_debtor(agency, "GR", AFM, NOW + timedelta(minutes=1), timeout=0.3, connector=slow)
    assert time.monotonic() - started < 1.5
    assert (outcome.refreshed, outcome.as_of) == (False, NOW)
    assert "in time" in outcome.error
    assert debt(agency.id, "A-1").principal_minor == 12000
