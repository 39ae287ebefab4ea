"""Steps and values the browser tests share: the demo's people and cards, logging in, filling forms.

Plain functions taking a Playwright page; the fixtures (the live server, the browser, ``snap``)
live in conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.mail.smtp import SMTPServer

#: The demo citizens (public demo passwords, see erp_connectors/demo.py).
MARIA = ("maria@example.org", "demo-maria-2026")
JOHN = ("john@example.org", "demo-john-2026")

#: The sandbox provider's test cards.
CARD_SUCCEEDS = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
DECLINE_MESSAGE = "The card was declined by the bank. Nothing was charged. Try again or use another card."

#: The password the browser tests give the accounts they register.
PASSWORD = "tulip orbit canoe lantern"

#: ``snap(page, "03-review")``: save a full-page screenshot of a step of the test.
Snap = Callable[[Any, str], Path]


# -- accessibility ---------------------------------------------------------------------------------


def assert_accessible(page: Any) -> None:
    """Run axe-core on the page as it is now; fail listing every violation and where it is."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response["violations"]
    if not violations:
        return
    lines = [f"axe found {len(violations)} accessibility violation(s) on {page.url} ({page.title()!r}):"]
    for violation in violations:
        lines.append(f"\n* {violation['id']} [{violation['impact']}] {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"  - at {', '.join(map(str, node['target']))}")
            lines.append(f"    {node['html']}")
            for summary_line in (node.get("failureSummary") or "").splitlines():
                lines.append(f"      {summary_line}")
    pytest.fail("\n".join(lines), pytrace=False)


# -- steps every browser test takes ---------------------------------------------------------------


def log_in(page: Any, email: str, password: str) -> None:
    """Log in through the form of /login; ends on the dashboard."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/debts$"))


def choose_language(page: Any, name: str, code: str) -> None:
    """Press a language button of the header ("English" or "Ελληνικά") and wait for the page."""
    from playwright.sync_api import expect

    page.get_by_role("button", name=name, exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", code)


def parse_money(text: str) -> int:
    """Minor units from an amount as the portal shows it: €1,234.56 (en) or 1.234,56 € (el)."""
    cleaned = text.replace("\xa0", " ").replace("\u202f", " ").strip()
    english = re.fullmatch(r"€\s?(\d{1,3}(?:,\d{3})*|\d+)\.(\d{2})", cleaned)
    greek = re.fullmatch(r"(\d{1,3}(?:\.\d{3})*|\d+),(\d{2})\s?€", cleaned)
    match = english or greek
    assert match, f"{text!r} is not an amount in euros as the portal writes them"
    whole = re.sub(r"[.,]", "", match.group(1))
    return int(Decimal(f"{whole}.{match.group(2)}").scaleb(2))


def future_expiry() -> str:
    """An MM/YY expiry date a few years ahead, so the card never counts as expired."""
    return f"12/{(date.today().year + 3) % 100:02d}"


def fill_card(page: Any, number: str, holder: str = "Maria Papadopoulou") -> None:
    """Fill the review page's card form (without pressing Pay now)."""
    page.get_by_label("Name on the card").fill(holder)
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry date (MM/YY)").fill(future_expiry())
    page.get_by_label("Security code (CVC)").fill("123")


def tick_first_debt(page: Any, agency_name: str) -> str:
    """Tick the first selectable debt in the agency's part of the dashboard; returns its item key."""
    region = page.get_by_role("region", name=agency_name, exact=True)
    checkbox = region.get_by_role("checkbox").first
    checkbox.check()
    key = checkbox.get_attribute("value")
    assert key, f"the first checkbox of {agency_name} has no value"
    return key


def debt_checkbox(page: Any, key: str) -> Any:
    """The dashboard checkbox of one debt (or installment), by the item key it submits."""
    return page.locator(f'input[type="checkbox"][name="item"][value="{key}"]')


# -- accounts -------------------------------------------------------------------------------------


def register(page: Any, email: str, name: str = "Eleni Georgiou", password: str = PASSWORD) -> None:
    """Fill and send the registration form (the page must be open)."""
    page.get_by_label("Full name").fill(name)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password again").fill(password)
    page.get_by_label("Language of e-mails and pages").select_option("en")
    page.get_by_role("button", name="Create account").click()


def emailed_link(mailbox: SMTPServer, email: str, containing: str) -> str:
    """The path of the link in the newest message to ``email``."""
    mailbox.wait_for(1)
    return mailbox.to(email)[-1].link_path(containing)
