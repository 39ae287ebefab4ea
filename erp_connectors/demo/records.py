"""How one demo record is drawn: descriptions, amounts, plates, installment schedules and RF references."""

from __future__ import annotations

import random
from datetime import UTC, date, time, timedelta

from stdnum.iso7064 import mod_97_10

from erp_connectors.base import InstallmentRecord
from erp_connectors.demo.data import (
    FIRST_NAMES_FEMALE,
    FIRST_NAMES_MALE,
    INSTALLMENT_INTERVAL_DAYS,
    MAX_AMOUNT_MINOR,
    MIN_AMOUNT_MINOR,
    PLATE_LETTERS,
    STREETS,
    SURNAMES,
    TRAFFIC_OFFENCES,
)

GENERATED_CATEGORIES = ("certified", "uncertified", "settled")
#: running totals of the categories' weights 45, 35, 20
CATEGORY_CUMULATIVE_WEIGHTS = (45, 80, 100)

#: generated debts were last changed by the ERP 1 to this many days before as_of
UPDATED_WITHIN_DAYS = 60
#: the hour of the ERP's nightly batch that stamps generated debts' updated_at
UPDATE_TIME = time(6, 0, tzinfo=UTC)


def demo_rf_reference(external_id: str) -> str:
    """A valid ISO 11649 RF reference built from the letters and digits of an external id."""
    payload = "".join(filter(str.isalnum, external_id)).upper()
    if len(payload) > 21:
        raise ValueError(f"The external id {external_id!r} is too long for an RF reference (at most 21 characters).")
    if not payload.isascii():
        return f"RF{mod_97_10.calc_check_digits(payload + 'RF')}{payload}"
    # ISO 7064 MOD 97-10 done with one int(): stdnum's digit-by-digit loop was a quarter of the generation time.
    check = 98 - int((payload + "RF00").translate(_LETTER_VALUES)) % 97
    return f"RF{check:02d}{payload}"


#: A=10 ... Z=35, as ISO 11649 turns letters into digits
_LETTER_VALUES = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


def debtor_name(rng: random.Random) -> str:
    male_surname, female_surname = rng.choice(SURNAMES)
    if rng.random() < 0.5:
        return f"{rng.choice(FIRST_NAMES_FEMALE)} {female_surname}"
    return f"{rng.choice(FIRST_NAMES_MALE)} {male_surname}"


def describe(rng: random.Random, kind: str) -> tuple[str, int]:
    """A description and a principal in cents for a generated debt of this kind."""
    address = f"οδός {rng.choice(STREETS)} {rng.randint(1, 120)}"
    if kind == "traffic_fine":
        offence, amount = rng.choice(TRAFFIC_OFFENCES)
        return offence, amount
    if kind == "property_fee":
        return f"ΤΑΠ, {address}", rng.randint(2_000, 60_000)
    if kind == "cleaning_lighting_fee":
        return f"Τέλη καθαριότητας, {address}", rng.randint(3_000, 80_000)
    if kind == "market_stall_rent":
        return f"Μίσθωμα λαϊκής αγοράς, θέση {rng.randint(1, 80)}", rng.randint(10_000, MAX_AMOUNT_MINOR)
    if kind == "water_bill":
        return f"Λογαριασμός ύδρευσης, παροχή {rng.randint(100_000, 199_999)}", rng.randint(MIN_AMOUNT_MINOR, 30_000)
    raise ValueError(f"The demo ERP has no amounts for the kind {kind!r}.")


def vehicle_plate(rng: random.Random) -> str:
    letters = "".join(rng.choice(PLATE_LETTERS) for _ in range(3))
    return f"{letters} {rng.randint(1000, 9999)}"


def installments_paid_so_far(rng: random.Random, count: int, first_due: date, as_of: date) -> int:
    """How many installments, from the first, a debtor has paid: only past ones, stopping at the first missed."""
    paid = 0
    for index in range(count):
        due = first_due + timedelta(days=index * INSTALLMENT_INTERVAL_DAYS)
        if due >= as_of or rng.random() >= 0.75:
            break
        paid += 1
    return paid


def schedule(principal_minor: int, count: int, first_due: date, paid_count: int) -> tuple[InstallmentRecord, ...]:
    """Split a principal into count installments; the first takes the leftover cents so the sum is exact."""
    if count == 0:
        return ()
    base, leftover = divmod(principal_minor, count)
    installments = []
    for index in range(count):
        amount = base + leftover if index == 0 else base
        installments.append(
            InstallmentRecord(
                number=index + 1,
                due_date=first_due + timedelta(days=index * INSTALLMENT_INTERVAL_DAYS),
                amount_minor=amount,
                paid_minor=amount if index < paid_count else 0,
            )
        )
    return tuple(installments)
