"""Build an agency's ERP connector from its configuration: {"type": "demo" | "rest" | "file", "options": {...}}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from erp_connectors.base import ERPConnector

#: the connector types an agency's configuration may name
KNOWN_TYPES = ("demo", "rest", "file")


def build_connector(agency_code: str, config: Mapping[str, Any]) -> ERPConnector:
    """The connector an agency's configuration describes (type "demo" if none); ValueError with a sentence if wrong."""
    kind = config.get("type") or "demo"
    options = config.get("options") or {}
    if not isinstance(options, Mapping):
        # ValueError like every other configuration mistake, so that callers catch one type.
        raise ValueError(f"The ERP connector options of agency {agency_code} must be a JSON object, not {options!r}.")
    # Each connector is imported only when named, so a portal that never reads files never imports that code.
    if kind == "demo":
        from erp_connectors.demo.connector import demo_connector_factory

        return demo_connector_factory(agency_code, options)
    if kind == "rest":
        from erp_connectors.rest import rest_connector_factory

        return rest_connector_factory(agency_code, options)
    if kind == "file":
        from erp_connectors.files import file_connector_factory

        return file_connector_factory(agency_code, options)
    raise ValueError(
        f"Agency {agency_code} names an unknown ERP connector type {kind!r}; "
        f"the known types are {', '.join(KNOWN_TYPES)}."
    )
