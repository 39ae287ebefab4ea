"""The history's export: the filtered payments' lines of an agency as CSV (streamed) or XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    BigInteger,
    Numeric,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    join,
    literal,
    literal_column,
    select,
    tuple_,
)

from app.agencies.models import Agency
from app.catalog.models import CatalogItem
from app.debts.models import Debt, Debtor, Installment
from app.domain.money import Money, minor_unit_exponent
from app.domain.withholdings import DEFAULT_KEY, LineSplit, Withholding, withholdings_for_kind
from app.extensions import db
from app.i18n import gettext
from app.payments.models import Payment, PaymentLine
from app.treasury.history.services import Cursor, PaymentFilters, filtered_payments, line_splitter

# -- CSV export -------------------------------------------------------------------------------------


def csv_header() -> list[str]:
    """The export's column titles, in the request's language."""
    return [
        gettext("Date"),
        gettext("Receipt number"),
        gettext("Status"),
        gettext("Channel"),
        gettext("Provider"),
        gettext("Provider reference"),
        gettext("Card last four digits"),
        gettext("Debt ID"),
        gettext("RF reference"),
        gettext("Category"),
        gettext("Kind"),
        gettext("Installment"),
        gettext("Payer tax ID"),
        gettext("Payer name"),
        gettext("Principal"),
        gettext("Surcharge"),
        gettext("Amount"),
        gettext("Withheld"),
        gettext("Net to agency"),
        gettext("Currency"),
    ]


def _decimal_text(amount_minor: int, currency: str, decimal_mark: str) -> str:
    """Minor units as the export writes them: "1234.50" (or "1234,50"), the currency's decimals."""
    text = str(Money(amount_minor, currency).to_decimal())
    return text.replace(".", decimal_mark)


def export_rows(agency: Agency, filters: PaymentFilters, batch_size: int | None = None) -> Iterator[list[list[Any]]]:
    """The agency's lines of the filtered payments, newest payment first, a batch at a time.

    Each row has the columns of ``csv_header``: the date as a naive datetime in the agency's
    time zone, amounts as ints of minor units, the installment number as an int (or None), and
    text everywhere else (None where a line has no debt); each export writes these values its
    own way. "Withheld" and "Net to agency" split the line by the agency's withholdings for the
    debt's kind (they add up to it).

    Payments are read by keyset in batches, and each batch's lines in one more query, as plain
    tuples (never ORM objects): the memory used does not grow with the number of rows.
    """
    size = batch_size or current_app.config["TREASURY_EXPORT_BATCH_SIZE"]
    zone = ZoneInfo(agency.timezone)
    split = line_splitter(agency)
    base = filtered_payments(agency, filters).with_only_columns(
        Payment.id, Payment.created_at, maintain_column_froms=True
    )
    position = tuple_(Payment.created_at, Payment.id)
    cursor: Cursor | None = None
    while True:
        statement = base
        if cursor is not None:
            statement = statement.where(position < cursor.key())
        batch = db.session.execute(statement.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(size)).all()
        if not batch:
            return
        order = {payment_id: index for index, (payment_id, _created) in enumerate(batch)}
        lines = db.session.execute(
            select(
                PaymentLine.payment_id,
                Payment.created_at,
                Payment.reference,
                Payment.status,
                Payment.channel,
                Payment.provider,
                Payment.provider_reference,
                Payment.card_last4,
                _line_code.label("external_id"),
                Debt.rf_reference,
                Debt.category,
                _line_kind_column.label("kind"),
                Installment.number,
                Debtor.tax_id,
                Debtor.name,
                PaymentLine.principal_minor,
                PaymentLine.surcharge_minor,
                PaymentLine.amount_minor,
                PaymentLine.id,
            )
            .select_from(PaymentLine)
            .join(Payment, Payment.id == PaymentLine.payment_id)
            # Outer joins: a line is a debt or a catalog item.
            .outerjoin(Debt, Debt.id == PaymentLine.debt_id)
            .outerjoin(CatalogItem, CatalogItem.id == PaymentLine.item_id)
            .outerjoin(Debtor, Debtor.id == Debt.debtor_id)
            .outerjoin(Installment, Installment.id == PaymentLine.installment_id)
            .where(PaymentLine.payment_id.in_(list(order)), PaymentLine.agency_id == agency.id)
        ).all()
        lines = sorted(lines, key=lambda row: (order[row.payment_id], row.id))
        yield [_export_row(row, zone, split, agency.currency) for row in lines]
        last_id, last_created = batch[-1]
        cursor = Cursor(last_created, last_id)
        if len(batch) < size:
            return


