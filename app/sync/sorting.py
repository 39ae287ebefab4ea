"""Sorting a batch of ERP records: unchanged (by content hash), to quarantine (with the reason), or to write.

Both ways of writing (row by row in ``apply``, set-based in ``set_based``) take what ``sort_batch``
returns, so both follow the same checks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.agencies.models import Agency
from app.debts.models import Debt, Debtor
from app.domain.references import InvalidReference, normalise_rf, rf_for_debt
from app.sync import set_based
from app.sync.hashing import content_hash, stored_hash_matches
from app.sync.quarantine import quarantine_record
from app.sync.runs import RunState
from erp_connectors.base import DebtRecord, RecordError, record_to_dict, validate_record


@dataclass(frozen=True)
class RecordResult:
    """What happened to one record of a batch."""

    index: int
    external_id: str | None
    #: "created" | "updated" | "unchanged" | "closed" | "quarantined" | "not_found" | "flagged"
    outcome: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AgencyKeys:
    """What sorting a batch needs of its agency, read once: the ORM object expires at every commit."""

    id: int
    code: str
    currency: str


#: Text fields of a record and the width of the column that keeps each (see app.debts.models).
_TEXT_WIDTHS = (
    ("external id", "external_id", Debt.__table__.c.external_id.type.length),
    ("tax id", "tax_id", Debtor.__table__.c.tax_id.type.length),
    ("debtor name", "debtor_name", Debtor.__table__.c.name.type.length),
    ("kind", "kind", Debt.__table__.c.kind.type.length),
    ("description", "description", Debt.__table__.c.description.type.length),
    ("vehicle plate", "vehicle_plate", Debt.__table__.c.vehicle_plate.type.length),
    ("e-mail address", "contact_email", Debt.__table__.c.contact_email.type.length),
    ("phone number", "contact_phone", Debt.__table__.c.contact_phone.type.length),
)
#: The largest amount an Integer column holds (PostgreSQL's integer is 32 bits).
_MAX_MINOR = 2**31 - 1


def _storage_problems(record: DebtRecord) -> list[str]:
    """What would make the database refuse the record (and, on PostgreSQL, fail its whole batch)."""
    problems: list[str] = []
    for label, name, width in _TEXT_WIDTHS:
        value = getattr(record, name)
        if isinstance(value, str):
            if len(value) > width:
                problems.append(f"The {label} has {len(value)} characters; at most {width} fit.")
            if "\x00" in value:
                problems.append(f"The {label} contains a NUL character.")
    amounts = [("principal", record.principal_minor), ("paid amount", record.paid_minor)]
    amounts += [(f"installment {item.number}", item.amount_minor) for item in record.installments]
    for label, amount in amounts:
        if isinstance(amount, int) and amount > _MAX_MINOR:
            problems.append(f"The {label} ({amount} minor units) is larger than the portal can keep.")
    return problems


def _record_problems(record: DebtRecord, agency: Agency | AgencyKeys) -> tuple[list[str], str]:
    """Everything wrong with a record, and the RF reference it will carry ("" if it has none valid)."""
    problems = validate_record(record)
    problems.extend(_storage_problems(record))
    if record.currency != agency.currency:
        problems.append(f"The currency {record.currency} is not the agency's currency {agency.currency}.")
    reference = ""
    try:
        reference = reference_of(record, agency)
    except InvalidReference as error:
        problems.append(str(error))
    return problems, reference


#: Reads a batch needs: the agency's debts with these external ids, as (external_id, id,
#: content_hash, closed_reason) rows; and the owners (external ids) of these RF references.
DebtLookup = Callable[[list[str]], Iterable[tuple[Any, ...]]]
OwnerLookup = Callable[[list[str]], Mapping[str, str]]


@dataclass
class SortedBatch:
    """A batch's records sorted by what must happen to them; quarantined ones are already recorded."""

    #: (index, record, digest, RF reference) of new or changed records that passed every check, in stream order
    good: list[tuple[int, DebtRecord, str, str]]
    #: debt id of each record of the batch that the portal already holds, by external id
    known_ids: dict[str, int]
    #: (debt id, digest) of unchanged debts whose stored hash still has the legacy form
    rehash: list[tuple[int, str]]


