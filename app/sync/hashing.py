"""The content hash of an ERP record: what the sync compares to tell an unchanged record from a changed one.

The stored form is ``j1:`` and 32 hex digits: BLAKE2b-128 of the record's canonical JSON, UTF-8
(see ``canonical_json``). JSON's text is fixed by its specification, so the hash stays the same
across Python versions and machines. Earlier versions stored other forms, told apart by their
length (``EARLIER_HASHES``); a debt whose stored hash has one of them and matches the record
counts as unchanged once, and its hash is replaced by the current form.
"""

from __future__ import annotations

import hashlib
import json
import marshal
from collections.abc import Callable
from dataclasses import fields
from datetime import date
from json.encoder import encode_basestring as _json_string  # C: a str as a quoted, escaped JSON string

from erp_connectors.base import DebtRecord, InstallmentRecord, record_to_dict

#: Starts the current stored form; the ``1`` names the encoding, should it ever change again.
HASH_PREFIX = "j1:"


def content_hash(record: DebtRecord) -> str:
    """``j1:`` + BLAKE2b-128 (32 hex digits) of everything the ERP says about a debt except when it said it.

    For change detection, not security. A record whose values are not of the declared types (it
    will be quarantined) is hashed by a form that names each value's type, which no well-typed
    record's JSON can equal.
    """
    try:
        data = canonical_json(record).encode("utf-8", "surrogatepass")
    except (AttributeError, TypeError, ValueError):
        data = b"\x00" + _typed_form(record).encode("utf-8", "surrogatepass")
    return HASH_PREFIX + hashlib.blake2b(data, digest_size=16).hexdigest()


def canonical_json(record: DebtRecord) -> str:
    """The record as canonical JSON: ``json.dumps(record_to_dict(record) without updated_at,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, written out field by field.

    Keys sorted, no spaces, text as UTF-8 (not escaped to ASCII: shorter for Greek, and the bytes
    are the text's), amounts as JSON integers, dates as ISO 8601 strings; installments in the
    ERP's order. Written by hand because ``json.dumps`` took twice as long on a sync's millions of
    records. Values that print alike stay apart: 5 is ``5`` and "5" is ``"5"``, None is ``null``
    and "None" is ``"None"``. A value of another type than declared makes this raise (a text
    field that is not a str, a date that has no isoformat) or is written by its repr (an amount:
    a float's has a point, a str's quotes), so it cannot spell a well-typed record.
    """
    email, phone = record.contact_email, record.contact_phone
    reference, plate = record.rf_reference, record.vehicle_plate
    installments = record.installments  # a tuple of InstallmentRecord
    return (
        f'{{"category":{_json_string(record.category)}'
        f',"contact_email":{"null" if email is None else _json_string(email)}'
        f',"contact_phone":{"null" if phone is None else _json_string(phone)}'
        f',"currency":{_json_string(record.currency)}'
        f',"debtor_name":{_json_string(record.debtor_name)}'
        f',"description":{_json_string(record.description)}'
        f',"due_date":"{_iso_date(record.due_date)}"'
        f',"external_id":{_json_string(record.external_id)}'
        f',"installments":[{",".join([_installment_json(item) for item in installments]) if installments else ""}]'
        f',"kind":{_json_string(record.kind)}'
        f',"paid_minor":{record.paid_minor!r}'
        f',"principal_minor":{record.principal_minor!r}'
        f',"rf_reference":{"null" if reference is None else _json_string(reference)}'
        f',"status":{_json_string(record.status)}'
        f',"tax_country":{_json_string(record.tax_country)}'
        f',"tax_id":{_json_string(record.tax_id)}'
        f',"vehicle_plate":{"null" if plate is None else _json_string(plate)}}}'
    )


def _installment_json(item: InstallmentRecord) -> str:
    return (
        f'{{"amount_minor":{item.amount_minor!r},"due_date":"{_iso_date(item.due_date)}"'
        f',"number":{item.number!r},"paid_minor":{item.paid_minor!r}}}'
    )


#: ISO 8601 text of the dates met so far: ``date.isoformat`` cost a tenth of a settled debt's hash.
_ISO_DATES: dict[date, str] = {}
#: A sync meets a few thousand distinct dates; the cache starts again beyond this many.
_ISO_DATES_KEPT = 100_000


def _iso_date(value: date) -> str:
    """``value.isoformat()``, remembered (a datetime's keeps its time, so it differs from its date's)."""
    text = _ISO_DATES.get(value)
    if text is None:
        text = value.isoformat()
        if len(_ISO_DATES) >= _ISO_DATES_KEPT:
            _ISO_DATES.clear()
        _ISO_DATES[value] = text
    return text


def _typed_form(record: DebtRecord) -> str:
    """Each value with the name of its type, as JSON (repr() for what JSON cannot hold)."""
    values = {
        field.name: [type(value).__qualname__, value]
        for field in fields(record)
        if field.name != "updated_at"
        for value in (getattr(record, field.name),)
    }
    try:
        return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):  # a dict with keys JSON cannot hold, a value that refers to itself
        return repr(values)


# -- the forms earlier versions stored -------------------------------------------------------------


def marshal_content_hash(record: DebtRecord) -> str:
    """BLAKE2b-128 (32 hex digits) of the values serialised by ``marshal`` (format 2): the form before ``j1:``.

    marshal's format may change with the Python version: then a debt stored in this form merely
    counts as changed once, and is rewritten.
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


#: Hashes that earlier versions stored, told apart by their length (the current form has 35
#: characters): a debt whose stored hash has one of these forms and matches the record is
#: unchanged, and its hash is replaced (rehashed) by the current form.
EARLIER_HASHES: dict[int, Callable[[DebtRecord], str | None]] = {
    32: marshal_content_hash,
    40: sha1_content_hash,
    64: legacy_content_hash,
}


def stored_hash_matches(stored: str | None, digest: str, record: DebtRecord) -> bool:
    """Whether the hash stored for a debt says the record is unchanged (in any form a version stored)."""
    if stored is None:
        return False
    if stored == digest:
        return True
    earlier = EARLIER_HASHES.get(len(stored))
    return earlier is not None and stored == earlier(record)
