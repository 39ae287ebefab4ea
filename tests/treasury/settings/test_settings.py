"""Agency settings: the form shows the saved values, previews the surcharge, saves and audits."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.agencies.models import Agency
from app.audit.models import AuditEntry
from app.extensions import db
from tests.factories import AgencyFactory, DebtFactory, staff_member
from tests.helpers import csrf_token, page_text
from tests.treasury.helpers import sign_in


@dataclass(frozen=True)
class Town:
    """An agency by its id and code (a request ends the session its objects belong to)."""

    id: int
    code: str

    def reload(self) -> Agency:
        """The agency as the database has it now."""
        db.session.expire_all()
        return db.session.get(Agency, self.id)


@pytest.fixture()
def agency(db_session: None) -> Town:
    agency = AgencyFactory()
    DebtFactory(agency=agency, kind="property_fee")
    DebtFactory(agency=agency, kind="traffic_fine")
    return Town(agency.id, agency.code)


@pytest.fixture()
def admin_client(client: FlaskClient, agency: Town) -> FlaskClient:
    sign_in(client, staff_member(agency.reload(), "admin"))
    return client


def _url(agency: Town) -> str:
    return f"/treasury/{agency.code}/settings"


def _input(page: str, field_id: str) -> str:
    """The <input> element of the page with this id."""
    match = re.search(rf'<input[^>]* id="{field_id}"[^>]*>', page)
    assert match, f"no input {field_id}"
    return match.group(0)


def _form(client: FlaskClient, agency: Town, **changes: object) -> dict:
    """The Greek defaults as the form posts them, an example debt, and ``changes`` on top."""
    data: dict[str, object] = {
        "csrf_token": csrf_token(client, _url(agency)),
        "online_categories": ["certified", "settled", "uncertified"],
        "all_kinds": "y",
        "online_kinds": ["property_fee", "traffic_fine"],
        "rate_percent": "0.73",
        "period": "month",
        "started_period_counts_whole": "y",
        "grace_days": "0",
        "cap_amount": "",
        "cap_percent": "",
        "minimum": "",
        "rounding": "ROUND_HALF_UP",
        "surcharged_categories": ["certified", "settled"],
        "installments_in_order": "y",
        "factor_default": "tax_id_last4",
        "factor_property_fee": "",
        "factor_traffic_fine": "",
        "preview_principal": "120.00",
        "preview_category": "certified",
        "preview_due_date": "2026-01-31",
        "preview_on": "2026-03-01",
    }
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def test_the_form_shows_the_saved_settings_and_previews_an_example(admin_client: FlaskClient, agency: Town) -> None:
    saved = agency.reload()
    saved.surcharge_policy = {"rate_percent": "1", "grace_days": 10}
    saved.online_kinds = ["traffic_fine"]
    saved.guest_second_factor = {"default": "tax_id_last4", "traffic_fine": "plate"}
    db.session.commit()

    response = admin_client.get(_url(agency))
    text = page_text(response)
    assert response.status_code == 200
    assert _input(text, "rate_percent").endswith('value="1">')
    assert _input(text, "grace_days").endswith('value="10">')
    assert " checked " not in _input(text, "all_kinds")
    assert " checked " in _input(text, "online_kinds-1") and 'value="traffic_fine"' in _input(text, "online_kinds-1")
    assert " checked " not in _input(text, "online_kinds-0")
    assert '<option selected value="plate">' in text
    # The example: €100.00 due 75 days before today (1 March 2026) → 3 started months × 1 %.
    assert "Surcharge: €3.00" in text
    assert "3 months late × 1 % of €100.00" in text


#: Worked examples (notes/domain-rules.md: 0.73 % per month, a started month counting whole) on a
#: €120.00 certified debt due 31 January 2026 and paid 1 March 2026: one full month (to 28 Feb)
#: and one started day make two months.
PREVIEWS = [
    pytest.param({}, "€1.75", "2 months late × 0.73 % of €120.00", id="greek-default"),
    pytest.param(
        {"started_period_counts_whole": None}, "€0.88", "1 month late × 0.73 % of €120.00", id="only-full-months"
    ),
    pytest.param(
        {"started_period_counts_whole": None, "rounding": "ROUND_DOWN"}, "€0.87", "1 month late", id="rounded-down"
    ),
    pytest.param({"rate_percent": "0,1", "period": "day"}, "€3.48", "29 days late × 0.1 % of €120.00", id="per-day"),
    pytest.param({"cap_amount": "1,00"}, "€1.00", "Capped at €1.00", id="capped-amount"),
    pytest.param({"cap_percent": "1"}, "€1.20", "Capped at €1.20 (1 % of the principal)", id="capped-percent"),
    pytest.param({"minimum": "5"}, "€5.00", "Raised to the minimum surcharge of €5.00", id="minimum"),
    pytest.param({"grace_days": "30"}, "€0.00", "grace period", id="grace"),
    pytest.param(
        {"preview_category": "uncertified"}, "€0.00", "Uncertified debts carry no surcharge", id="uncertified"
    ),
]


@pytest.mark.parametrize(("changes", "amount", "sentence"), PREVIEWS)
def test_the_preview_computes_the_surcharge_of_the_typed_policy_without_saving_it(
    admin_client: FlaskClient, agency: Town, changes: dict, amount: str, sentence: str
) -> None:
    response = admin_client.post(_url(agency), data=_form(admin_client, agency, preview="Preview", **changes))
    text = page_text(response)
    assert response.status_code == 200, text
    assert f"Surcharge: {amount}" in text
    assert sentence in text
    assert agency.reload().surcharge_policy == {}  # a preview saves nothing
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update")) is None


def test_saving_changes_the_agency_in_one_go_and_audits_old_and_new(admin_client: FlaskClient, agency: Town) -> None:
    data = _form(
        admin_client,
        agency,
        save="Save",
        rate_percent="1,5",
        cap_percent="200",
        online_categories=["certified", "settled"],
        all_kinds=None,
        online_kinds=["property_fee"],
        installments_in_order=None,
        factor_traffic_fine="plate",
    )
    response = admin_client.post(_url(agency), data=data)
    assert response.status_code == 303
    assert "The settings have been saved." in page_text(admin_client.get(response.headers["Location"]))

    saved = agency.reload()
    assert saved.policy.rate_percent == Decimal("1.5")
    assert saved.policy.cap_percent == Decimal("200")
    assert saved.online_categories == ["certified", "settled"]
    assert saved.online_kinds == ["property_fee"]
    assert saved.installments_in_order is False
    assert saved.guest_second_factor == {"default": "tax_id_last4", "traffic_fine": "plate"}
    assert saved.pays_online("settled", "property_fee") and not saved.pays_online("certified", "traffic_fine")
    assert saved.guest_factor("traffic_fine") == "plate"

    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update"))
    assert entry is not None and entry.agency_id == agency.id and entry.subject == agency.code
    assert entry.details["surcharge_policy"]["from"]["rate_percent"] == "0.73"
    assert entry.details["surcharge_policy"]["to"]["rate_percent"] == "1.5"
    assert entry.details["online_kinds"] == {"from": None, "to": ["property_fee"]}
    assert entry.actor_user_id is not None and entry.ip_address == "127.0.0.1"


def test_saving_the_same_values_changes_and_audits_nothing(admin_client: FlaskClient, agency: Town) -> None:
    response = admin_client.post(_url(agency), data=_form(admin_client, agency, save="Save"))
    assert response.status_code == 303
    assert "Nothing was changed." in page_text(admin_client.get(response.headers["Location"]))
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update")) is None


INVALID = [
    pytest.param({"rate_percent": "abc"}, "Enter the rate as a number such as 0,73.", id="rate-not-a-number"),
    pytest.param({"rate_percent": "-1"}, "The rate must be between 0 and 100 per cent.", id="rate-negative"),
    pytest.param({"rate_percent": ""}, "Enter the surcharge rate, for example 0,73.", id="rate-missing"),
    pytest.param({"grace_days": "-3"}, "The grace period must be between 0 and 365 days.", id="grace-negative"),
    pytest.param({"grace_days": ""}, "Enter the grace period in days (0 for none).", id="grace-missing"),
    pytest.param({"cap_amount": "12,5 euros"}, "Enter an amount like 12,50.", id="cap-not-an-amount"),
    pytest.param({"cap_percent": "x"}, "Enter the percentage as a number such as 200.", id="cap-percent-text"),
    pytest.param(
        {"cap_amount": "1", "minimum": "2"}, "The minimum surcharge cannot be more than the cap.", id="minimum-over-cap"
    ),
    pytest.param(
        {"online_categories": None}, "Choose at least one category, or nobody can pay online.", id="no-category"
    ),
    pytest.param({"all_kinds": None, "online_kinds": None}, "Choose at least one kind of debt", id="no-kind"),
    pytest.param({"period": "year"}, "Not a valid choice", id="unknown-period"),
    pytest.param({"factor_traffic_fine": "shoe_size"}, "Not a valid choice", id="unknown-factor"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID)
def test_invalid_settings_are_refused_with_a_sentence_and_nothing_is_saved(
    admin_client: FlaskClient, agency: Town, changes: dict, message: str
) -> None:
    response = admin_client.post(_url(agency), data=_form(admin_client, agency, save="Save", **changes))
    assert response.status_code == 400
    assert message in html.unescape(page_text(response))
    saved = agency.reload()
    assert saved.surcharge_policy == {} and saved.online_kinds is None
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update")) is None


def test_the_preview_asks_for_a_complete_example(admin_client: FlaskClient, agency: Town) -> None:
    response = admin_client.post(
        _url(agency), data=_form(admin_client, agency, preview="Preview", preview_principal="", preview_due_date="")
    )
    text = page_text(response)
    assert response.status_code == 400
    assert "Enter the example debt's principal, more than zero." in html.unescape(text)
    assert "Enter the example debt's due date." in html.unescape(text)


@pytest.mark.parametrize("role", ["view", "refund"])
def test_only_administrators_open_the_settings(client: FlaskClient, agency: Town, role: str) -> None:
    sign_in(client, staff_member(agency.reload(), role))
    assert client.get(_url(agency)).status_code == 404


# -- revenue withholdings -------------------------------------------------------------------------


def _textarea(page: str, field_id: str) -> str:
    """The text of the page's <textarea> with this id."""
    match = re.search(rf'<textarea[^>]* id="{field_id}"[^>]*>\r?\n?(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {field_id}"
    return html.unescape(match.group(1))


def test_the_form_shows_the_saved_withholdings_one_a_line(admin_client: FlaskClient, agency: Town) -> None:
    saved = agency.reload()
    saved.withholdings = {
        "default": [{"name": "Ταμείο Χ", "percent": "2"}, {"name": "Fund Y", "fixed_minor": 50}],
        "traffic_fine": [],
    }
    db.session.commit()
    text = page_text(admin_client.get(_url(agency)))
    assert _textarea(text, "withholdings_default").splitlines() == ["Ταμείο Χ; 2%", "Fund Y; 0,50"]
    assert _textarea(text, "withholdings_traffic_fine") == "-"
    assert _textarea(text, "withholdings_property_fee") == ""
    assert "for example “Fund X; 2%” or “Fund Y; 0,50”" in html.unescape(text)


def test_saving_withholdings_stores_them_per_kind_and_audits_old_and_new(
    admin_client: FlaskClient, agency: Town
) -> None:
    data = _form(
        admin_client,
        agency,
        save="Save",
        withholdings_default="Ταμείο Χ; 2%\r\n\r\nFund; with a semicolon; 0,50",
        withholdings_traffic_fine="Fund Z; 2,50 %",
        withholdings_property_fee="-",
    )
    response = admin_client.post(_url(agency), data=data)
    assert response.status_code == 303, page_text(response)

    saved = agency.reload()
    assert saved.withholdings == {
        "default": [{"name": "Ταμείο Χ", "percent": "2"}, {"name": "Fund; with a semicolon", "fixed_minor": 50}],
        "property_fee": [],
        "traffic_fine": [{"name": "Fund Z", "percent": "2.5"}],
    }
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.update"))
    assert entry is not None and entry.agency_id == agency.id
    assert entry.details == {"withholdings": {"from": {}, "to": saved.withholdings}}

    # Shown again as typed (normalised), and saving them unchanged changes nothing.
    text = page_text(admin_client.get(_url(agency)))
    assert _textarea(text, "withholdings_traffic_fine") == "Fund Z; 2,5%"
    again = _form(
        admin_client,
        agency,
        save="Save",
        withholdings_default=_textarea(text, "withholdings_default"),
        withholdings_traffic_fine=_textarea(text, "withholdings_traffic_fine"),
        withholdings_property_fee=_textarea(text, "withholdings_property_fee"),
    )
    response = admin_client.post(_url(agency), data=again)
    assert "Nothing was changed." in page_text(admin_client.get(response.headers["Location"]))


def test_the_audit_log_names_the_withholdings_as_changed(admin_client: FlaskClient, agency: Town) -> None:
    admin_client.post(_url(agency), data=_form(admin_client, agency, save="Save", withholdings_default="Fund X; 1%"))
    page = page_text(admin_client.get(f"/treasury/{agency.code}/audit"))
    assert "withholdings" in page


def test_the_page_says_a_change_applies_to_later_payments_and_lists_the_rates_history(
    admin_client: FlaskClient, agency: Town, clock
) -> None:
    page = page_text(admin_client.get(_url(agency)))
    assert "A change applies only to payments made after it is saved." in html.unescape(page)
    assert "The rates have not been changed since the portal started keeping their history." in page
    admin_client.post(_url(agency), data=_form(admin_client, agency, save="Save", withholdings_default="Fund X; 1%"))
    clock.shift(3600)
    admin_client.post(
        _url(agency),
        data=_form(admin_client, agency, save="Save", withholdings_default="Fund X; 2%", withholdings_traffic_fine="-"),
    )
    page = html.unescape(page_text(admin_client.get(_url(agency))))
    history = page.split('data-testid="rate-history"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", history, re.S)[1:]
    cells = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows
    ]
    # Newest first; who and when once per change; each kind changed on a line of its own.
    assert cells[0][1].endswith("@example.org") and cells[0][2:] == ["Every other kind", "Fund X; 1%", "Fund X; 2%"]
    assert cells[1] == ["Traffic fine", "", "-"]
    assert cells[2][2:] == ["Every other kind", "", "Fund X; 1%"]


WITHHOLDING_ERRORS = [
    pytest.param(
        "Fund X 2%", "Line 1: write the beneficiary, a semicolon and a percentage or an amount", id="no-semicolon"
    ),
    pytest.param("Fund X; 1%\n; 2%", "Line 2: write the beneficiary", id="no-name"),
    pytest.param("Fund X;", "Line 1: write the beneficiary", id="no-value"),
    pytest.param("Fund X; 0%", "Line 1: the percentage must be more than 0 and at most 100.", id="zero-percent"),
    pytest.param("Fund X; 120%", "Line 1: the percentage must be more than 0 and at most 100.", id="over-100-percent"),
    pytest.param("Fund X; two%", "Line 1: the percentage must be more than 0 and at most 100.", id="percent-text"),
    pytest.param(
        "Fund X; 1,2345",
        "Line 1: enter the amount like 0,50 (more than zero), or a percentage like 2%.",
        id="third-decimal",
    ),
    pytest.param("Fund X; 0,505", "Line 1: enter the amount like 0,50", id="not-505-euros"),
    pytest.param("Fund X; 0", "Line 1: enter the amount like 0,50", id="zero-amount"),
    pytest.param(
        "Fund X; 60%\nFund Y; 41%", "The percentages on these lines add up to more than 100.", id="over-100-in-all"
    ),
    pytest.param("x" * 101 + "; 1%", "Line 1: the beneficiary's name has at most 100 characters.", id="long-name"),
]


@pytest.mark.parametrize(("typed", "message"), WITHHOLDING_ERRORS)
def test_withholdings_that_cannot_be_read_are_refused_with_a_sentence(
    admin_client: FlaskClient, agency: Town, typed: str, message: str
) -> None:
    response = admin_client.post(
        _url(agency), data=_form(admin_client, agency, save="Save", rate_percent="1", withholdings_traffic_fine=typed)
    )
    text = html.unescape(page_text(response))
    assert response.status_code == 400
    assert message in text
    assert 'href="#withholdings_traffic_fine"' in text  # the error summary points at the field
    saved = agency.reload()
    assert saved.withholdings == {} and saved.surcharge_policy == {}  # nothing else saved either
