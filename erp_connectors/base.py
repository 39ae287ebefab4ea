"""The contract between Civic Pay and an agency's ERP: debt records, their checks, the connector protocol."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from stdnum import iso11649
from stdnum.gr import vat as greek_vat

CATEGORIES = ("certified", "settled", "uncertified")
STATUSES = ("open", "paid", "cancelled")

_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
_CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
_COUNTRY_PATTERN = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class InstallmentRecord:
    """One installment of a settled debt, as the ERP schedules it."""

    #: 1-based position in the schedule
    number: int
    due_date: date
    #: minor units, > 0
    amount_minor: int
    #: minor units, 0..amount_minor
    paid_minor: int = 0


@dataclass(frozen=True, slots=True)
class DebtRecord:
    """One debt as the ERP reports it; amounts are integers of minor units, never floats."""

    #: the ERP's own identifier, stable across syncs
    external_id: str
    #: national tax id without country prefix (Greek AFM: 9 digits)
    tax_id: str
    #: ISO 3166 alpha-2 code of the tax id's country
    tax_country: str
    debtor_name: str
    #: one of CATEGORIES
    category: str
    #: slug such as "property_fee" or "water_bill"
    kind: str
    description: str
    #: minor units, >= 0
    principal_minor: int
    #: minor units already paid, 0..principal_minor
    paid_minor: int
    #: ISO 4217 code
    currency: str
    due_date: date
    #: ISO 11649 creditor reference, compact form
    rf_reference: str | None = None
    #: only for settled debts; amounts add up to principal_minor
    installments: tuple[InstallmentRecord, ...] = ()
    #: one of STATUSES, as the ERP sees it
    status: str = "open"
    contact_email: str | None = None
    contact_phone: str | None = None
    vehicle_plate: str | None = None
    #: when the ERP last changed this debt, timezone-aware; drives incremental syncs
    updated_at: datetime | None = None

    @property
    def outstanding_minor(self) -> int:
        """What is still owed, in minor units."""
        return self.principal_minor - self.paid_minor


class RecordError(Exception):
    """A record the ERP sent that cannot become a DebtRecord; it travels in the stream instead of crashing it."""

    def __init__(self, reason: str, raw: Mapping[str, Any] | str) -> None:
        # Both go to Exception so that pickling (e.g. across worker processes) rebuilds the error.
        super().__init__(reason, raw)
        self.reason = reason
        self.raw = raw

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class PaymentAck:
    """One paid line, told to the ERP; acknowledging the same line_id twice has no effect."""

    #: unique idempotency key of the payment line, e.g. "CP-7KQ2-M9XA-3F:12"
    line_id: str
    payment_reference: str
    #: the ERP's id of the debt that was paid
    external_id: str
    #: which installment of a settled debt, or None for the debt as a whole
    installment_number: int | None
    #: minor units of principal paid, > 0
    principal_minor: int
    #: minor units of late-payment surcharge paid on top, >= 0
    surcharge_minor: int
    #: ISO 4217 code
    currency: str
    #: timezone-aware
    paid_at: datetime

    def __post_init__(self) -> None:
        # Refused here, at the source, so that an ack the ERP would misread never reaches the outbox.
        if not isinstance(self.line_id, str) or not self.line_id.strip():
            raise ValueError("A payment acknowledgement needs a line id.")
        if not _is_minor_amount(self.principal_minor) or self.principal_minor <= 0:
            raise ValueError(f"The acknowledged principal {self.principal_minor!r} is not a positive whole number.")
        if not _is_minor_amount(self.surcharge_minor) or self.surcharge_minor < 0:
            raise ValueError(f"The acknowledged surcharge {self.surcharge_minor!r} is not a whole number >= 0.")
        if self.installment_number is not None and (
            not _is_minor_amount(self.installment_number) or self.installment_number < 1
        ):
            raise ValueError(f"The installment number {self.installment_number!r} is not a number from 1 up.")
        if not isinstance(self.currency, str) or not _CURRENCY_PATTERN.fullmatch(self.currency):
            raise ValueError(f"The currency {self.currency!r} is not an ISO 4217 code such as 'EUR'.")
        if not _is_aware(self.paid_at):
            raise ValueError(f"The payment time {self.paid_at!r} must be a timezone-aware datetime.")


class AckRejected(Exception):
    """The ERP refused a payment acknowledgement for good (unknown debt, amount mismatch); retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@runtime_checkable
