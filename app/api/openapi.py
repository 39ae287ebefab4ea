"""The OpenAPI 3.1 description of the push API, written by hand as a dict.

Written out rather than generated: the API is one endpoint, and a generator would be a new
dependency to describe it. The enums come from the code that enforces them, so they cannot drift.
"""

from __future__ import annotations

import copy
from typing import Any

from app.api.services import OUTCOMES
from app.sync.apply import CLOSE_REASONS
from erp_connectors.base import CATEGORIES, STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _optional(type_name: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_name, "null"], **extra}


_MINOR_UNITS = "An amount in minor units of the currency (cents for EUR): a whole number, never a decimal."

_SCHEMAS: dict[str, Any] = {
    "Installment": {
        "type": "object",
        "description": "One installment of a settled debt (an arrangement).",
        "required": ["number", "due_date", "amount_minor"],
        "properties": {
            "number": {"type": "integer", "minimum": 1, "description": "1-based position in the schedule."},
            "due_date": {"type": "string", "format": "date", "examples": ["2026-03-31"]},
            "amount_minor": {"type": "integer", "minimum": 1, "description": _MINOR_UNITS},
            "paid_minor": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": _MINOR_UNITS + " At most amount_minor.",
            },
        },
    },
    "DebtRecord": {
        "type": "object",
        "description": (
            "One debt as the agency's ERP knows it, keyed by external_id within the agency. "
            "A record that fails a check is quarantined with a reason; the rest of the push still applies."
        ),
        "required": [
            "external_id",
            "tax_id",
            "tax_country",
            "debtor_name",
            "category",
            "kind",
            "description",
            "principal_minor",
            "paid_minor",
            "currency",
            "due_date",
        ],
        "properties": {
            "external_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "The ERP's own id of the debt, stable across pushes.",
            },
            "tax_id": {
                "type": "string",
                "minLength": 1,
                "description": "National tax id without the country prefix (a Greek AFM is 9 digits with a valid check digit).",
                "examples": ["090000045"],
            },
            "tax_country": {
                "type": "string",
                "pattern": "^[A-Z]{2}$",
                "description": "ISO 3166 alpha-2 code of the tax id's country.",
                "examples": ["GR"],
            },
            "debtor_name": {"type": "string", "minLength": 1},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "kind": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]*$",
                "description": "A lowercase slug of the kind of debt.",
                "examples": ["property_fee", "water_bill"],
            },
            "description": {"type": "string"},
            "principal_minor": {"type": "integer", "minimum": 0, "description": _MINOR_UNITS},
            "paid_minor": {
                "type": "integer",
                "minimum": 0,
                "description": _MINOR_UNITS + " Already paid at the agency; at most principal_minor.",
            },
            "currency": {
                "type": "string",
                "pattern": "^[A-Z]{3}$",
                "description": "ISO 4217 code; must be the agency's currency.",
                "examples": ["EUR"],
            },
            "due_date": {"type": "string", "format": "date", "examples": ["2026-03-31"]},
            "rf_reference": _optional(
                "string",
                description="ISO 11649 creditor reference in compact form; assigned by the portal when absent.",
                examples=["RF18539007547034"],
            ),
            "installments": {
                "type": "array",
                "items": _ref("Installment"),
                "description": "Only for settled debts: numbered 1..n, due dates in order, amounts adding up to principal_minor.",
            },
            "status": {"type": "string", "enum": list(STATUSES), "default": "open"},
            "contact_email": _optional("string", format="email"),
            "contact_phone": _optional("string"),
            "vehicle_plate": _optional("string"),
            "updated_at": _optional(
                "string", format="date-time", description="When the ERP last changed the record (informative)."
            ),
        },
    },
    "Close": {
        "type": "object",
        "description": "Close an open debt of the agency without an online payment.",
        "required": ["external_id", "reason"],
        "properties": {
            "external_id": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "enum": list(CLOSE_REASONS)},
        },
        "additionalProperties": False,
    },
    "PushRequest": {
        "type": "object",
        "description": (
            "A batch for the token's own agency: upserts are applied first, then closes. "
            "Upserts and closes together may hold at most API_MAX_BATCH items (see info)."
        ),
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "upserts": {"type": "array", "items": _ref("DebtRecord")},
            "closes": {"type": "array", "items": _ref("Close")},
        },
    },
    "RecordResult": {
        "type": "object",
        "required": ["index", "external_id", "outcome", "reason"],
        "properties": {
            "index": {
                "type": "integer",
                "minimum": 0,
                "description": (
                    "Which item this is: an upsert's position in upserts, or, for a close, "
                    "the number of upserts plus its position in closes."
                ),
            },
            "external_id": _optional("string", description="Null when the item could not be read at all."),
            "outcome": {"type": "string", "enum": list(OUTCOMES)},
            "reason": _optional(
                "string", description="A sentence saying why, for quarantined, not_found and flagged items."
            ),
        },
    },
    "Counts": {
        "type": "object",
        "description": "How many items ended in each outcome.",
        "required": list(OUTCOMES),
        "properties": {outcome: {"type": "integer", "minimum": 0} for outcome in OUTCOMES},
        "additionalProperties": False,
    },
    "PushResponse": {
        "type": "object",
        "required": ["sync_run", "counts", "results"],
        "properties": {
            "sync_run": {"type": "integer", "description": "Id of the sync run that recorded this push."},
            "counts": _ref("Counts"),
            "results": {"type": "array", "items": _ref("RecordResult")},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable code for programs.", "examples": ["unauthorized"]},
            "message": {"type": "string", "description": "A sentence for people."},
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "The body is not JSON, or not shaped like a PushRequest (e.g. a close with an unknown reason)."
    ),
    "Unauthorized": _error("The bearer token is missing, unknown or revoked."),
    "PayloadTooLarge": _error(
        "More upserts and closes than one push may hold (API_MAX_BATCH), or a body over API_MAX_BODY_BYTES; "
        "split the batch."
    ),
    "UnsupportedMediaType": _error("The body was not sent as application/json."),
    "TooManyRequests": _error("This token sent too many requests; wait and try again."),
}


def openapi_document(max_batch: int = 1000) -> dict[str, Any]:
    """The whole document, ready for json.dumps; max_batch is this portal's API_MAX_BATCH."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Civic Pay push API",
            "version": "1.0.0",
            "description": (
                "For agencies whose ERP pushes its debts to Civic Pay instead of being read by it. "
                "Each token belongs to one agency and can only write that agency's debts. "
                "Money is always an integer of minor units plus an ISO 4217 currency. "
                f"One push holds at most {max_batch} upserts and closes together (API_MAX_BATCH)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/debts": {
                "post": {
                    "operationId": "pushDebts",
                    "summary": "Upsert and close the agency's debts",
                    "description": (
                        "Creates or updates each upserted debt by (agency, external_id), then closes the listed ones. "
                        "Bad records are quarantined with a reason while the good ones in the same push are applied; "
                        "the answer has one result per item."
                    ),
                    "security": [{"bearerAuth": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PushRequest")}},
                    },
                    "responses": {
                        "200": {
                            "description": "The push was applied; see each item's outcome.",
                            "content": {"application/json": {"schema": _ref("PushResponse")}},
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "413": {"$ref": "#/components/responses/PayloadTooLarge"},
                        "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                        "429": {"$ref": "#/components/responses/TooManyRequests"},
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 description of the API.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An agency token made with `flask api token create`, starting with cp_.",
                }
            },
            "schemas": copy.deepcopy(_SCHEMAS),
            "responses": copy.deepcopy(_RESPONSES),
        },
    }
