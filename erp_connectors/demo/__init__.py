"""A deterministic demo ERP: fictional agencies, demo citizens and debtors, for development and demos.

Every name, tax id, plate and amount here is made up. The demo citizens' passwords are public on
purpose: they let anyone try the portal and must never be used outside a demo installation.

    python -m erp_connectors.demo dump --agency eastcoast --as-of 2026-03-01
    python -m erp_connectors.demo serve --agency eastcoast --port 8081 [--debtors N] [--token T]

The modules, each importing only those listed before it:

* ``data``: the agencies, the demo citizens and their hand-written debts, the words generated debts use;
* ``records``: how one record's description, amounts, plate, schedule and RF reference are drawn;
* ``stream``: the random stream's index (where each generated debtor starts, by number and by AFM);
* ``ledger``: payments acknowledged to the ERP, in memory or in a JSON file shared by processes;
* ``connector``: ``DemoERP``, the connector, and ``demo_connector_factory``;
* ``server``: ``DemoERPServer``, the same ERP over HTTP in the REST connector's default format;
* ``cli``: the command line (``__main__`` runs it).

The names other code uses are importable from this package itself.
"""

from erp_connectors.demo.connector import DemoERP, demo_connector_factory
from erp_connectors.demo.data import (
    DEMO_AGENCIES,
    DEMO_CITIZENS,
    JOHN_TAX_ID,
    MARIA_TAX_ID,
    MAX_AMOUNT_MINOR,
    MIN_AMOUNT_MINOR,
    MUNICIPAL_KINDS,
    WATER_KINDS,
    DemoCitizen,
    agency_profile,
)
from erp_connectors.demo.records import UPDATED_WITHIN_DAYS, demo_rf_reference
from erp_connectors.demo.server import DemoERPServer
from erp_connectors.demo.stream import MAX_DEBTORS

__all__ = [
    "DEMO_AGENCIES",
    "DEMO_CITIZENS",
    "JOHN_TAX_ID",
    "MARIA_TAX_ID",
    "MAX_AMOUNT_MINOR",
    "MAX_DEBTORS",
    "MIN_AMOUNT_MINOR",
    "MUNICIPAL_KINDS",
    "UPDATED_WITHIN_DAYS",
    "WATER_KINDS",
    "DemoCitizen",
    "DemoERP",
    "DemoERPServer",
    "agency_profile",
    "demo_connector_factory",
    "demo_rf_reference",
]
