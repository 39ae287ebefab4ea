"""Redirect targets from ``?next=`` stay on the portal (app/web.py)."""

from __future__ import annotations

import pytest

from app.web import safe_next

FALLBACK = "/debts"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/checkout/abc?x=1#top", "/checkout/abc?x=1#top"),  # a path on this site is kept whole
        ("/", "/"),
        (None, FALLBACK),
        ("", FALLBACK),
        ("debts", FALLBACK),  # relative: where it lands depends on the page
        ("https://evil.example/debts", FALLBACK),
        ("//evil.example/debts", FALLBACK),  # scheme-relative: another host
        ("/\\evil.example", FALLBACK),  # browsers read "\" as "/": "//evil.example"
        ("/\t/evil.example", FALLBACK),  # browsers drop tabs and line breaks in URLs
        ("/\n/evil.example", FALLBACK),
        ("javascript:alert(1)", FALLBACK),
    ],
)
def test_safe_next_keeps_only_paths_of_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target, FALLBACK) == expected
