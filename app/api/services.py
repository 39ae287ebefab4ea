"""API tokens and pushed batches: what the push API does, without HTTP.

A token is shown once, when it is made; the table keeps only its SHA-256 and a short prefix to
tell tokens apart. Tokens are 256-bit random, so a fast unsalted hash is enough: nobody can
guess their way back from the hash, and a lookup by hash stays one indexed read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.agencies.models import Agency
from app.api.models import ApiToken
from app.db import utcnow
from app.extensions import db
from app.sync.apply import CLOSE_REASONS, PushResult, apply_push
from app.sync.runs import finish_run, start_run
from app.unit_of_work import commit_early
from erp_connectors.base import DebtRecord, RecordError, record_from_dict

TOKEN_PREFIX = "cp_"
#: Characters of a token kept in clear, to tell tokens apart in lists ("cp_" and 5 more).
SHOWN_PREFIX_LENGTH = 8
#: What happened to one pushed item, in the order the response counts them.
OUTCOMES = ("created", "updated", "unchanged", "closed", "quarantined", "not_found", "flagged")


class PushRequestError(ValueError):
    """A pushed body that cannot be applied at all; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PushRequest:
    """A pushed body, read: upserts as records (or RecordErrors), closes as (external id, reason)."""

    upserts: list[DebtRecord | RecordError]
    closes: list[tuple[str, str]]


# -- tokens ---------------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(agency_id: int, name: str) -> tuple[ApiToken, str]:
    """Make a token for an agency's ERP; returns the row and the token, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        agency_id=agency_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[:SHOWN_PREFIX_LENGTH],
    )
    db.session.add(row)
    db.session.flush()
    return row, token


def authenticate_token(token: str) -> ApiToken | None:
    """The live (not revoked) token row for a bearer token, marked as used now; None otherwise."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(token)
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
    # The lookup already matched; the constant-time compare guards against a database that
    # compares case-insensitively or pads, and costs nothing.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    row.last_used_at = utcnow()
    commit_early("a token's last use is recorded even when the push it lets in fails")
    return row


def revoke_token(token_id: int) -> ApiToken:
    """Revoke a token for good (revoking twice keeps the first date); LookupError if unknown."""
    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise LookupError(f"There is no API token with id {token_id}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.flush()
    return row


def agency_by_code(code: str) -> Agency:
    """The agency with this code; LookupError with a sentence if there is none."""
    agency = db.session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise LookupError(f"No agency with code {code}.")
    return agency


def tokens_of(agency_id: int) -> list[ApiToken]:
    """An agency's tokens, oldest first, revoked ones included."""
    return list(db.session.scalars(select(ApiToken).where(ApiToken.agency_id == agency_id).order_by(ApiToken.id)))


# -- pushed batches -------------------------------------------------------------------------------


def read_push_request(body: Any, max_batch: int) -> PushRequest:
    """Check a pushed JSON body's shape and read its records; PushRequestError if it is unusable.

    A malformed debt record does not spoil the request: it travels on as a RecordError and is
    quarantined with its reason. A malformed close does, since there is nothing to quarantine.
    """
    if not isinstance(body, Mapping):
        raise PushRequestError(
            400, "invalid_body", 'The body must be a JSON object like {"upserts": [...], "closes": [...]}.'
        )
    unknown = sorted(set(body) - {"upserts", "closes"})
    if unknown:
        raise PushRequestError(
            400,
            "invalid_body",
            f"The body has unknown field(s) {', '.join(unknown)}; only upserts and closes are read.",
        )
    if "upserts" not in body and "closes" not in body:
        raise PushRequestError(400, "invalid_body", "The body has neither upserts nor closes.")
    upserts = body.get("upserts", [])
    closes = body.get("closes", [])
    for field, value in (("upserts", upserts), ("closes", closes)):
        if not isinstance(value, list):
            raise PushRequestError(400, "invalid_body", f"The field {field!r} must be a list.")
    if len(upserts) + len(closes) > max_batch:
        raise PushRequestError(
            413,
            "batch_too_large",
            f"A push may hold at most {max_batch} upserts and closes together; "
            f"this one holds {len(upserts) + len(closes)}. Split it into smaller pushes.",
        )
    return PushRequest(
        upserts=[_read_record(item) for item in upserts],
        closes=[_read_close(position, item) for position, item in enumerate(closes)],
    )


def _read_record(item: Any) -> DebtRecord | RecordError:
    try:
        return record_from_dict(item)
    except RecordError as error:
        return error


def _read_close(position: int, item: Any) -> tuple[str, str]:
    if not isinstance(item, Mapping):
        raise PushRequestError(400, "invalid_close", f"Close {position} must be an object with external_id and reason.")
    external_id, reason = item.get("external_id"), item.get("reason")
    if not isinstance(external_id, str) or not external_id.strip():
        raise PushRequestError(400, "invalid_close", f"Close {position} has no external_id.")
    if reason not in CLOSE_REASONS:
        raise PushRequestError(
            400,
            "invalid_close",
            f"Close {position} has the reason {reason!r}; expected one of {', '.join(CLOSE_REASONS)}.",
        )
    return external_id, reason


def push_debts(token: ApiToken, request: PushRequest) -> PushResult:
    """Apply a pushed batch to the token's own agency, and to no other.

    The request commits the batch with its sync_runs row. A push that fails still leaves its row,
    as when each step committed on its own: its work is rolled back and a failed run recorded.
    """
    agency = db.session.get(Agency, token.agency_id)
    if agency is None:  # the foreign key makes this unreachable short of a broken database
        raise LookupError(f"API token {token.id} belongs to no agency.")
    now = utcnow()
    try:
        return apply_push(agency, request.upserts, request.closes, now)
    except Exception as error:
        db.session.rollback()
        run = start_run(agency, "push", now)
        finish_run(run, "failed", f"{type(error).__name__}: {error}")
        commit_early("a failed push is recorded, though the error raised on rolls the request back")
        raise


def outcome_counts(result: PushResult) -> dict[str, int]:
    """How many items ended in each outcome (every outcome listed, zeros included)."""
    counted = Counter(record.outcome for record in result.results)
    return {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}
