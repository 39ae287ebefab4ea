"""Tests for building an agency's connector from its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import erp_connectors
from erp_connectors.base import ERPConnector
from erp_connectors.demo import DemoERP
from erp_connectors.registry import KNOWN_TYPES, build_connector
from erp_connectors.rest import RestConnector

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_known_types_are_demo_rest_and_file() -> None:
    assert KNOWN_TYPES == ("demo", "rest", "file")
    assert erp_connectors.build_connector is build_connector


@pytest.mark.parametrize("config", [{}, {"type": "demo"}, {"options": {}}, {"type": None, "options": None}])
def test_no_type_means_the_demo_erp(config: dict[str, Any]) -> None:
    connector = build_connector("mountvalley", config)
    assert isinstance(connector, DemoERP) and isinstance(connector, ERPConnector)
    assert (connector.agency_code, connector.seed, connector.debtors) == ("mountvalley", 2026, 25)


def test_demo_options_reach_the_demo_erp(tmp_path: Path) -> None:
    state = tmp_path / "acks.json"
    connector = build_connector(
        "eastcoast", {"type": "demo", "options": {"seed": "7", "debtors": 3, "state_file": str(state)}}
    )
    assert isinstance(connector, DemoERP)
    assert (connector.seed, connector.debtors, connector.state_file) == (7, 3, state)


def test_rest_options_reach_the_rest_connector() -> None:
    connector = build_connector(
        "eastcoast",
        {"type": "rest", "options": {"base_url": "https://erp.example.gov/api", "page_size": 250, "retries": 1}},
    )
    assert isinstance(connector, RestConnector) and isinstance(connector, ERPConnector)
    assert (connector.base_url, connector.page_size, connector.retries) == ("https://erp.example.gov/api/", 250, 1)


def test_file_type_builds_the_file_connector() -> None:
    files = pytest.importorskip("erp_connectors.files")
    connector = build_connector("eastcoast", {"type": "file", "options": {"path": str(FIXTURES / "greek_export.csv")}})
    assert isinstance(connector, files.FileConnector) and isinstance(connector, ERPConnector)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"type": "sap"},
            "Agency eastcoast names an unknown ERP connector type 'sap'; the known types are demo, rest, file.",
        ),
        ({"type": "demo", "options": ["seed", 7]}, "options of agency eastcoast must be a JSON object"),
        ({"type": "demo", "options": {"debtors": "many"}}, "'debtors' must be a whole number"),
        ({"type": "rest", "options": {}}, "needs the option 'base_url'"),
    ],
)
def test_configuration_mistakes_are_value_errors_with_a_sentence(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        build_connector("eastcoast", config)
    assert message in str(caught.value)
