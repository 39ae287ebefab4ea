"""Connectors to agencies' ERPs: the contract in `base`, a deterministic sandbox in `demo`; never imports the app."""

from erp_connectors.base import (
    CATEGORIES,
    STATUSES,
    AckRejected,
    AgencyProfile,
    DebtRecord,
    ERPConnector,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    payment_ack_from_dict,
    payment_ack_to_dict,
    record_from_dict,
    record_to_dict,
    validate_record,
)
from erp_connectors.registry import KNOWN_TYPES, build_connector

__all__ = [
    "CATEGORIES",
    "KNOWN_TYPES",
    "STATUSES",
    "AckRejected",
    "AgencyProfile",
    "DebtRecord",
    "ERPConnector",
    "InstallmentRecord",
    "PaymentAck",
    "RecordError",
    "build_connector",
    "payment_ack_from_dict",
    "payment_ack_to_dict",
    "record_from_dict",
    "record_to_dict",
    "validate_record",
]
