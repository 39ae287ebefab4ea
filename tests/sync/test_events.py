"""A sync that writes debts announces ``debts.synced`` once, with its counts; one that writes nothing is silent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from app import events
from app.sync.engine import sync_agency
from tests.factories import AgencyFactory
from tests.sync.helpers import NOW, ListConnector, record


@pytest.fixture()
def heard() -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """What ``debts.synced`` announced during the test."""
    announced: list[tuple[Any, dict[str, Any]]] = []

    def listener(sender: Any, **data: Any) -> None:
        announced.append((sender, data))

    events.debts_synced.connect(listener)
    yield announced
    events.debts_synced.disconnect(listener)


def test_a_sync_announces_what_it_wrote_and_an_unchanged_repeat_is_silent(db_session: None, heard: list) -> None:
    agency = AgencyFactory()
    first = sync_agency(agency, ListConnector([record("A-1"), record("A-2")]), now=NOW)
    assert heard == [
        (
            agency.id,
            {"run_id": first.id, "kind": "full", "created": 2, "updated": 0, "closed": 0, "at": first.finished_at},
        )
    ]
    sync_agency(agency, ListConnector([record("A-1"), record("A-2")]), now=NOW + timedelta(hours=1))
    assert len(heard) == 1

    changed = sync_agency(agency, ListConnector([record("A-1", principal_minor=15050)]), now=NOW + timedelta(hours=2))
    assert heard[-1][1] | {"at": None} == {
        "run_id": changed.id,
        "kind": "full",
        "created": 0,
        "updated": 1,
        "closed": 1,
        "at": None,
    }