class ERPConnector(Protocol):
    """What Civic Pay needs from an agency's ERP; transient failures raise ConnectionError with a sentence."""

    #: whether iter_debts honours changed_since (otherwise it always streams everything)
    supports_changed_since: bool

    def iter_debts(self, changed_since: datetime | None = None) -> Iterator[DebtRecord | RecordError]:
        """Stream every debt (changed at or after changed_since, if given); a bad record is a RecordError item."""
        ...

    def fetch_debtor(self, tax_country: str, tax_id: str) -> list[DebtRecord | RecordError]:
        """This debtor's current debts at this agency, in every status the ERP still reports."""
        ...

    def acknowledge(self, ack: PaymentAck) -> None:
        """Tell the ERP a line was paid; idempotent by ack.line_id; AckRejected if the ERP refuses it for good."""
        ...

    def check(self) -> None:
        """Raise ConnectionError with a sentence if the ERP cannot be reached."""
        ...


@dataclass(frozen=True)
class AgencyProfile:
    """A public body that issues debts: a municipality or one of its legal entities."""

    code: str
    name_el: str
    name_en: str
    currency: str = "EUR"
    timezone: str = "Europe/Athens"
    country: str = "GR"


def _is_minor_amount(value: object) -> bool:
    # bool is an int subclass, and a float here would mean someone rounded money already.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def validate_record(record: DebtRecord) -> list[str]:
    """List, as sentences, everything wrong with a record; an empty list means it can be imported."""
    problems: list[str] = []

    if not isinstance(record.external_id, str) or not record.external_id.strip():
        problems.append("The external id is empty.")
    if not isinstance(record.debtor_name, str) or not record.debtor_name.strip():
        problems.append("The debtor name is empty.")
    if record.category not in CATEGORIES:
        problems.append(f"The category {record.category!r} is unknown; expected one of {', '.join(CATEGORIES)}.")
    if record.status not in STATUSES:
        problems.append(f"The status {record.status!r} is unknown; expected one of {', '.join(STATUSES)}.")
    if not isinstance(record.kind, str) or not _KIND_PATTERN.fullmatch(record.kind):
        problems.append(f"The kind {record.kind!r} is not a lowercase slug such as 'property_fee'.")
    if not isinstance(record.currency, str) or not _CURRENCY_PATTERN.fullmatch(record.currency):
        problems.append(f"The currency {record.currency!r} is not an ISO 4217 code such as 'EUR'.")
    if not isinstance(record.due_date, date):
        problems.append(f"The due date {record.due_date!r} is not a date.")

    problems.extend(_amount_problems(record))
    problems.extend(_tax_id_problems(record))
    problems.extend(_installment_problems(record))

    if record.rf_reference is not None and not _is_compact_rf(record.rf_reference):
        problems.append(
            f"The RF reference {record.rf_reference!r} is not a valid ISO 11649 creditor reference "
            "in compact form (like RF18539007547034)."
        )
    if record.updated_at is not None and not _is_aware(record.updated_at):
        # A naive time would be compared with other zones' times during incremental syncs and skip changes.
        problems.append(f"The update time {record.updated_at!r} is not a timezone-aware date and time.")
    return problems


def _amount_problems(record: DebtRecord) -> list[str]:
    problems: list[str] = []
    principal_ok = _is_minor_amount(record.principal_minor)
    paid_ok = _is_minor_amount(record.paid_minor)
    if not principal_ok:
        problems.append(f"The principal {record.principal_minor!r} is not a whole number of minor units.")
    elif record.principal_minor < 0:
        problems.append(f"The principal is negative ({record.principal_minor} minor units).")
    if not paid_ok:
        problems.append(f"The paid amount {record.paid_minor!r} is not a whole number of minor units.")
    elif record.paid_minor < 0:
        problems.append(f"The paid amount is negative ({record.paid_minor} minor units).")
    # A negative amount is already reported; comparing it too would only repeat the problem.
    if principal_ok and paid_ok and 0 <= record.principal_minor < record.paid_minor:
        problems.append(
            f"The paid amount ({record.paid_minor} minor units) exceeds "
            f"the principal ({record.principal_minor} minor units)."
        )
    return problems