def sort_batch(
    agency: Agency | AgencyKeys,
    state: RunState,
    items: list[tuple[int, DebtRecord | RecordError]],
    lookup: DebtLookup,
    owners: OwnerLookup,
    results: list[RecordResult] | None,
    in_flight: set_based.InFlight | None = None,
) -> SortedBatch:
    """Quarantine the batch's bad and repeated records, count the unchanged ones, return the rest.

    The common case, a record the ERP sends again unchanged, costs its hash and a share of one
    indexed query: it was validated when first applied, so it is not validated again. ``results``
    (when given) receives the outcome of each record decided here. ``in_flight`` is the batch
    being written meanwhile (pipelined writes), which the look-ups may not see yet.
    """
    in_flight = in_flight if in_flight is not None else set_based.InFlight()
    records: list[tuple[int, DebtRecord, str]] = []
    for index, item in items:
        if isinstance(item, RecordError):
            raw = item.raw
            external_id = raw.get("external_id") if isinstance(raw, Mapping) else None
            external_id = external_id if isinstance(external_id, str) else None
            quarantine_record(agency.id, state.run, external_id, item.reason, raw)
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", item.reason))
        else:
            records.append((index, item, content_hash(item)))

    # A debt closed as vanished that the ERP lists again must reopen even if its content is the same.
    known = {
        external_id: (debt_id, digest if closed_reason != "vanished" else None)
        for external_id, debt_id, digest, closed_reason in lookup([record.external_id for _, record, _ in records])
    } if records else {}  # fmt: skip
    good: list[tuple[int, DebtRecord, str, str]] = []
    rehash: list[tuple[int, str]] = []
    in_batch: set[str] = set()
    unchanged = 0
    for index, record, digest in records:
        external_id = record.external_id
        found = known.get(external_id)
        if (
            external_id in in_batch
            or external_id in in_flight.external_ids
            or (found is not None and state.was_seen(found[0]))
        ):
            reason = f"The external id {external_id} appears twice in one sync."
            quarantine_record(agency.id, state.run, external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", reason))
            continue
        in_batch.add(external_id)
        if found is not None:
            stored = found[1]
            if stored_hash_matches(stored, digest, record):
                if stored != digest:
                    rehash.append((found[0], digest))
                state.mark(found[0])
                unchanged += 1
                if results is not None:
                    results.append(RecordResult(index, external_id, "unchanged"))
                continue
        problems, reference = _record_problems(record, agency)
        if problems:
            reason = " ".join(problems)
            quarantine_record(agency.id, state.run, external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, external_id, "quarantined", reason))
            continue
        good.append((index, record, digest, reference))
    state.pending["unchanged"] += unchanged
    good = _refuse_reused_references(agency, state, good, owners, results, in_flight)
    return SortedBatch(good, {external_id: found[0] for external_id, found in known.items()}, rehash)


@functools.lru_cache(maxsize=65_536)
def _cached_reference(agency_code: str, rf_reference: str | None, external_id: str) -> str:
    # Validating an RF is the costliest step per record; a batch asks for each one three times.
    if rf_reference:
        return rf_reference if _is_normal_rf(rf_reference) else normalise_rf(rf_reference)
    return rf_for_debt(agency_code, external_id)


_COMPACT_RF = re.compile(r"RF[0-9]{2}[0-9A-Z]{1,21}", re.ASCII)
#: A=10 ... Z=35, as ISO 7064 turns letters into digits
_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


def _is_normal_rf(reference: str) -> bool:
    """Whether normalise_rf would return the reference unchanged; a fifth of its cost, for ERPs' compact RFs.

    The checks are normalise_rf's for a reference already compact and upper-case: the shape, the
    ISO 7064 MOD 97-10 checksum in one int(), and the check digits ISO 11649 never issues.
    """
    return (
        _COMPACT_RF.fullmatch(reference) is not None
        and reference[2:4] not in ("00", "01", "99")
        and int((reference[4:] + reference[:4]).translate(_LETTER_VALUES)) % 97 == 1
    )


def reference_of(record: DebtRecord, agency: Agency | AgencyKeys) -> str:
    """The RF reference the debt carries: the ERP's, normalised, or one made from its external id."""
    return _cached_reference(agency.code, record.rf_reference, record.external_id)


def _refuse_reused_references(
    agency: Agency | AgencyKeys,
    state: RunState,
    good: list[tuple[int, DebtRecord, str, str]],
    owners: OwnerLookup,
    results: list[RecordResult] | None,
    in_flight: set_based.InFlight,
) -> list[tuple[int, DebtRecord, str, str]]:
    """Quarantine records whose RF reference another debt of the agency already carries.

    A payment code must name exactly one debt; the database enforces it, and without this check
    one reused code would fail the whole batch instead of one record. The batch in flight (when
    writes are pipelined) counts as written, whether or not the look-up already sees it.
    """
    owner_of = owners(list({reference for _, _, _, reference in good})) if good else {}
    kept: list[tuple[int, DebtRecord, str, str]] = []
    claimed: dict[str, str] = {reference: external_id for external_id, reference in in_flight.references.items()}
    moving = in_flight.references
    for item in good:
        index, record, _, reference = item
        owner = owner_of.get(reference)
        if owner is not None and moving.get(owner, reference) != reference:
            owner = None  # the batch being written moves that debt to another reference
        if owner is None:
            owner = claimed.get(reference)
        if owner is not None and owner != record.external_id:
            reason = f"The RF reference {reference} already belongs to debt {owner}; a payment code must name one debt."
            quarantine_record(agency.id, state.run, record.external_id, reason, record_to_dict(record))
            if results is not None:
                results.append(RecordResult(index, record.external_id, "quarantined", reason))
            continue
        claimed[reference] = record.external_id
        kept.append(item)
    return kept
