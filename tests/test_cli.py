"""The commands behind `make run`: repeating them creates nothing twice."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from app.accounts.models import TaxIdLink, User
from app.agencies.models import Agency
from app.debts.models import Debt
from app.extensions import db


def table(output: str) -> dict[str, dict[str, int]]:
    """The summary table `flask erp sync` prints, as {agency: {column: number}}."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    header_at = next(i for i, words in enumerate(lines) if words[:2] == ["agency", "kind"])
    header = lines[header_at]
    rows = {}
    for words in lines[header_at + 1 :]:
        if len(words) == len(header):
            rows[words[0]] = {name: int(value) for name, value in zip(header[2:-1], words[2:-1], strict=True)}
    return rows


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_demo_setup_and_sync_are_safe_to_repeat(app: Flask, db_session: None) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "setup"])
    assert first.exit_code == 0, first.output
    assert "maria@example.org" in first.output and "demo-maria-2026" in first.output
    synced = runner.invoke(args=["erp", "sync"])
    assert synced.exit_code == 0, synced.output
    assert table(synced.output)["eastcoast"]["new"] > 0
    totals = (count(Agency), count(User), count(TaxIdLink), count(Debt))
    assert totals[0] == 3 and totals[1] == 2 + 3 and totals[3] > 100  # 2 citizens, 3 treasury admins

    again = runner.invoke(args=["demo", "setup"])
    incremental = runner.invoke(args=["erp", "sync"])  # what a second `make run` does
    assert again.exit_code == 0 and incremental.exit_code == 0
    assert {row["new"] + row["updated"] + row["closed"] for row in table(incremental.output).values()} == {0}
    full = runner.invoke(args=["erp", "sync", "--full"])
    second = table(full.output)
    assert {row["new"] + row["updated"] + row["closed"] for row in second.values()} == {0}
    assert sum(row["unchanged"] for row in second.values()) == totals[3]
    assert (count(Agency), count(User), count(TaxIdLink), count(Debt)) == totals


def test_sync_of_an_unknown_agency_is_a_clear_error(app: Flask, db_session: None) -> None:
    result = app.test_cli_runner().invoke(args=["erp", "sync", "--agency", "atlantis"])
    assert result.exit_code != 0
    assert "No agency with code atlantis" in result.output


def test_sync_before_setup_says_what_to_do(app: Flask, db_session: None) -> None:
    result = app.test_cli_runner().invoke(args=["erp", "sync"])
    assert result.exit_code != 0
    assert "flask demo setup" in result.output


def test_configure_points_an_agency_at_a_rest_erp(app: Flask, db_session: None, tmp_path) -> None:
    import json

    from erp_connectors.demo.server import DemoERPServer

    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "setup"])
    with DemoERPServer("mountvalley", debtors=3) as server:
        config = tmp_path / "erp.json"
        config.write_text(json.dumps({"type": "rest", "options": {"base_url": server.url}}))
        result = runner.invoke(
            args=["erp", "configure", "--agency", "mountvalley", "--connector", str(config), "--interval", "15"]
        )
        assert result.exit_code == 0, result.output
        synced = runner.invoke(args=["erp", "sync", "--agency", "mountvalley"])
        assert synced.exit_code == 0, synced.output
        assert table(synced.output)["mountvalley"]["new"] > 0
    agency = db.session.scalars(select(Agency).where(Agency.code == "mountvalley")).one()
    assert (agency.connector["type"], agency.sync_interval_minutes) == ("rest", 15)
    agency_id = agency.id  # the refused command rolls its unit of work back, which expires the object
    down = tmp_path / "down.json"
    down.write_text(json.dumps({"type": "rest", "options": {"base_url": "http://127.0.0.1:9", "retries": 0}}))
    refused = runner.invoke(args=["erp", "configure", "--agency", "mountvalley", "--connector", str(down)])
    assert refused.exit_code != 0 and "Nothing was saved" in refused.output
    db.session.expire_all()
    assert db.session.get(Agency, agency_id).connector["options"]["base_url"] == server.url


def test_check_and_quarantine_commands(app: Flask, db_session: None, tmp_path) -> None:
    import json

    from app.sync.models import QuarantinedRecord

    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "setup"])
    assert "eastcoast: reachable" in runner.invoke(args=["erp", "check"]).output
    # An export with one bad row, through the file connector.
    export = tmp_path / "export.jsonl"
    good = {"external_id": "F-1", "tax_id": "147382606", "tax_country": "GR", "debtor_name": "M", "category": "certified",
            "kind": "property_fee", "description": "Fee", "principal_minor": 1000, "paid_minor": 0, "currency": "EUR",
            "due_date": "2026-01-31"}  # fmt: skip
    export.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "external_id": "F-2", "principal_minor": -3}) + "\n"
    )
    config = tmp_path / "file.json"
    config.write_text(json.dumps({"type": "file", "options": {"path": str(export), "format": "jsonl"}}))
    assert (
        runner.invoke(args=["erp", "configure", "--agency", "mountvalley", "--connector", str(config)]).exit_code == 0
    )
    synced = runner.invoke(args=["erp", "sync", "--agency", "mountvalley"])
    assert table(synced.output)["mountvalley"]["quarantined"] == 1
    listed = runner.invoke(args=["erp", "quarantine", "list", "--agency", "mountvalley"]).output
    assert "F-2" in listed and "negative" in listed

    export.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "external_id": "F-2", "principal_minor": 300}) + "\n"
    )
    retried = runner.invoke(args=["erp", "quarantine", "retry", "--agency", "mountvalley"])
    assert "0 still quarantined" in retried.output, retried.output
    statuses = db.session.scalars(select(QuarantinedRecord.status)).all()
    assert statuses == ["retried"]
    assert "No quarantined records." in runner.invoke(args=["erp", "quarantine", "list"]).output
