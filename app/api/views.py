"""The push API: an agency's ERP sends debts as JSON with a bearer token; answers are JSON too."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from app.api.openapi import openapi_document
from app.api.services import (
    PushRequestError,
    authenticate_token,
    hash_token,
    outcome_counts,
    push_debts,
    read_push_request,
)
from app.extensions import limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("civicpay.api")

#: Bytes a pushed body may hold unless API_MAX_BODY_BYTES says otherwise: room for a full batch
#: of records with long descriptions and installments, far from what would strain memory.
MAX_BODY_BYTES = 16 * 1024 * 1024

#: Error codes of the JSON error body, by HTTP status, for errors raised outside our own checks.
_ERRORS = {
    400: ("bad_request", "The request could not be read."),
    401: ("unauthorized", "A valid API token is needed: send it as 'Authorization: Bearer <token>'."),
    404: ("not_found", "There is no such API endpoint."),
    405: ("method_not_allowed", "This endpoint does not accept that HTTP method."),
    413: ("payload_too_large", "The request is too large."),
    415: ("unsupported_media_type", "The body must be JSON, sent with 'Content-Type: application/json'."),
    429: ("rate_limited", "Too many requests with this token. Wait a minute and try again."),
    500: (
        "server_error",
        "Something went wrong on our side; nothing in this request may have been applied. Try again later.",
    ),
}


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _rate_limit_key() -> str:
    """Count requests per token (by its hash, never the token itself), else per address."""
    token = _bearer_token()
    if token is None:
        return f"api-anonymous:{get_remote_address()}"
    return f"api-token:{hash_token(token)}"


def _rate_limit() -> str:
    return current_app.config.get("API_RATE_LIMIT", "120 per minute")


def error_response(status: int, code: str, message: str) -> Response:
    """The API's JSON error body with its status (and the auth challenge on a 401)."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="civicpay"'
    return response


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Errors under /api/v1 are JSON, not the portal's HTML error pages."""
    status = error.code or 500
    code, message = _ERRORS.get(status, (f"http_{status}", error.description or ""))
    return error_response(status, code, message)


@bp.errorhandler(Exception)
def server_error(error: Exception) -> Response:
    """An unexpected failure: a JSON 500 (tests see the real exception instead)."""
    if current_app.testing or current_app.config.get("PROPAGATE_EXCEPTIONS"):
        raise error
    log.exception("Unhandled error on %s %s", request.method, request.path)
    code, message = _ERRORS[500]
    return error_response(500, code, message)


@bp.post("/debts")
@limiter.limit(_rate_limit, key_func=_rate_limit_key)
def push_debts_view() -> Response:
    """Upsert and close the token's agency's debts; one result per item."""
    token = authenticate_token(_bearer_token() or "")
    if token is None:
        return error_response(401, *_ERRORS[401])
    if request.mimetype != "application/json":
        return error_response(415, *_ERRORS[415])
    max_bytes = current_app.config.get("API_MAX_BODY_BYTES", MAX_BODY_BYTES)
    if request.content_length is not None and request.content_length > max_bytes:
        # Refused before reading: a body this size is not a batch, and would only fill memory.
        return error_response(
            413, "body_too_large", f"The body may be at most {max_bytes} bytes; split the batch into smaller pushes."
        )
    body = request.get_json(silent=True)
    if body is None:
        return error_response(400, "invalid_json", "The body is not valid JSON.")
    try:
        push = read_push_request(body, current_app.config.get("API_MAX_BATCH", 1000))
    except PushRequestError as error:
        return error_response(error.status, error.code, error.message)
    result = push_debts(token, push)
    return jsonify(
        sync_run=result.run.id,
        counts=outcome_counts(result),
        results=[
            {
                "index": item.index,
                "external_id": item.external_id,
                "outcome": item.outcome,
                "reason": item.reason,
            }
            for item in result.results
        ],
    )


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 description of this API (public)."""
    return jsonify(openapi_document(current_app.config.get("API_MAX_BATCH", 1000)))
