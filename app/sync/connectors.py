"""Each agency's ERP connector: whether the portal reads the ERP at all, building and configuring it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.agencies.models import Agency
from app.extensions import db
from erp_connectors.base import ERPConnector
from erp_connectors.registry import build_connector as build_erp_connector

#: Connector type of agencies whose ERP pushes to /api/v1/debts: there is nothing to pull.
PUSH_ONLY = "push"


def pulls_from_erp(agency: Agency) -> bool:
    """Whether the portal reads this agency's ERP (False for push-only agencies)."""
    return (agency.connector or {}).get("type") != PUSH_ONLY


def build_connector(agency: Agency) -> ERPConnector:
    """The agency's configured ERP connector (demo, REST or file)."""
    if not pulls_from_erp(agency):
        raise ValueError(f"Agency {agency.code} pushes its debts to the portal; there is no ERP to read.")
    return build_erp_connector(agency.code, agency.connector or {})


def configure_agency_connector(
    agency: Agency, config: Mapping[str, Any] | None, interval_minutes: int | None, *, check: bool = True
) -> Agency:
    """Set the agency's connector and/or sync interval; the connector is built (and checked) first; flushed."""
    if config is not None:
        if not isinstance(config, Mapping) or not isinstance(config.get("options", {}), Mapping):
            raise ValueError('The connector configuration must look like {"type": "rest", "options": {...}}.')
        if config.get("type") != PUSH_ONLY:
            connector = build_erp_connector(agency.code, config)
            if check:
                connector.check()
        agency.connector = dict(config)
    if interval_minutes is not None:
        if interval_minutes < 0:
            raise ValueError("The sync interval cannot be negative.")
        agency.sync_interval_minutes = interval_minutes or None
    db.session.flush()
    return agency
