"""Revenue withholdings (κρατήσεις): the parts of a payment line that belong to third parties.

An agency sets, per kind of debt, a list of withholdings, each a percentage of the line or a
fixed amount, for a named beneficiary (e.g. a state fund). A line is split into each
withholding's share and what remains for the agency, in minor units, adding up exactly:

- a percentage is taken of the whole line and rounded half-up to the minor unit;
- shares are taken in the order listed, and none takes more than is left of the line, so a fixed
  amount larger than the line (or percentages beyond it) are capped and the agency's remainder
  never goes below zero.

Stored on the agency as JSON: ``{"<kind>": [{"name": "Fund X", "percent": "2"},
{"name": "Fund Y", "fixed_minor": 50}], "default": [...]}``; a kind that is not listed takes the
"default" list, and a kind listed with ``[]`` has no withholdings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.domain.money import Money

__all__ = [
    "DEFAULT_KEY",
    "InvalidWithholding",
    "LineSplit",
    "Share",
    "Withholding",
    "check_withholding_settings",
    "reverse_in_proportion",
    "split_by_weight",
    "split_line",
    "withholdings_for_kind",
]

#: The settings key of the list used for every kind not listed on its own.
DEFAULT_KEY = "default"
#: Longest beneficiary name kept (it appears in exports and on the payment page).
MAX_NAME_LENGTH = 100


class InvalidWithholding(ValueError):
    """A withholding setting that cannot be applied; the message says which and why."""


@dataclass(frozen=True)
class Withholding:
    """One withholding: a percentage of the line, or a fixed amount, for a beneficiary."""

    name: str
    #: Per cent of the line, 0 < percent <= 100 (Decimal("2") is 2 %); None for a fixed amount.
    percent: Decimal | None = None
    #: minor units, > 0; None for a percentage.
    fixed_minor: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidWithholding("A withholding needs the name of its beneficiary.")
        if len(self.name) > MAX_NAME_LENGTH:
            raise InvalidWithholding(f"A beneficiary's name has at most {MAX_NAME_LENGTH} characters.")
        if (self.percent is None) == (self.fixed_minor is None):
            raise InvalidWithholding(f"The withholding for {self.name} must be either a percentage or an amount.")
        if self.percent is not None:
            if not isinstance(self.percent, Decimal) or not self.percent.is_finite():
                raise InvalidWithholding(f"The percentage for {self.name} must be a number such as 2 or 0.5.")
            if not Decimal(0) < self.percent <= Decimal(100):
                raise InvalidWithholding(f"The percentage for {self.name} must be more than 0 and at most 100.")
        if self.fixed_minor is not None and (
            isinstance(self.fixed_minor, bool) or not isinstance(self.fixed_minor, int) or self.fixed_minor <= 0
        ):
            raise InvalidWithholding(f"The amount for {self.name} must be more than zero, in minor units.")

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Withholding:
        """Read a stored withholding: {"name": ..., "percent": "2"} or {"name": ..., "fixed_minor": 50}."""
        if not isinstance(stored, Mapping):
            raise InvalidWithholding(f"A withholding is stored as an object, not {stored!r}.")
        percent = stored.get("percent")
        if percent is not None:
            if isinstance(percent, (float, bool)):
                raise InvalidWithholding('A stored percentage is text such as "2.5", never a float.')
            try:
                percent = Decimal(str(percent))
            except InvalidOperation:
                raise InvalidWithholding(f"{percent!r} is not a percentage.") from None
        return cls(name=stored.get("name", ""), percent=percent, fixed_minor=stored.get("fixed_minor"))

    def to_dict(self) -> dict[str, Any]:
        """The withholding as the agencies table stores it."""
        if self.percent is not None:
            return {"name": self.name, "percent": str(self.percent)}
        return {"name": self.name, "fixed_minor": self.fixed_minor}


@dataclass(frozen=True)
class Share:
    """What one withholding takes of a line."""

    withholding: Withholding
    #: minor units, >= 0.
    amount_minor: int

    @property
    def name(self) -> str:
        """The beneficiary."""
        return self.withholding.name


@dataclass(frozen=True)
class LineSplit:
    """A line split into the withholdings' shares and the agency's remainder; they add up to it."""

    line_minor: int
    currency: str
    shares: tuple[Share, ...]
    #: minor units, >= 0: what the agency keeps.
    remainder_minor: int

    @property
    def withheld_minor(self) -> int:
        """minor units: the shares together."""
        return sum(share.amount_minor for share in self.shares)


def split_line(amount_minor: int, currency: str, withholdings: Sequence[Withholding]) -> LineSplit:
    """Split a line of ``amount_minor`` among ``withholdings`` (in order) and the agency, exactly."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"A line amount is a whole number of minor units, not {amount_minor!r}.")
    if amount_minor < 0:
        raise ValueError(f"A payment line cannot be negative, but {amount_minor} was given.")
    line = Money(amount_minor, currency)
    left = amount_minor
    shares = []
    for withholding in withholdings:
        if withholding.percent is not None:
            wanted = line.percent(withholding.percent, rounding=ROUND_HALF_UP).amount
        else:
            wanted = withholding.fixed_minor or 0
        taken = min(wanted, left)
        shares.append(Share(withholding, taken))
        left -= taken
    return LineSplit(amount_minor, currency, tuple(shares), left)


