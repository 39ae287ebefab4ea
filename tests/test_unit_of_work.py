"""The request's unit of work commits what its services flushed, savepoints included (app/unit_of_work.py)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.agencies.models import Agency
from app.extensions import db
from app.unit_of_work import has_changes
from tests.factories import AgencyFactory


def test_writes_inside_a_released_savepoint_still_count_as_changes(app_ctx: Flask) -> None:
    """A service that inserts inside begin_nested() (to catch a race) leaves work for the edge to commit."""
    agency = AgencyFactory()
    assert not has_changes()
    with db.session.begin_nested():
        agency.name_en = "Renamed inside a savepoint"
    assert has_changes()
    db.session.commit()
    assert not has_changes()
    db.session.expire_all()
    assert db.session.scalar(select(Agency.name_en).where(Agency.id == agency.id)) == "Renamed inside a savepoint"