def _export_row(row: Any, zone: ZoneInfo, split: Callable[[str | None, int], LineSplit], currency: str) -> list[Any]:
    """One line of the export, in the columns of ``csv_header``."""
    parts = split(row.kind, row.amount_minor)
    return [
        row.created_at.astimezone(zone).replace(tzinfo=None),
        row.reference,
        row.status,
        row.channel,
        row.provider,
        row.provider_reference or "",
        row.card_last4 or "",
        row.external_id or "",
        row.rf_reference or "",
        row.category or "",
        row.kind or "",
        row.number,
        row.tax_id or "",
        row.name or "",
        row.principal_minor,
        row.surcharge_minor,
        row.amount_minor,
        parts.withheld_minor,
        parts.remainder_minor,
        currency,
    ]


ExportMethod = Literal["auto", "python", "copy"]


def export_csv(
    agency: Agency, filters: PaymentFilters, *, semicolon: bool = False, method: ExportMethod = "auto"
) -> Iterator[bytes]:
    """The export as UTF-8 CSV chunks: a byte order mark and the header first, then the rows.

    With ``semicolon`` the columns are separated by ";" and amounts written "12,50", as Excel
    set to Greek reads them; otherwise "," and "12.50". Rows end in CRLF (RFC 4180).

    On PostgreSQL ("auto") the rows are formatted by the database itself and streamed with
    ``COPY ... TO STDOUT`` (``_export_csv_copy``), byte for byte what the Python writer
    (``_export_csv_python``, used on SQLite) writes; ``method`` forces one of them.
    """
    delimiter = ";" if semicolon else ","
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(csv_header())
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    if method == "auto":
        method = "copy" if db.session.get_bind().dialect.name == "postgresql" else "python"
    if method == "copy":
        yield from _export_csv_copy(agency, filters, semicolon=semicolon)
    else:
        yield from _export_csv_python(agency, filters, semicolon=semicolon)


