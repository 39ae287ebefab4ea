"""Writing records row by row: a batch an ERP pushed, answered record by record."""

from __future__ import annotations

from app.sync.apply import apply_push
from app.sync.engine import sync_agency
from tests.factories import AgencyFactory
from tests.sync.helpers import NOW, ListConnector, debt, record


def test_pushed_batch_answers_per_record(db_session: None) -> None:
    agency = AgencyFactory()
    sync_agency(agency, ListConnector([record("OLD-1"), record("OLD-2")]), now=NOW)
    result = apply_push(
        agency,
        [record("NEW-1"), record("BAD", principal_minor=-1), record("OLD-1")],
        [("OLD-2", "paid_at_agency"), ("NOPE", "cancelled")],
        NOW,
    )
    assert [(r.index, r.external_id, r.outcome) for r in result.results] == [
        (0, "NEW-1", "created"),
        (1, "BAD", "quarantined"),
        (2, "OLD-1", "unchanged"),
        (3, "OLD-2", "closed"),
        (4, "NOPE", "not_found"),
    ]
    assert result.run.kind == "push" and result.run.status == "succeeded"
    assert debt(agency.id, "OLD-2").closed_reason == "paid_at_agency"
