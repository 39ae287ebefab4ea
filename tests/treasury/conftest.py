"""Fixtures of the treasury tests: the clock stands at one morning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from tests.treasury.helpers import MORNING


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    """Freeze the clock before anyone logs in (a session signed in the future would be refused)."""
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller
