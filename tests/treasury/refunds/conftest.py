"""Fixtures of the refund pages' tests: each ends with the withholdings ledger check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.payments.helpers import check_ledger_after_test


@pytest.fixture(autouse=True)
def _ledger_adds_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of every refund test that used the database: the withholdings ledger adds up."""
    yield from check_ledger_after_test(request)
