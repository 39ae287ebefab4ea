"""A connector for ERPs that publish debts as JSON over HTTP: pagination, field mapping and retries set by options.

    connector = rest_connector_factory("eastcoast", {
        "base_url": "https://erp.example.gov/api",
        "auth": {"type": "bearer", "token_env": "EASTCOAST_ERP_TOKEN"},
        "pagination": {"style": "cursor", "items": "data", "cursor_field": "meta.next", "cursor_param": "cursor"},
        "mapping": {"external_id": "id", "tax_id": "debtor.afm", "principal_minor": "amount"},
        "amount_format": "decimal_string",
        "category_values": {"ΒΕΒΑΙΩΜΕΝΗ": "certified"},
        "defaults": {"tax_country": "GR", "currency": "EUR"},
    })

With no options but base_url it speaks the format of the demo ERP server (erp_connectors.demo.server):
items shaped like record_to_dict, next_link pagination, amounts in minor units, ISO dates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, fields
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Self
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from erp_connectors.base import (
    AckRejected,
    DebtRecord,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    payment_ack_to_dict,
    validate_record,
)

DEFAULT_PATHS: Mapping[str, str] = {
    "debts": "/debts",
    "debtor": "/debtors/{country}/{tax_id}/debts",
    "ack": "/payments",
    "refund": "/refunds",
    "sale": "/sales",
    "health": "/health",
}

#: each style's settings and their defaults
PAGINATION_STYLES: Mapping[str, Mapping[str, Any]] = {
    "next_link": {"items": "items", "next": "next", "size_param": "page_size"},
    "cursor": {"items": "items", "cursor_field": "next_cursor", "cursor_param": "cursor", "size_param": "page_size"},
    "page": {"items": "items", "page_param": "page", "size_param": "page_size", "first_page": 1},
}

AMOUNT_FORMATS = ("minor_units", "decimal_string")

#: DebtRecord's fields, each read by default from the JSON field of the same name
RECORD_FIELDS = tuple(field.name for field in fields(DebtRecord))
INSTALLMENT_FIELDS = tuple(field.name for field in fields(InstallmentRecord))
_REQUIRED_FIELDS = frozenset(
    field.name for field in fields(DebtRecord) if field.default is MISSING and field.default_factory is MISSING
)
_REQUIRED_INSTALLMENT_FIELDS = frozenset({"number", "due_date", "amount_minor"})
_AMOUNT_FIELDS = frozenset({"principal_minor", "paid_minor", "amount_minor"})
_VALUE_MAPPED_FIELDS = ("category", "kind", "status")
#: text fields taken as they come when they are text
_PLAIN_TEXT_FIELDS = frozenset(
    {"external_id", "tax_country", "debtor_name", "description", "currency", "contact_email", "contact_phone",
     "vehicle_plate"}
)  # fmt: skip

#: 5xx answers worth another try; anything else will not change by asking again
RETRY_STATUSES = (500, 502, 503, 504)

_DECIMAL_PATTERN = re.compile(r"-?\d+(\.\d+)?")
_MISSING: Any = object()


class _Unmappable(ValueError):
    """An item field that cannot be turned into a DebtRecord field; becomes a RecordError."""


class _BearerAuth(AuthBase):
    """Sends a bearer token; its repr never shows it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class _BasicAuth(HTTPBasicAuth):
    """HTTP basic authentication whose repr never shows the password."""

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class RestConnector:
    """An agency's ERP reached over HTTP(S) and JSON; transient failures raise ConnectionError with a sentence.

    One requests.Session with a retrying adapter; like any requests.Session, use one connector per thread.
    """

    #: the changed_since bound is sent to the ERP as a query parameter
    supports_changed_since = True

    def __init__(
        self,
        agency_code: str,
        *,
        base_url: str,
        auth: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] = (3.05, 10),
        retries: int = 3,
        backoff_factor: float = 0.5,
        paths: Mapping[str, str] | None = None,
        pagination: Mapping[str, Any] | None = None,
        mapping: Mapping[str, str | None] | None = None,
        page_size: int = 500,
        changed_since_param: str = "changed_since",
        amount_format: str = "minor_units",
        minor_unit_digits: int = 2,
        date_format: str | None = None,
        datetime_format: str | None = None,
        category_values: Mapping[str, str] | None = None,
        kind_values: Mapping[str, str] | None = None,
        status_values: Mapping[str, str] | None = None,
        installment_mapping: Mapping[str, str | None] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.agency_code = agency_code
        self.base_url = _checked_base_url(base_url)
        self.timeout = _checked_timeout(timeout)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"The REST connector's retries must be a whole number >= 0, not {retries!r}.")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"The REST connector's page_size must be a whole number >= 1, not {page_size!r}.")
        if amount_format not in AMOUNT_FORMATS:
            raise ValueError(
                f"The amount format {amount_format!r} is unknown; expected one of {', '.join(AMOUNT_FORMATS)}."
            )
        if type(minor_unit_digits) is not int or not 0 <= minor_unit_digits <= 4:
            raise ValueError(f"The REST connector's minor_unit_digits must be 0 to 4, not {minor_unit_digits!r}.")
        self.retries = retries
        self.backoff_factor = float(backoff_factor)
        self.page_size = page_size
        self.changed_since_param = changed_since_param
        self.amount_format = amount_format
        self.minor_unit_digits = minor_unit_digits
        self.date_format = date_format
        self.datetime_format = datetime_format
        self.paths = _checked_paths(paths)
        self.pagination = _checked_pagination(pagination)
        self._fields = _checked_mapping(mapping, RECORD_FIELDS, "mapping")
        #: (field, JSON path, path split at dots) per DebtRecord field, split once rather than per item
        self._field_plan = tuple(
            (name, path or name, tuple(path.split(".")) if path else ()) for name, path in self._fields.items()
        )
        self._installment_fields = _checked_mapping(installment_mapping, INSTALLMENT_FIELDS, "installment_mapping")
        self._value_maps = {
            "category": dict(category_values or {}),
            "kind": dict(kind_values or {}),
            "status": dict(status_values or {}),
        }
        self._defaults = dict(defaults or {})
        unknown_defaults = sorted(set(self._defaults) - set(RECORD_FIELDS))
        if unknown_defaults:
            raise ValueError(f"The REST connector's defaults name unknown fields: {', '.join(unknown_defaults)}.")
        session_auth = _auth_from_options(auth)
        self._auth_kind = None if auth is None else str(auth["type"])
        self._session = self._new_session(session_auth)

    def __repr__(self) -> str:
        return f"RestConnector({self.agency_code!r}, base_url={self.base_url!r}, auth={self._auth_kind!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # -- the protocol -------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ConnectionError with a sentence unless the ERP's health endpoint answers 2xx."""
        self._raise_for_status(self._request("GET", self.paths["health"]), "GET", self.paths["health"])

    def iter_debts(self, changed_since: datetime | None = None) -> Iterator[DebtRecord | RecordError]:
        """Stream every debt, page by page (changed at or after changed_since, if given); bad items as RecordError."""
        if changed_since is not None and (not isinstance(changed_since, datetime) or changed_since.utcoffset() is None):
            raise ValueError(f"changed_since must be a timezone-aware datetime, not {changed_since!r}.")
        params = {} if changed_since is None else {self.changed_since_param: changed_since.isoformat()}
        return self._records(self.paths["debts"], params)

    def fetch_debtor(self, tax_country: str, tax_id: str) -> list[DebtRecord | RecordError]:
        """This debtor's debts as the ERP reports them now; an empty list if the ERP does not know the debtor."""
        path = self.paths["debtor"].format(country=quote(tax_country, safe=""), tax_id=quote(tax_id, safe=""))
        return list(self._records(path, {}, not_found_is_empty=True))

    def acknowledge(self, ack: PaymentAck) -> None:
        """POST the paid line; 2xx or 409 (already recorded) is done, 400/404/422 raise AckRejected."""
        path = self.paths["ack"]
        response = self._request("POST", path, json=payment_ack_to_dict(ack))
        if response.status_code == 409 or 200 <= response.status_code < 300:
            return
        if response.status_code in (400, 404, 422):
            message = _message_of(response) or f"The ERP refused the payment line (HTTP {response.status_code})."
            raise AckRejected(message)
        self._raise_for_status(response, "POST", path)

    def acknowledge_refund(self, refund: Mapping[str, Any]) -> None:
        """POST a refund (its reference, the payment's, the amount); 2xx or 409 is done, 400/404/422 AckRejected."""
        self._post_once("refund", refund)

    def acknowledge_sale(self, sale: Mapping[str, Any]) -> None:
        """POST a sale of a catalog item (line id, item code, quantity, amount); 2xx or 409 is done."""
        self._post_once("sale", sale)

    def _post_once(self, what: str, body: Mapping[str, Any]) -> None:
        """POST ``body`` to the path of ``what``: 2xx (booked) or 409 (booked before) is done."""
        path = self.paths[what]
        response = self._request("POST", path, json=dict(body))
        if response.status_code == 409 or 200 <= response.status_code < 300:
            return
        if response.status_code in (400, 404, 422):
            message = _message_of(response) or f"The ERP refused the {what} (HTTP {response.status_code})."
            raise AckRejected(message)
        self._raise_for_status(response, "POST", path)

    # -- mapping ------------------------------------------------------------------------------------

    def map_item(self, item: object) -> DebtRecord | RecordError:
        """Turn one JSON item into a valid DebtRecord, or a RecordError carrying the item."""
        if not isinstance(item, Mapping):
            return RecordError(f"The ERP sent an item that is not a JSON object: {item!r}.", raw=repr(item))
        try:
            record = self._record_from(item)
        except _Unmappable as error:
            return RecordError(str(error), raw=item)
        problems = validate_record(record)
        if problems:
            return RecordError(" ".join(problems), raw=item)
        return record

    def _record_from(self, item: Mapping[str, Any]) -> DebtRecord:
        values: dict[str, Any] = {}
        for name, path, parts in self._field_plan:
            value = _lookup_parts(item, parts) if parts else _MISSING
            if value is _MISSING or value is None:
                if name in self._defaults:
                    value = self._defaults[name]
                elif name in _REQUIRED_FIELDS:
                    raise _Unmappable(f"The field {path!r} ({_FIELD_LABELS[name]}) is missing.")
                else:
                    continue
            values[name] = self._converted(name, path, value)
        return DebtRecord(**values)

    def _converted(self, name: str, path: str, value: Any) -> Any:
        if type(value) is str and name in _PLAIN_TEXT_FIELDS:
            return value
        if name in _AMOUNT_FIELDS:
            return self._amount(path, value)
        if name == "due_date":
            return self._date(path, value)
        if name == "updated_at":
            return self._datetime(path, value)
        if name == "installments":
            return self._installments(path, value)
        if name == "external_id" and isinstance(value, int) and not isinstance(value, bool):
            # Numeric database ids are common and lose nothing as text.
            return str(value)
        if not isinstance(value, str):
            raise _Unmappable(f"The field {path!r} ({_FIELD_LABELS[name]}) should be text, not {value!r}.")
        if name in _VALUE_MAPPED_FIELDS:
            return self._value_maps[name].get(value, value)
        if name == "tax_id":
            return value.strip()
        if name == "rf_reference":
            # ERPs often print RF references in groups of four; the compact form is what we store.
            return value.replace(" ", "").upper()
        return value

    def _installments(self, path: str, value: Any) -> tuple[InstallmentRecord, ...]:
        if not isinstance(value, list):
            raise _Unmappable(f"The field {path!r} (the installments) should be a list, not {value!r}.")
        installments = []
        for position, raw in enumerate(value, start=1):
            if not isinstance(raw, Mapping):
                raise _Unmappable(f"Installment {position} in {path!r} is not a JSON object: {raw!r}.")
            values: dict[str, Any] = {}
            for name in INSTALLMENT_FIELDS:
                field_path = self._installment_fields[name]
                field_value = _lookup_parts(raw, field_path.split(".")) if field_path else _MISSING
                label = f"{path}[{position}].{field_path or name}"
                if field_value is _MISSING or field_value is None:
                    if name in _REQUIRED_INSTALLMENT_FIELDS:
                        raise _Unmappable(f"The field {label!r} ({_FIELD_LABELS[name]}) is missing.")
                    continue
                if name in _AMOUNT_FIELDS:
                    values[name] = self._amount(label, field_value)
                elif name == "due_date":
                    values[name] = self._date(label, field_value)
                elif isinstance(field_value, int) and not isinstance(field_value, bool):
                    values[name] = field_value
                else:
                    raise _Unmappable(f"The field {label!r} (the installment number) should be a whole number.")
            installments.append(InstallmentRecord(**values))
        return tuple(installments)

    def _amount(self, path: str, value: Any) -> int:
        if isinstance(value, float):
            raise _Unmappable(
                f"The amount {value!r} in {path!r} is a JSON number with a fraction; amounts must come as whole "
                'minor units or as text like "1234.56", because binary fractions lose cents.'
            )
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _Unmappable(f"The amount in {path!r} should be a number, not {value!r}.")
        if self.amount_format == "minor_units":
            if isinstance(value, int):
                return value
            text = value.strip()
            if not re.fullmatch(r"-?\d+", text):
                raise _Unmappable(f"The amount {value!r} in {path!r} is not a whole number of minor units.")
            return int(text)
        text = str(value).strip()
        if not _DECIMAL_PATTERN.fullmatch(text):
            raise _Unmappable(f'The amount {value!r} in {path!r} is not a decimal number like "1234.56".')
        try:
            scaled = Decimal(text).scaleb(self.minor_unit_digits)
        except InvalidOperation:
            raise _Unmappable(f"The amount {value!r} in {path!r} is not a decimal number.") from None
        if scaled != scaled.to_integral_value():
            raise _Unmappable(
                f"The amount {value!r} in {path!r} has more than {self.minor_unit_digits} decimal places."
            )
        return int(scaled)

    def _date(self, path: str, value: Any) -> date:
        if isinstance(value, str):
            try:
                if self.date_format is None:
                    return date.fromisoformat(value.strip())
                return datetime.strptime(value.strip(), self.date_format).date()
            except ValueError:
                pass
        example = "2026-03-31" if self.date_format is None else date(2026, 3, 31).strftime(self.date_format)
        raise _Unmappable(f"The field {path!r} should be a date like {example}, not {value!r}.")

    def _datetime(self, path: str, value: Any) -> datetime:
        parsed: datetime | None = None
        if isinstance(value, str):
            try:
                if self.datetime_format is None:
                    parsed = datetime.fromisoformat(value.strip())
                else:
                    parsed = datetime.strptime(value.strip(), self.datetime_format)
            except ValueError:
                parsed = None
        if parsed is None or parsed.utcoffset() is None:
            raise _Unmappable(
                f"The field {path!r} should be a date and time with its UTC offset, like 2026-03-31T09:15:00+02:00, "
                f"not {value!r}."
            )
        return parsed

    # -- HTTP ---------------------------------------------------------------------------------------

    def _new_session(self, auth: AuthBase | None) -> requests.Session:
        retry = Retry(
            total=self.retries,
            backoff_factor=self.backoff_factor,
            status_forcelist=RETRY_STATUSES,
            # POST is retried too: the only POST is the payment ack, which the ERP de-duplicates by line id, so
            # a second try after a lost answer records nothing twice (it gets 409, which counts as done).
            allowed_methods=frozenset({"GET", "HEAD", "POST"}),
            # The last 5xx answer comes back to us so that the sentence can name its status.
            raise_on_status=False,
            # A Retry-After of an hour would stall a sync; our own backoff keeps the wait bounded.
            respect_retry_after_header=False,
        )
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = auth
        session.headers["Accept"] = "application/json"
        return session

    def _url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def _request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        try:
            return self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ConnectionError(self._failure_sentence(error, method, url)) from error

    def _failure_sentence(self, error: requests.RequestException, method: str, url: str) -> str:
        where = f"The ERP at {_host_of(self.base_url)}"
        what = f"{method} {urlsplit(url).path or '/'}"
        attempts = f"{self.retries + 1} attempt{'s' if self.retries else ''}"
        cause: BaseException = error
        if error.args and isinstance(error.args[0], MaxRetryError) and error.args[0].reason is not None:
            cause = error.args[0].reason
        if isinstance(cause, (requests.ReadTimeout, ReadTimeoutError)):
            return f"{where} did not answer {what} within {self.timeout[1]:g} seconds ({attempts})."
        if isinstance(cause, NewConnectionError):
            return f"{where} could not be reached for {what} ({attempts}): {_os_reason(cause)}."
        if isinstance(cause, (requests.ConnectTimeout, ConnectTimeoutError)):
            return f"{where} did not accept a connection within {self.timeout[0]:g} seconds ({attempts})."
        if isinstance(cause, ProtocolError):
            return f"{where} dropped the connection during {what} ({attempts})."
        return f"{where} could not be reached for {what} ({attempts}): {type(cause).__name__}."

    def _raise_for_status(self, response: requests.Response, method: str, path: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        where = f"The ERP at {_host_of(self.base_url)}"
        if status in (401, 403):
            raise ConnectionError(
                f"The ERP refused our credentials (HTTP {status}) for {method} {path}; "
                "check the connector's token or password."
            )
        if status in RETRY_STATUSES:
            raise ConnectionError(
                f"{where} kept failing (HTTP {status}) for {method} {path} after {self.retries + 1} attempts."
            )
        message = _message_of(response)
        detail = f": {message}" if message else "."
        raise ConnectionError(f"{where} answered HTTP {status} to {method} {path}{detail}")

    def _json(self, response: requests.Response, method: str, path: str) -> Any:
        self._raise_for_status(response, method, path)
        try:
            return response.json()
        except ValueError:
            raise ConnectionError(
                f"The ERP's answer to {method} {path} is not JSON (it starts with {response.text[:40]!r})."
            ) from None

    # -- pages --------------------------------------------------------------------------------------

    def _records(
        self, path: str, params: Mapping[str, str], *, not_found_is_empty: bool = False
    ) -> Iterator[DebtRecord | RecordError]:
        for items in self._pages(path, params, not_found_is_empty):
            for item in items:
                yield self.map_item(item)

    def _pages(self, path: str, params: Mapping[str, str], not_found_is_empty: bool) -> Iterator[list[Any]]:
        settings = self.pagination
        style = settings["style"]
        size = {settings["size_param"]: str(self.page_size)} if settings["size_param"] else {}
        fetch = self._page_fetcher(path, not_found_is_empty)
        if style == "next_link":
            url: str | None = self._url(path)
            query: dict[str, str] | None = {**params, **size}
            seen: set[str] = set()
            while url is not None:
                body, answered_url = fetch(url, query)
                if body is None:
                    return
                yield self._items_of(body, path)
                link = _lookup(body, settings["next"])
                if link in (_MISSING, None, ""):
                    return
                if not isinstance(link, str):
                    raise ConnectionError(f"The ERP's next page link in {path} is not a URL: {link!r}.")
                # The link carries its own query (page size, changed_since); relative links follow the answer's URL.
                url, query = urljoin(answered_url, link), None
                _refuse_loop(url, seen, path)
        elif style == "cursor":
            cursor: str | None = None
            seen = set()
            while True:
                query = {**params, **size}
                if cursor is not None:
                    query[settings["cursor_param"]] = cursor
                body, _ = fetch(self._url(path), query)
                if body is None:
                    return
                yield self._items_of(body, path)
                next_cursor = _lookup(body, settings["cursor_field"])
                if next_cursor in (_MISSING, None, ""):
                    return
                cursor = str(next_cursor)
                _refuse_loop(cursor, seen, path)
        else:
            page = settings["first_page"]
            previous: list[Any] | None = None
            while True:
                body, _ = fetch(self._url(path), {**params, **size, settings["page_param"]: str(page)})
                if body is None:
                    return
                items = self._items_of(body, path)
                if not items:
                    return
                if items == previous:
                    # An ERP that ignores the page parameter would otherwise be read forever.
                    raise ConnectionError(f"The ERP sent the same page twice for {path}; is page_param right?")
                yield items
                previous, page = items, page + 1

    def _page_fetcher(
        self, path: str, not_found_is_empty: bool
    ) -> Callable[[str, Mapping[str, str] | None], tuple[Any, str]]:
        def fetch(url: str, query: Mapping[str, str] | None) -> tuple[Any, str]:
            response = self._request("GET", url, params=query)
            if not_found_is_empty and response.status_code == 404:
                return None, url
            return self._json(response, "GET", path), response.url

        return fetch

    def _items_of(self, body: Any, path: str) -> list[Any]:
        items_path = self.pagination["items"]
        items = _lookup(body, items_path) if items_path else body
        if not isinstance(items, list):
            where = f"at {items_path!r}" if items_path else "as the whole answer"
            raise ConnectionError(f"The ERP's answer to GET {path} has no list of debts {where}.")
        return items


def rest_connector_factory(agency_code: str, options: Mapping[str, Any]) -> RestConnector:
    """Build a RestConnector from JSON-able options: the keyword arguments of RestConnector, by name."""
    unknown = sorted(set(options) - _FACTORY_OPTIONS)
    if unknown:
        raise ValueError(
            f"The REST connector has no option {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(sorted(_FACTORY_OPTIONS))}."
        )
    if "base_url" not in options:
        raise ValueError("The REST connector needs the option 'base_url', e.g. \"https://erp.example.gov/api\".")
    arguments = dict(options)
    if isinstance(arguments.get("timeout"), list):
        arguments["timeout"] = tuple(arguments["timeout"])
    return RestConnector(agency_code, **arguments)


_FACTORY_OPTIONS = frozenset(
    {
        "base_url", "auth", "timeout", "retries", "backoff_factor", "paths", "pagination", "mapping", "page_size",
        "changed_since_param", "amount_format", "minor_unit_digits", "date_format", "datetime_format",
        "category_values", "kind_values", "status_values", "installment_mapping", "defaults",
    }
)  # fmt: skip

_FIELD_LABELS = {
    "external_id": "the debt's id",
    "tax_id": "the tax id",
    "tax_country": "the tax id's country",
    "debtor_name": "the debtor's name",
    "category": "the category",
    "kind": "the kind of debt",
    "description": "the description",
    "principal_minor": "the principal",
    "paid_minor": "the amount paid",
    "currency": "the currency",
    "due_date": "the due date",
    "rf_reference": "the RF reference",
    "installments": "the installments",
    "status": "the status",
    "contact_email": "the e-mail address",
    "contact_phone": "the phone number",
    "vehicle_plate": "the vehicle plate",
    "updated_at": "the time of the last change",
    "number": "the installment number",
    "amount_minor": "the installment amount",
}


def _lookup(data: Any, path: str) -> Any:
    """The value at a dotted path ("debtor.afm", "lines.0.amount"), or _MISSING."""
    return _lookup_parts(data, path.split("."))


def _lookup_parts(data: Any, parts: Sequence[str]) -> Any:
    value = data
    for part in parts:
        if type(value) is dict or isinstance(value, Mapping):
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _refuse_loop(token: str, seen: set[str], path: str) -> None:
    if token in seen:
        raise ConnectionError(f"The ERP sent the same next page twice for {path}; stopping instead of looping.")
    seen.add(token)


def _message_of(response: requests.Response) -> str:
    """The human message in an error answer: a JSON message/detail/error field, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error", "title"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def _host_of(url: str) -> str:
    # hostname:port only, so that credentials written into a URL never reach a message.
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _os_reason(error: NewConnectionError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "the host name is unknown"
    return "no route to it"


def _checked_base_url(base_url: object) -> str:
    if (
        not isinstance(base_url, str)
        or urlsplit(base_url).scheme not in ("http", "https")
        or not urlsplit(base_url).hostname
    ):
        raise ValueError(f"The REST connector's base_url must be an http(s) URL, not {base_url!r}.")
    # A trailing slash makes urljoin keep the base's own path (https://erp/api/ + debts → https://erp/api/debts).
    return base_url if base_url.endswith("/") else base_url + "/"


def _checked_timeout(timeout: object) -> tuple[float, float]:
    values = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(values) != 2 or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 for value in values
    ):
        raise ValueError(
            f"The REST connector's timeout must be seconds > 0, or [connect seconds, read seconds], not {timeout!r}."
        )
    return float(values[0]), float(values[1])


def _checked_paths(paths: Mapping[str, str] | None) -> dict[str, str]:
    merged = {**DEFAULT_PATHS, **(paths or {})}
    unknown = sorted(set(merged) - set(DEFAULT_PATHS))
    if unknown:
        raise ValueError(
            f"The REST connector has no path named {', '.join(unknown)}; it knows {', '.join(DEFAULT_PATHS)}."
        )
    if "{country}" not in merged["debtor"] or "{tax_id}" not in merged["debtor"]:
        raise ValueError("The REST connector's debtor path must contain {country} and {tax_id}.")
    return merged


def _checked_pagination(pagination: Mapping[str, Any] | None) -> dict[str, Any]:
    settings = dict(pagination or {})
    style = settings.pop("style", "next_link")
    if style not in PAGINATION_STYLES:
        raise ValueError(f"The pagination style {style!r} is unknown; expected one of {', '.join(PAGINATION_STYLES)}.")
    unknown = sorted(set(settings) - set(PAGINATION_STYLES[style]))
    if unknown:
        raise ValueError(
            f"The {style} pagination has no setting {', '.join(unknown)}; "
            f"its settings are {', '.join(PAGINATION_STYLES[style])}."
        )
    return {"style": style, **PAGINATION_STYLES[style], **settings}


def _checked_mapping(mapping: Mapping[str, str | None] | None, names: tuple[str, ...], option: str) -> dict[str, str]:
    unknown = sorted(set(mapping or {}) - set(names))
    if unknown:
        raise ValueError(f"The REST connector's {option} names unknown fields: {', '.join(unknown)}.")
    merged: dict[str, str] = {name: name for name in names}
    for name, path in (mapping or {}).items():
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ValueError(f"The {option} of {name!r} must be a JSON field name or dotted path, not {path!r}.")
        merged[name] = path or ""
    return merged


def _auth_from_options(auth: Mapping[str, Any] | None) -> AuthBase | None:
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        # ValueError like every other configuration mistake, so that callers catch one type.
        raise ValueError(
            "The REST connector's auth must be an object such as "
            '{"type": "bearer", "token_env": "EASTCOAST_ERP_TOKEN"}.'
        )
    kind = auth.get("type")
    if kind == "bearer":
        return _BearerAuth(_secret(auth, "token"))
    if kind == "basic":
        username = auth.get("username")
        if not isinstance(username, str) or not username:
            raise ValueError("Basic authentication needs a 'username'.")
        return _BasicAuth(username, _secret(auth, "password"))
    raise ValueError(f"The authentication type {kind!r} is unknown; expected 'bearer' or 'basic'.")


def _secret(auth: Mapping[str, Any], name: str) -> str:
    """A secret given inline, or (better: it stays out of the database) in the environment variable <name>_env."""
    variable = auth.get(f"{name}_env")
    if variable is not None:
        value = os.environ.get(str(variable))
        if not value:
            raise ValueError(f"The environment variable {variable} (the ERP's {name}) is not set.")
        return value
    value = auth.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"The {auth.get('type')} authentication needs a '{name}' (or '{name}_env').")
    return value