def split_by_weight(amount_minor: int, weights: Sequence[int]) -> list[int]:
    """Split an amount in proportion to ``weights``, largest remainder first: the parts add up exactly.

    Each part is the floor of its exact share; the minor units left over go one each to the parts
    with the largest fractional remainders (ties: the earlier part). A zero weight gets nothing.
    """
    total = sum(weights)
    if total <= 0 or any(weight < 0 for weight in weights):
        raise ValueError("The weights must be at least zero and add up to more than zero.")
    parts = [amount_minor * weight // total for weight in weights]
    remainders = sorted(range(len(weights)), key=lambda index: (-(amount_minor * weights[index] % total), index))
    for index in remainders[: amount_minor - sum(parts)]:
        parts[index] += 1
    return parts


def reverse_in_proportion(amount_minor: int, held: Sequence[int]) -> list[int]:
    """What a refund of ``amount_minor`` takes back from each part still ``held``, in proportion.

    Largest-remainder rounding (``split_by_weight``) over what each part still holds, so the
    reversals add up to the refund exactly, none takes more than its part still holds, and a
    refund of everything still held takes each part whole. A series of partial refunds therefore
    never drives a beneficiary below zero, and the last one leaves every part at exactly zero.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"A refund is a whole number of minor units, not {amount_minor!r}.")
    if any(isinstance(part, bool) or not isinstance(part, int) or part < 0 for part in held):
        raise ValueError("What a part still holds is a whole number of minor units, at least zero.")
    if not 0 <= amount_minor <= sum(held):
        raise ValueError(f"A refund of {amount_minor} cannot be taken from parts holding {sum(held)}.")
    if amount_minor == 0:
        return [0] * len(held)
    return split_by_weight(amount_minor, held)


def withholdings_for_kind(settings: Mapping[str, Any] | None, kind: str) -> list[Withholding]:
    """The withholdings of a kind of debt: its own list if it has one, else the default list."""
    settings = settings or {}
    stored = settings[kind] if kind in settings else settings.get(DEFAULT_KEY, [])
    return [Withholding.from_dict(item) for item in stored or []]


def check_withholding_settings(settings: Mapping[str, Iterable[Mapping[str, Any]]] | None) -> dict[str, list[dict]]:
    """The settings checked and in their stored form; InvalidWithholding if any entry is wrong."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise InvalidWithholding("Withholdings are stored as an object of kinds, each with a list.")
    checked: dict[str, list[dict]] = {}
    for kind, items in settings.items():
        if not isinstance(kind, str) or not kind:
            raise InvalidWithholding(f"{kind!r} is not a kind of debt.")
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidWithholding(f"The withholdings of {kind} must be a list.")
        withholdings = [Withholding.from_dict(item) for item in items]
        total_percent = sum((item.percent for item in withholdings if item.percent is not None), Decimal(0))
        if total_percent > 100:
            raise InvalidWithholding(f"The percentages withheld from {kind} add up to more than 100.")
        checked[kind] = [item.to_dict() for item in withholdings]
    return checked
