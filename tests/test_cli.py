"""The commands behind `make run`: repeating them creates nothing twice."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.debts.models import Debt
from app.extensions import db


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_demo_setup_and_sync_are_safe_to_repeat(app: Flask, db_session: None) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "setup"])
    assert first.exit_code == 0, first.output
    assert "maria@example.org" in first.output and "demo-maria-2026" in first.output
    synced = runner.invoke(args=["erp", "sync"])
    assert synced.exit_code == 0, synced.output
    assert "eastcoast:" in synced.output and "new" in synced.output
    totals = (count(Agency), count(User), count(TaxIdLink), count(Debt))
    assert totals[0] == 3 and totals[1] == 2 and totals[3] > 100

    again = runner.invoke(args=["demo", "setup"])
    resynced = runner.invoke(args=["erp", "sync"])
    assert again.exit_code == 0 and resynced.exit_code == 0
    assert "0 new, 0 updated" in resynced.output
    assert (count(Agency), count(User), count(TaxIdLink), count(Debt)) == totals


def test_sync_of_an_unknown_agency_is_a_clear_error(app: Flask, db_session: None) -> None:
    result = app.test_cli_runner().invoke(args=["erp", "sync", "--agency", "atlantis"])
    assert result.exit_code != 0
    assert "No agency with code atlantis" in result.output


def test_sync_before_setup_says_what_to_do(app: Flask, db_session: None) -> None:
    result = app.test_cli_runner().invoke(args=["erp", "sync"])
    assert result.exit_code != 0
    assert "flask demo setup" in result.output
