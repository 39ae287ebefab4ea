"""The content hash of an ERP record: what the sync compares to tell an unchanged record from a changed one."""

from __future__ import annotations

import hashlib
import json
import marshal
from collections.abc import Callable

from erp_connectors.base import DebtRecord, record_to_dict


def content_hash(record: DebtRecord) -> str:
    """BLAKE2b-128 (32 hex digits) of everything the ERP says about a debt except when it said it.

    For change detection, not security: a full sync hashes every record, so the values are
    serialised by ``marshal`` (C code; twice as quick as formatting them as text) in its format 2,
    which writes every value in full (no back-references to objects met before), so equal values
    always give equal bytes, whichever objects hold them. Dates go in as ordinals. A record whose
    values marshal cannot write (it will be quarantined) is hashed by its text form instead. Should
    a later Python serialise differently, each debt is merely seen as changed once and rewritten.
    """
    try:
        data = marshal.dumps(
            (
                record.external_id, record.tax_id, record.tax_country, record.debtor_name, record.category,
                record.kind, record.description, record.principal_minor, record.paid_minor, record.currency,
                record.due_date.toordinal(), record.rf_reference, record.status, record.contact_email,
                record.contact_phone, record.vehicle_plate,
                tuple([(item.number, item.due_date.toordinal(), item.amount_minor, item.paid_minor)
                       for item in record.installments]),
            ),
            2,
        )  # fmt: skip
    except (AttributeError, TypeError, ValueError):
        data = b"\x00" + _text_form(record).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _text_form(record: DebtRecord) -> str:
    """Every value the ERP gives, written with repr() (dates with str()) between separators.

    repr() escapes control characters, so the separators cannot occur inside a value and two
    different records cannot give the same text.
    """
    text = (
        f"{record.external_id!r}\x1f{record.tax_id!r}\x1f{record.tax_country!r}\x1f{record.debtor_name!r}"
        f"\x1f{record.category!r}\x1f{record.kind!r}\x1f{record.description!r}\x1f{record.principal_minor!r}"
        f"\x1f{record.paid_minor!r}\x1f{record.currency!r}\x1f{record.due_date!s}\x1f{record.rf_reference!r}"
        f"\x1f{record.status!r}\x1f{record.contact_email!r}\x1f{record.contact_phone!r}\x1f{record.vehicle_plate!r}"
    )
    if record.installments:
        text += "".join(
            [
                f"\x1e{item.number!r}\x1f{item.due_date!s}\x1f{item.amount_minor!r}\x1f{item.paid_minor!r}"
                for item in record.installments
            ]
        )
    return text


def sha1_content_hash(record: DebtRecord) -> str:
    """The SHA-1 of the record's text form (40 hex digits) that syncs stored before BLAKE2b."""
    return hashlib.sha1(_text_form(record).encode()).hexdigest()


def legacy_content_hash(record: DebtRecord) -> str | None:
    """The SHA-256 of the record's JSON (64 hex digits) that the first syncs stored; None if unreadable so."""
    try:
        data = record_to_dict(record)
    except (AttributeError, TypeError):
        return None
    data.pop("updated_at", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


#: Hashes that earlier versions stored, told apart by their length: a debt whose stored hash has
#: one of these forms and matches the record is unchanged, and its hash is replaced (rehashed).
EARLIER_HASHES: dict[int, Callable[[DebtRecord], str | None]] = {40: sha1_content_hash, 64: legacy_content_hash}


def stored_hash_matches(stored: str | None, digest: str, record: DebtRecord) -> bool:
    """Whether the hash stored for a debt says the record is unchanged (in any form a version stored)."""
    if stored is None:
        return False
    if stored == digest:
        return True
    earlier = EARLIER_HASHES.get(len(stored))
    return earlier is not None and stored == earlier(record)

