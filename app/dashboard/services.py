"""The citizen's dashboard: every unpaid debt across agencies, freshly read, with today's surcharge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.debts.services import AgencyDebts, Summary, open_items_for_user, summarise
from app.sync.refresh import RefreshOutcome, refresh_user_debts


@dataclass(frozen=True)
class Dashboard:
    """A citizen's open items by agency, and how fresh each agency's data is."""

    groups: list[AgencyDebts]
    #: Per agency id: the refresh outcome (an error means the data shown is as of ``as_of``).
    freshness: dict[int, RefreshOutcome]
    #: Totals per currency (one entry for a single-currency portal).
    summaries: list[Summary]
    #: The (category, kind) choices the citizen's own debts offer for filtering.
    categories: list[str]
    kinds: list[str]


def dashboard_for_user(
    user_id: int, now: datetime, *, category: str | None = None, kind: str | None = None
) -> Dashboard:
    """Refresh stale data from the agencies' ERPs (briefly), then list the open items.

    ``category`` and ``kind`` narrow the list (and the totals) to one category or kind.
    """
    freshness = refresh_user_debts(user_id, now)
    groups = open_items_for_user(user_id, now)
    categories = sorted({item.debt.category for group in groups for item in group.items})
    kinds = sorted({item.debt.kind for group in groups for item in group.items})
    if category or kind:
        groups = [
            AgencyDebts(
                agency=group.agency,
                items=[
                    item
                    for item in group.items
                    if (not category or item.debt.category == category) and (not kind or item.debt.kind == kind)
                ],
            )
            for group in groups
        ]
        groups = [group for group in groups if group.items]
    return Dashboard(
        groups=groups,
        freshness=freshness,
        summaries=summarise(groups, now),
        categories=categories,
        kinds=kinds,
    )
