"""A guest look-up answers in constant time by doing equal work, not by sleeping in the worker.

A wrong code and a wrong second factor run the same statements (test_views.py) and the same
steps on the factor: worked out for a debt (a decoy when no debt has the code), parsed, hashed
and compared in constant time. The configurable floor sleeps only when set (threaded workers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

from app.config import BaseConfig, ProductionConfig
from app.debts.models import Debt
from app.domain.references import rf_for_debt
from app.guest import services
from tests.guest.steps import look_up

STEPS = ("expected_factor", "typed_factor", "factor_matches", "minor_unit_exponent")


@pytest.fixture()
def steps_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts each step of the factor check that a look-up runs."""
    taken: Counter[str] = Counter()
    for name in STEPS:
        original = getattr(services, name)

        def counted(*args, _name: str = name, _original: Callable = original, **kwargs):
            taken[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(services, name, counted)
    yield taken


@pytest.mark.parametrize("factor", ["9999", "ΙΚΑ 1234", "120,00", "x"])
def test_a_wrong_code_does_the_work_of_a_wrong_factor(
    client: FlaskClient, property_fee: Debt, steps_taken: Counter[str], factor: str
) -> None:
    assert look_up(client, property_fee.rf_reference, factor).status_code == 400
    wrong_factor = dict(steps_taken)
    steps_taken.clear()
    assert look_up(client, rf_for_debt("nowhere", "NO-SUCH-DEBT"), factor).status_code == 400
    assert dict(steps_taken) == wrong_factor == dict.fromkeys(STEPS, 1)


def test_the_decoy_never_matches(client: FlaskClient) -> None:
    """Whatever is typed, a code no debt has is refused: the decoy's factor is never a match."""
    for typed in ("0000", "000000000", "", "decoy"):
        assert services._matching_debts([], typed) == []


def test_look_ups_do_not_sleep_unless_a_floor_is_set(
    client: FlaskClient, property_fee: Debt, monkeypatch: pytest.MonkeyPatch, set_limits: Callable[..., None]
) -> None:
    assert BaseConfig.GUEST_LOOKUP_MIN_SECONDS == ProductionConfig.GUEST_LOOKUP_MIN_SECONDS == 0
    slept: list[float] = []
    monkeypatch.setattr(services.time, "sleep", slept.append)
    look_up(client, property_fee.rf_reference, "9999")
    look_up(client, rf_for_debt("nowhere", "NO-SUCH-DEBT"), "9999")
    assert slept == []
    set_limits(GUEST_LOOKUP_MIN_SECONDS=5)
    look_up(client, rf_for_debt("nowhere", "NO-SUCH-DEBT"), "9999")
    assert len(slept) == 1 and 4 < slept[0] <= 5
