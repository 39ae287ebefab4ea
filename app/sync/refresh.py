"""On-demand refresh: re-read one debtor's debts from the ERP when the portal's copy is older than allowed."""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, select

from app.accounts.models import TaxIdLink
from app.agencies.models import Agency
from app.debts.models import Debt, Debtor
from app.extensions import db
from app.sync.apply import apply_batch
from app.sync.connectors import build_connector, pulls_from_erp
from app.sync.models import DebtorRefresh
from app.sync.runs import RunState, finish_run, start_run
from erp_connectors.base import ERPConnector

log = logging.getLogger("civicpay.sync")


@dataclass(frozen=True)
class RefreshOutcome:
    """How fresh one agency's copy of a debtor's debts is."""

    agency_id: int
    #: When the data shown was last read from the ERP (None: never individually refreshed).
    as_of: datetime | None
    refreshed: bool
    #: External ids whose content changed in this refresh.
    changed: frozenset[str] = frozenset()
    error: str | None = None
    #: The agency row itself, when the caller loaded it: held here, it stays in the session's
    #: identity map, so the debts read next find their agency there instead of reading it again.
    agency: Agency | None = field(default=None, compare=False, repr=False)


def refresh_debtor(
    agency: Agency,
    country: str,
    tax_id: str,
    now: datetime,
    *,
    timeout: float = 3.0,
    force: bool = False,
    connector: ERPConnector | None = None,
) -> RefreshOutcome:
    """Re-read one debtor's debts from the ERP if our copy is older than the agency allows.

    The ERP gets ``timeout`` seconds; on timeout or error the cached data stays and the outcome
    says how old it is. What the refresh writes is flushed; the request that asked commits it.
    """
    marker = db.session.scalar(
        select(DebtorRefresh).where(
            DebtorRefresh.agency_id == agency.id, DebtorRefresh.country == country, DebtorRefresh.tax_id == tax_id
        )
    )
    return _refresh_if_stale(agency, country, tax_id, marker, now, timeout=timeout, force=force, connector=connector)


def _refresh_if_stale(
    agency: Agency,
    country: str,
    tax_id: str,
    marker: DebtorRefresh | None,
    now: datetime,
    *,
    timeout: float,
    force: bool = False,
    connector: ERPConnector | None = None,
) -> RefreshOutcome:
    """refresh_debtor once the debtor's refresh marker (or its absence) is known."""
    as_of = marker.refreshed_at if marker else agency.last_full_sync_at
    if not force and as_of is not None and now - as_of < timedelta(seconds=agency.refresh_max_age_seconds):
        return RefreshOutcome(agency.id, as_of, refreshed=False)
    if connector is None and not pulls_from_erp(agency):
        return RefreshOutcome(agency.id, as_of, refreshed=False)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        connector = connector or build_connector(agency)
        records = pool.submit(connector.fetch_debtor, country, tax_id).result(timeout=timeout)
    except Exception as error:  # a refresh must never break the page: show the cached data
        reason = "the ERP did not answer in time" if isinstance(error, concurrent.futures.TimeoutError) else str(error)
        log.info("agency %s: refresh of a debtor failed: %s", agency.code, reason)
        return RefreshOutcome(agency.id, as_of, refreshed=False, error=reason)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    run = start_run(agency, "refresh", now)
    state = RunState(run=run)
    results = apply_batch(agency, state, list(enumerate(records)), now)
    changed = frozenset(
        result.external_id
        for result in results
        if result.external_id and result.outcome in ("created", "updated", "closed", "flagged")
    )
    if marker is None:
        marker = DebtorRefresh(agency_id=agency.id, country=country, tax_id=tax_id)
        db.session.add(marker)
    marker.refreshed_at = now
    finish_run(run, "succeeded")
    return RefreshOutcome(agency.id, now, refreshed=True, changed=changed)


@cache
def _agencies_and_markers() -> Select:
    """One statement for every agency and its refresh state: the user's (agency, tax ID) pairs,
    each with its agency row and its marker (built once: building it cost as much as running it)."""
    # DISTINCT over ids only, in a subquery: PostgreSQL cannot compare the agency's JSON columns.
    pairs = (
        select(Debt.agency_id, Debtor.country, Debtor.tax_id)
        .join(Debtor, Debt.debtor_id == Debtor.id)
        .join(TaxIdLink, (TaxIdLink.country == Debtor.country) & (TaxIdLink.tax_id == Debtor.tax_id))
        .where(TaxIdLink.user_id == bindparam("user_id"), TaxIdLink.verified_at.is_not(None))
        .distinct()
        .subquery()
    )
    return (
        select(Agency, pairs.c.country, pairs.c.tax_id, DebtorRefresh)
        .join(pairs, pairs.c.agency_id == Agency.id)
        .outerjoin(
            DebtorRefresh,
            (DebtorRefresh.agency_id == pairs.c.agency_id)
            & (DebtorRefresh.country == pairs.c.country)
            & (DebtorRefresh.tax_id == pairs.c.tax_id),
        )
        .order_by(Agency.id, pairs.c.country, pairs.c.tax_id)
    )


def refresh_user_debts(user_id: int, now: datetime, timeout: float = 2.0) -> dict[int, RefreshOutcome]:
    """Refresh, where stale, each proven tax ID of the user at each agency that holds its debts."""
    rows = db.session.execute(_agencies_and_markers(), {"user_id": user_id}).all()
    outcomes: dict[int, RefreshOutcome] = {}
    for agency, country, tax_id, marker in rows:
        outcome = replace(_refresh_if_stale(agency, country, tax_id, marker, now, timeout=timeout), agency=agency)
        previous = outcomes.get(agency.id)
        if previous is None or outcome.error or outcome.changed:
            outcomes[agency.id] = (
                outcome
                if previous is None
                else RefreshOutcome(
                    agency.id,
                    min(filter(None, (previous.as_of, outcome.as_of)), default=None),
                    previous.refreshed or outcome.refreshed,
                    previous.changed | outcome.changed,
                    outcome.error or previous.error,
                    agency,
                )
            )
    return outcomes