def _tax_id_problems(record: DebtRecord) -> list[str]:
    if not isinstance(record.tax_country, str) or not _COUNTRY_PATTERN.fullmatch(record.tax_country):
        return [f"The tax country {record.tax_country!r} is not an ISO 3166 code such as 'GR'."]
    if not isinstance(record.tax_id, str) or not record.tax_id.strip():
        return ["The tax id is empty."]
    if record.tax_country != "GR":
        # No checksum rule is known for other countries yet; a non-empty id is all we can ask.
        return []
    if not (len(record.tax_id) == 9 and record.tax_id.isascii() and record.tax_id.isdigit()):
        return [f"The Greek tax id (AFM) {record.tax_id!r} must be 9 digits without the EL/GR prefix."]
    # Nine ASCII digits need none of greek_vat.is_valid's cleaning; its check digit alone is much quicker.
    if greek_vat.calc_check_digit(record.tax_id[:8]) != record.tax_id[8]:
        return [f"The Greek tax id (AFM) {record.tax_id} fails its check digit."]
    return []


def _installment_problems(record: DebtRecord) -> list[str]:
    installments = record.installments
    if record.category != "settled":
        if installments:
            return [f"Only settled debts have installments; this {record.category} debt has {len(installments)}."]
        return []
    if not installments:
        return ["A settled debt must list its installments."]

    problems: list[str] = []
    numbers = [installment.number for installment in installments]
    if numbers != list(range(1, len(installments) + 1)):
        problems.append(f"The installments are numbered {numbers}; expected 1 to {len(installments)} in order.")
    amounts_ok = True
    for installment in installments:
        if not _is_minor_amount(installment.amount_minor) or installment.amount_minor <= 0:
            problems.append(f"Installment {installment.number} has an amount that is not a positive whole number.")
            amounts_ok = False
        elif not (_is_minor_amount(installment.paid_minor) and 0 <= installment.paid_minor <= installment.amount_minor):
            problems.append(
                f"Installment {installment.number} has a paid amount outside 0 to {installment.amount_minor}."
            )
            amounts_ok = False
    due_dates = [installment.due_date for installment in installments]
    if all(isinstance(due, date) for due in due_dates) and due_dates != sorted(due_dates):
        problems.append("The installments' due dates are not in order.")
    if amounts_ok:
        scheduled = sum(installment.amount_minor for installment in installments)
        if scheduled != record.principal_minor:
            problems.append(
                f"The installments add up to {scheduled} minor units but the principal is {record.principal_minor}."
            )
        paid = sum(installment.paid_minor for installment in installments)
        # Otherwise nobody can tell which installments are still due.
        if paid != record.paid_minor:
            problems.append(
                f"The installments record {paid} minor units paid but the debt records {record.paid_minor}."
            )
    return problems


def _is_compact_rf(reference: object) -> bool:
    if not isinstance(reference, str):
        return False
    if reference.isascii() and reference.isalnum() and reference.isupper() and 5 <= len(reference) <= 25:
        # Already compact, so ISO 7064 MOD 97-10 in one int() gives stdnum's answer at a fraction of its cost.
        rearranged = reference[4:] + reference[:4]
        return reference.startswith("RF") and int(rearranged.translate(_LETTER_VALUES)) % 97 == 1
    return iso11649.is_valid(reference) and iso11649.compact(reference) == reference


#: A=10 ... Z=35, as ISO 7064 turns letters into digits
_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


def record_to_dict(record: DebtRecord) -> dict[str, Any]:
    """A JSON-ready mapping of a record: dates as ISO strings, amounts as ints."""
    return {
        "external_id": record.external_id,
        "tax_id": record.tax_id,
        "tax_country": record.tax_country,
        "debtor_name": record.debtor_name,
        "category": record.category,
        "kind": record.kind,
        "description": record.description,
        "principal_minor": record.principal_minor,
        "paid_minor": record.paid_minor,
        "currency": record.currency,
        "due_date": record.due_date.isoformat(),
        "rf_reference": record.rf_reference,
        "installments": [
            {
                "number": installment.number,
                "due_date": installment.due_date.isoformat(),
                "amount_minor": installment.amount_minor,
                "paid_minor": installment.paid_minor,
            }
            for installment in record.installments
        ],
        "status": record.status,
        "contact_email": record.contact_email,
        "contact_phone": record.contact_phone,
        "vehicle_plate": record.vehicle_plate,
        "updated_at": record.updated_at.isoformat() if record.updated_at is not None else None,
    }


