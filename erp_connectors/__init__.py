"""Connectors to agencies' ERPs: the contract in `base`, a deterministic sandbox in `demo`; never imports the app."""

from erp_connectors.base import (
    CATEGORIES,
    STATUSES,
    AgencyProfile,
    DebtRecord,
    ERPConnector,
    InstallmentRecord,
    RecordError,
    record_from_dict,
    record_to_dict,
    validate_record,
)

__all__ = [
    "CATEGORIES",
    "STATUSES",
    "AgencyProfile",
    "DebtRecord",
    "ERPConnector",
    "InstallmentRecord",
    "RecordError",
    "record_from_dict",
    "record_to_dict",
    "validate_record",
]