def _export_csv_python(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Iterator[bytes]:
    """The export's rows written by Python's csv module, one chunk per batch of ``export_rows``."""
    delimiter, decimal_mark = (";", ",") if semicolon else (",", ".")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    for batch in export_rows(agency, filters):
        for row in batch:
            row[_DATE_COLUMN] = row[_DATE_COLUMN].strftime("%Y-%m-%d %H:%M:%S")
            row[_INSTALLMENT_COLUMN] = "" if row[_INSTALLMENT_COLUMN] is None else str(row[_INSTALLMENT_COLUMN])
            for index in _TEXT_COLUMNS:
                row[index] = _inert(row[index])
            for index in _AMOUNT_COLUMNS:
                row[index] = _decimal_text(row[index], agency.currency, decimal_mark)
            writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        yield text.encode("utf-8")


#: A line's identifier and kind in the export: its debt's, or the catalog item's (as ``_line_kind``).
_line_code = func.coalesce(Debt.external_id, CatalogItem.code)
_line_kind_column = func.coalesce(Debt.kind, CatalogItem.kind)

#: Columns of export_rows holding minor units, and those holding text from ERPs or providers.
_AMOUNT_COLUMNS = (14, 15, 16, 17, 18)
_TEXT_COLUMNS = (5, 7, 8, 12, 13)
_DATE_COLUMN = 0
_INSTALLMENT_COLUMN = 11
#: First characters that make a spreadsheet read a cell as a formula (see ``_inert``).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Their character codes as SQL constants (constants, so the statement needs no expanding parameters).
_FORMULA_START_CODES = [literal_column(str(ord(start))) for start in _FORMULA_STARTS]
#: Bytes the COPY path hands on at once: large enough that a chunk costs little per row.
_COPY_CHUNK_BYTES = 256 * 1024


def _export_copy_statement(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Select:
    """The export's rows as one SELECT of text columns, formatted exactly as ``_export_csv_python`` does.

    The payments are ``_filtered_payments`` itself (the history's filter and agency scope, not a
    copy of them); only the agency's lines of them are read. Every column is text or NULL: an
    empty value is NULL, since COPY writes an empty string as "" but NULL as nothing, as Python's
    csv module writes "".
    """
    decimal_mark = "," if semicolon else "."
    exponent = minor_unit_exponent(agency.currency)
    net = _withholdings_net_sql(agency, _line_kind_column, PaymentLine.amount_minor)

    def amount(minor: Any) -> Any:
        value = cast(minor, Numeric)
        if exponent:  # numeric × 0.01 has exactly two decimals, as Decimal.scaleb(-2) has
            value = value * literal_column(str(Decimal(1).scaleb(-exponent)))
        text = cast(value, Text)
        return func.replace(text, ".", decimal_mark) if decimal_mark != "." else text

    def plain(value: Any) -> Any:
        return func.nullif(value, "")

    def inert(value: Any) -> Any:
        # ascii() is the code of the first character: cheaper than taking it as text (1M rows: -0.3 s).
        return func.nullif(case((func.ascii(value).in_(_FORMULA_START_CODES), literal("'") + value), else_=value), "")

    local = func.timezone(agency.timezone, func.timezone("UTC", Payment.created_at))
    columns = [
        func.to_char(local, "YYYY-MM-DD HH24:MI:SS"),
        plain(Payment.reference),
        plain(Payment.status),
        plain(Payment.channel),
        plain(Payment.provider),
        inert(Payment.provider_reference),
        plain(Payment.card_last4),
        inert(_line_code),
        inert(Debt.rf_reference),
        plain(Debt.category),
        plain(_line_kind_column),
        cast(Installment.number, Text),
        inert(Debtor.tax_id),
        inert(Debtor.name),
        amount(PaymentLine.principal_minor),
        amount(PaymentLine.surcharge_minor),
        amount(PaymentLine.amount_minor),
        amount(PaymentLine.amount_minor - net),
        amount(net),
        plain(literal(agency.currency, Text)),
    ]
    lines = (
        join(Payment, PaymentLine, and_(PaymentLine.payment_id == Payment.id, PaymentLine.agency_id == agency.id))
        .outerjoin(Debt, Debt.id == PaymentLine.debt_id)
        .outerjoin(CatalogItem, CatalogItem.id == PaymentLine.item_id)
        .outerjoin(Debtor, Debtor.id == Debt.debtor_id)
        .outerjoin(Installment, Installment.id == PaymentLine.installment_id)
    )
    return (
        filtered_payments(agency, filters)
        .with_only_columns(*columns, maintain_column_froms=False)
        .select_from(lines)
        .order_by(Payment.created_at.desc(), Payment.id.desc(), PaymentLine.id.asc())
    )


def _withholdings_net_sql(agency: Agency, kind: Any, amount_minor: Any) -> Any:
    """SQL for what the agency keeps of a line (``split_line``'s remainder), as a bigint.

    Each share takes at most what is left, so what is left after the shares in order is
    ``greatest(greatest(amount - w1, 0) - w2, 0) ...``, where a percentage share is the line's
    amount times the rate, rounded half up. With the rate written N / D exactly (2.5 % is
    25 / 1000), that is ``(2 * amount * N + D) / (2 * D)`` in bigint integer division, which
    floors: exact, and cheaper than numeric; rates with more than six decimals use numeric.
    """
    settings = dict(agency.withholdings or {})
    amount = cast(amount_minor, BigInteger)

    def share(percent: Decimal) -> Any:
        places = max(0, -int(percent.as_tuple().exponent))
        if places > 6:  # 2 * (2^31) * N could pass the bigint range: numeric, rounded half away from 0
            return func.round(cast(amount_minor, Numeric) * literal_column(str(percent.scaleb(-2))))
        numerator, denominator = int(percent.scaleb(places)), 100 * 10**places
        doubled = 2 * amount * literal_column(str(numerator)) + literal_column(str(denominator))
        return doubled // literal_column(str(2 * denominator), BigInteger)  # integer division

    def remainder(withholdings: list[Withholding]) -> Any:
        left = amount
        for withholding in withholdings:
            if withholding.percent is not None:
                wanted = share(withholding.percent)
            else:
                wanted = literal_column(str(int(withholding.fixed_minor or 0)))
            left = func.greatest(left - wanted, 0)
        return cast(left, BigInteger)

    default = remainder(withholdings_for_kind(settings, DEFAULT_KEY))
    listed = [(kind == literal(name, Text), remainder(withholdings_for_kind(settings, name)))
              for name in sorted(settings) if name != DEFAULT_KEY]  # fmt: skip
    return case(*listed, else_=default) if listed else default


def _export_csv_copy(agency: Agency, filters: PaymentFilters, *, semicolon: bool) -> Iterator[bytes]:
    """The export's rows from PostgreSQL's ``COPY (SELECT ...) TO STDOUT``, in chunks of about 256 KB.

    COPY ends rows in LF and has no option for CRLF, so each LF outside a quoted value (a row's
    end; an LF inside a value stays) is turned into CRLF here. Quotes toggle "inside a value"
    (a doubled quote toggles twice), so counting them across chunks finds which LF is which.
    The COPY runs on the session's own connection and transaction.
    """
    connection = db.session.connection()
    dialect = connection.dialect
    compiled = _export_copy_statement(agency, filters, semicolon=semicolon).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    params = {}
    for name, value in compiled.params.items():
        processor = compiled.binds[name].type.bind_processor(dialect)
        params[name] = processor(value) if processor else value
    delimiter = ";" if semicolon else ","
    statement = (
        f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}', HEADER false, ENCODING 'UTF8')"
    )
    # The statement is costly enough for PostgreSQL to JIT-compile it, per parallel worker: seconds
    # of compiling (2.1 s of a 1M-row export) to run simple expressions once each. Off for this
    # transaction only.
    connection.exec_driver_sql("SET LOCAL jit = off")
    driver = connection.connection.driver_connection
    inside_quotes = False
    pending = bytearray()
    with driver.cursor() as cursor, cursor.copy(statement, params) as copy:
        for block in copy:
            pending += block
            if len(pending) >= _COPY_CHUNK_BYTES:
                chunk, inside_quotes = _crlf_rows(bytes(pending), inside_quotes)
                pending.clear()
                yield chunk
    if pending:
        yield _crlf_rows(bytes(pending), inside_quotes)[0]


def _crlf_rows(data: bytes, inside_quotes: bool) -> tuple[bytes, bool]:
    """``data`` with each LF outside quotes made CRLF; and whether it ends inside quotes."""
    if b'"' not in data:
        return (data if inside_quotes else data.replace(b"\n", b"\r\n")), inside_quotes
    parts = data.split(b'"')
    start = 1 if inside_quotes else 0  # parts[start::2] lie outside quotes
    parts[start::2] = [part.replace(b"\n", b"\r\n") for part in parts[start::2]]
    return b'"'.join(parts), inside_quotes != (len(parts) % 2 == 0)


def export_xlsx(agency: Agency, filters: PaymentFilters, target: IO[bytes]) -> int:
    """Write the export as an XLSX workbook to ``target``; returns the number of lines written.

    The rows are those of ``export_rows`` (the CSV's, column for column). XlsxWriter's
    constant-memory mode flushes each row to a temporary file as it is written, so memory does
    not grow with the export. Dates are Excel dates in the agency's time zone, amounts numbers
    with the currency's decimals, and text is always written as text, so a name like
    "=HYPERLINK(...)" from an ERP stays a name and never becomes a formula.
    """
    import xlsxwriter

    decimals = minor_unit_exponent(agency.currency)
    amount_pattern = "#,##0" + ("." + "0" * decimals if decimals else "") + f' "{agency.currency}"'
    workbook = xlsxwriter.Workbook(
        target,
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    )
    try:
        sheet = workbook.add_worksheet(gettext("Payments")[:31])
        bold = workbook.add_format({"bold": True})
        date_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        amount_format = workbook.add_format({"num_format": amount_pattern})
        header = csv_header()
        sheet.set_column(_DATE_COLUMN, _DATE_COLUMN, 19)
        sheet.set_column(1, len(header) - 1, 16)
        sheet.freeze_panes(1, 0)
        for column, title in enumerate(header):
            sheet.write_string(0, column, title, bold)
        row_number = 0
        for batch in export_rows(agency, filters):
            for row in batch:
                row_number += 1
                for column, value in enumerate(row):
                    if column == _DATE_COLUMN:
                        sheet.write_datetime(row_number, column, value, date_format)
                    elif column in _AMOUNT_COLUMNS:
                        # Excel keeps numbers as binary floating point; the Decimal is exact up to here.
                        sheet.write_number(
                            row_number, column, Money(value, agency.currency).to_decimal(), amount_format
                        )
                    elif column == _INSTALLMENT_COLUMN:
                        if value is not None:
                            sheet.write_number(row_number, column, value)
                    else:
                        sheet.write_string(row_number, column, value)
    finally:
        workbook.close()
    return row_number


def _inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (OWASP's CSV injection advice): '=1+1 stays text."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text