def record_from_dict(raw: Mapping[str, Any]) -> DebtRecord:
    """Build a record from a mapping shaped like record_to_dict's; RecordError (with raw) if it cannot be read."""
    try:
        installments = tuple(
            InstallmentRecord(
                number=_read_int(item, "number"),
                due_date=_read_date(item, "due_date"),
                amount_minor=_read_int(item, "amount_minor"),
                paid_minor=_read_int(item, "paid_minor", default=0),
            )
            for item in raw.get("installments") or ()
        )
        return DebtRecord(
            external_id=_read_str(raw, "external_id"),
            tax_id=_read_str(raw, "tax_id"),
            tax_country=_read_str(raw, "tax_country"),
            debtor_name=_read_str(raw, "debtor_name"),
            category=_read_str(raw, "category"),
            kind=_read_str(raw, "kind"),
            description=_read_str(raw, "description"),
            principal_minor=_read_int(raw, "principal_minor"),
            paid_minor=_read_int(raw, "paid_minor"),
            currency=_read_str(raw, "currency"),
            due_date=_read_date(raw, "due_date"),
            rf_reference=_read_optional_str(raw, "rf_reference"),
            installments=installments,
            status=_read_str(raw, "status", default="open"),
            contact_email=_read_optional_str(raw, "contact_email"),
            contact_phone=_read_optional_str(raw, "contact_phone"),
            vehicle_plate=_read_optional_str(raw, "vehicle_plate"),
            updated_at=_read_optional_datetime(raw, "updated_at"),
        )
    except _FieldError as error:
        raise RecordError(str(error), raw) from None
    except (AttributeError, TypeError):
        raise RecordError("The record is not shaped like a debt record.", raw) from None


class _FieldError(ValueError):
    pass


_MISSING: Any = object()


def _read_value(raw: Mapping[str, Any], field: str, default: Any) -> Any:
    if field in raw:
        return raw[field]
    if default is _MISSING:
        raise _FieldError(f"The field {field!r} is missing.")
    return default


def _read_str(raw: Mapping[str, Any], field: str, default: Any = _MISSING) -> str:
    value = _read_value(raw, field, default)
    if not isinstance(value, str):
        raise _FieldError(f"The field {field!r} should be text, not {value!r}.")
    return value


def _read_optional_str(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise _FieldError(f"The field {field!r} should be text or empty, not {value!r}.")
    return value


def _read_int(raw: Mapping[str, Any], field: str, default: Any = _MISSING) -> int:
    value = _read_value(raw, field, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _FieldError(f"The field {field!r} should be a whole number, not {value!r}.")
    return value


def _read_date(raw: Mapping[str, Any], field: str) -> date:
    value = _read_value(raw, field, _MISSING)
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _FieldError(f"The field {field!r} should be a date like 2026-03-31, not {value!r}.") from None


def _read_optional_datetime(raw: Mapping[str, Any], field: str) -> datetime | None:
    value = raw.get(field)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise _FieldError(
            f"The field {field!r} should be a date and time with its offset, like 2026-03-31T09:15:00+00:00, "
            f"not {value!r}."
        )
    return parsed


def payment_ack_to_dict(ack: PaymentAck) -> dict[str, Any]:
    """A JSON-ready mapping of an acknowledgement: paid_at as an ISO 8601 string with its offset."""
    return {
        "line_id": ack.line_id,
        "payment_reference": ack.payment_reference,
        "external_id": ack.external_id,
        "installment_number": ack.installment_number,
        "principal_minor": ack.principal_minor,
        "surcharge_minor": ack.surcharge_minor,
        "currency": ack.currency,
        "paid_at": ack.paid_at.isoformat(),
    }


def payment_ack_from_dict(raw: Mapping[str, Any]) -> PaymentAck:
    """Build an acknowledgement from payment_ack_to_dict's shape; ValueError with a sentence if it cannot be read."""
    try:
        installment = raw.get("installment_number")
        if installment is not None and (not isinstance(installment, int) or isinstance(installment, bool)):
            raise _FieldError(f"The field 'installment_number' should be a whole number or empty, not {installment!r}.")
        paid_at = _read_optional_datetime(raw, "paid_at")
        if paid_at is None:
            raise _FieldError("The field 'paid_at' is missing.")
        return PaymentAck(
            line_id=_read_str(raw, "line_id"),
            payment_reference=_read_str(raw, "payment_reference"),
            external_id=_read_str(raw, "external_id"),
            installment_number=installment,
            principal_minor=_read_int(raw, "principal_minor"),
            surcharge_minor=_read_int(raw, "surcharge_minor"),
            currency=_read_str(raw, "currency"),
            paid_at=paid_at,
        )
    except ValueError as error:
        # A missing field and a refused value (PaymentAck's own checks) read the same to whoever sent the ack.
        raise ValueError(f"The payment acknowledgement cannot be read: {error}") from None
    except AttributeError:
        raise ValueError("The payment acknowledgement is not a JSON object.") from None
