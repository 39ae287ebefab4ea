"""The file connector: debts read from an ERP's exported files (CSV or JSON Lines), payment acks written back as CSV.

Many Greek municipal ERPs can only export. The agency either points `path` at one export file that
the ERP overwrites, or has the ERP put files into `drop_folder`; every *.csv and *.jsonl file there
is read in name order and moved to `archive_folder` (default: drop_folder/archive) once it has been
read to the end. The ERP must write a file under another name (e.g. `export.csv.part`) and rename it
into place, so that a half-written file is never read. Each file is a full export:
`supports_changed_since` is False and `changed_since` is ignored.

CSV, as Greek ERPs export it (every detail configurable per agency):

- encoding windows-1253 (or "utf-8-sig" for UTF-8 with a byte order mark), `;` between values,
  `"` around values that contain `;`, one header row;
- amounts with a decimal comma and an optional thousands dot, at most two decimals:
  `1.234,56` or `1234,56` is 123456 cents, `0,5` is 50 cents; dates as dd/mm/yyyy;
- header names mapped by `columns` (field → header; merged over DEFAULT_COLUMNS), matched
  ignoring surrounding spaces, case and accents. Required columns: external id, tax id (AFM),
  debtor name, category, kind, description, principal, due date. Optional: paid (empty: 0),
  RF reference (spaces allowed), status (empty: open), vehicle plate, email, phone, and the
  installment columns below;
- category and status labels are mapped by `category_values` / `status_values` (merged over the
  Greek defaults, case and accents ignored; the English slugs are always accepted); a kind is taken
  as written unless `kind_values` maps it;
- a settled debt spans consecutive rows with the same external id, one per installment, each
  repeating the debt's own columns and giving the installment's number, amount and due date. When
  the file has no "Πληρωμένο Δόσης" column, the debt's paid amount is applied to its installments
  oldest first, as the treasury does. For example:

      Α/Α Οφειλής;ΑΦΜ;Επωνυμία;Κατηγορία;Είδος;Περιγραφή;Ποσό;Πληρωμένο;Ημ/νία Λήξης;Δόση;Ποσό Δόσης;Ημ/νία Δόσης
      ΤΑΠ-2026-0001;094021880;Ελένη Γεωργίου;Βεβαιωμένη;property_fee;ΤΑΠ 2025;1.234,56;234,56;31/01/2026;;;
      ΡΥΘ-2026-0042;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση ΤΑΠ;450,00;150,00;31/03/2026;1;150,00;31/01/2026
      ΡΥΘ-2026-0042;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση ΤΑΠ;450,00;150,00;31/03/2026;2;150,00;28/02/2026
      ΡΥΘ-2026-0042;047325610;Νίκος Παππάς;Ρύθμιση;property_fee;Ρύθμιση ΤΑΠ;450,00;150,00;31/03/2026;3;150,00;31/03/2026

JSON Lines: one object per line, shaped like `record_to_dict`'s output; always UTF-8, as the format
requires.

A bad row never stops the stream: it becomes a RecordError whose reason names the file and the row
(row numbers are line numbers, as a spreadsheet shows them: the header is row 1) and whose raw is
the row as a dict of header → text (for an installment group, the row at fault or the group's first
row), or the raw line for JSON Lines and undecodable lines. A file whose header lacks a required
column yields one RecordError and no records.

Payment acks go to `ack_folder/acks-YYYYMMDD.csv` (UTC day of writing; UTF-8 with a byte order mark
so that Excel shows Greek, `;`, decimal comma), at most once per line id across all ack files.
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from io import BufferedReader
from pathlib import Path
from types import MappingProxyType
from typing import Any

from erp_connectors.amounts import AmountError, parse_with_separators
from erp_connectors.base import (
    CATEGORIES,
    STATUSES,
    AckRejected,
    DebtRecord,
    InstallmentRecord,
    PaymentAck,
    RecordError,
    record_from_dict,
    validate_record,
)

#: header names of a typical Greek municipal ERP export, by the field they fill
DEFAULT_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "external_id": "Α/Α Οφειλής",
        "tax_id": "ΑΦΜ",
        "debtor_name": "Επωνυμία",
        "category": "Κατηγορία",
        "kind": "Είδος",
        "description": "Περιγραφή",
        "principal": "Ποσό",
        "paid": "Πληρωμένο",
        "due_date": "Ημ/νία Λήξης",
        "rf_reference": "Κωδικός RF",
        "status": "Κατάσταση",
        "vehicle_plate": "Αρ. Κυκλοφορίας",
        "contact_email": "Email",
        "contact_phone": "Τηλέφωνο",
        "installment_number": "Δόση",
        "installment_amount": "Ποσό Δόσης",
        "installment_due_date": "Ημ/νία Δόσης",
        "installment_paid": "Πληρωμένο Δόσης",
    }
)

#: columns without which no row can become a debt
REQUIRED_COLUMNS = (
    "external_id",
    "tax_id",
    "debtor_name",
    "category",
    "kind",
    "description",
    "principal",
    "due_date",
)

#: given the installment number column, a file must also have these
_INSTALLMENT_COLUMNS = ("installment_amount", "installment_due_date")

DEFAULT_CATEGORY_VALUES: Mapping[str, str] = MappingProxyType(
    {"Βεβαιωμένη": "certified", "Ρύθμιση": "settled", "Αβεβαίωτη": "uncertified"}
)

DEFAULT_STATUS_VALUES: Mapping[str, str] = MappingProxyType(
    # Both spellings of "open" are in everyday use.
    {"Ανοιχτή": "open", "Ανοικτή": "open", "Εξοφλημένη": "paid", "Ακυρωμένη": "cancelled"}
)

FORMATS = ("csv", "jsonl")

#: the columns of an ack file, in order
ACK_COLUMNS = (
    "line_id",
    "payment_reference",
    "external_id",
    "installment_number",
    "principal",
    "surcharge",
    "currency",
    "paid_at",
)
ACK_DELIMITER = ";"
#: Columns of sales-YYYYMMDD.csv: catalog items (tickets, permits, donations) sold online.
SALE_COLUMNS = ("line_id", "payment_reference", "item_code", "quantity", "amount", "currency", "paid_at")
#: Columns of refunds-YYYYMMDD.csv, written beside the acks for the ERP to import.
REFUND_COLUMNS = ("refund_reference", "payment_reference", "amount", "currency", "reopened_debts", "refunded_at")
#: held with flock while an ack is checked and written, so two processes never write the same line
ACK_LOCK_NAME = ".acks.lock"

_DROP_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl"}
_ARCHIVE_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_ARCHIVED_NAME = re.compile(r"(?P<stem>.+)\.(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<counter>\d+))?")
#: DebtRecord fields read from a column of another name
_COLUMN_OF_FIELD = {"principal_minor": "principal", "paid_minor": "paid"}
_KIND_SLUG = re.compile(r"[a-z][a-z0-9_]*")
_EXAMPLE_DATE = date(2026, 3, 31)

#: who a stream item belongs to, (tax country, tax id), so that fetch_debtor can keep errors too
_Owner = tuple[str, str]
_Item = tuple[_Owner | None, DebtRecord | RecordError]


@dataclass(frozen=True, slots=True)
class ProcessedFile:
    """A file that iter_debts read to the end, and where it was archived (None when read in place)."""

    source: Path
    archived_to: Path | None


def parse_amount_minor(text: str, *, decimal_separator: str = ",", thousands_separator: str | None = ".") -> int:
    """Read an amount such as '1.234,56' as minor units (123456); ValueError with a sentence if it is not one."""
    try:
        return parse_with_separators(
            text, decimal_separator=decimal_separator, thousands_separator=thousands_separator, exponent=2
        )
    except AmountError:
        raise ValueError(
            f"{text!r} is not an amount like {_amount_example(decimal_separator, thousands_separator)}."
        ) from None


def format_amount_minor(
    amount_minor: int, *, decimal_separator: str = ",", thousands_separator: str | None = None
) -> str:
    """Write minor units as an amount with two decimals, e.g. 123456 → '1234,56' (or '1.234,56' with thousands)."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    whole_text = f"{whole:,}".replace(",", thousands_separator or "")
    return f"{sign}{whole_text}{decimal_separator}{cents:02d}"


def _amount_example(decimal_separator: str, thousands_separator: str | None) -> str:
    example = format_amount_minor(123_456, decimal_separator=decimal_separator, thousands_separator=thousands_separator)
    return f"{example} (at most two decimals)"


def _label_key(text: str) -> str:
    """Fold a header or a label so that case, accents and surrounding or doubled spaces do not matter."""
    decomposed = unicodedata.normalize("NFD", text)
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(without_accents.casefold().split())


class FileConnector:
    """An agency's ERP seen through its export files; acks go back as CSV files in a folder."""

    #: a file is always a full export; there is no cheaper "changed since" read
    supports_changed_since: bool = False

    def __init__(
        self,
        agency_code: str,
        *,
        path: str | os.PathLike[str] | None = None,
        drop_folder: str | os.PathLike[str] | None = None,
        archive_folder: str | os.PathLike[str] | None = None,
        ack_folder: str | os.PathLike[str] | None = None,
        # Named as in agency configuration, though it shadows the builtin here.
        format: str = "csv",
        encoding: str = "windows-1253",
        delimiter: str = ";",
        decimal_comma: bool = True,
        thousands_separator: str | None = ".",
        date_format: str = "%d/%m/%Y",
        columns: Mapping[str, str] = DEFAULT_COLUMNS,
        category_values: Mapping[str, str] = DEFAULT_CATEGORY_VALUES,
        kind_values: Mapping[str, str] | None = None,
        status_values: Mapping[str, str] = DEFAULT_STATUS_VALUES,
        default_currency: str = "EUR",
        default_country: str = "GR",
    ) -> None:
        if not isinstance(agency_code, str) or not agency_code.strip():
            raise ValueError("The file connector needs the agency's code.")
        if (path is None) == (drop_folder is None):
            raise ValueError("The file connector needs exactly one of 'path' (one export file) or 'drop_folder'.")
        if archive_folder is not None and drop_folder is None:
            raise ValueError("The option 'archive_folder' only applies together with 'drop_folder'.")
        if format not in FORMATS:
            raise ValueError(f"The format {format!r} is unknown; expected one of {', '.join(FORMATS)}.")
        if not isinstance(decimal_comma, bool):
            raise ValueError(f"The option 'decimal_comma' must be true or false, not {decimal_comma!r}.")

        self.agency_code = agency_code
        self.path = _optional_path(path, "path")
        self.drop_folder = _optional_path(drop_folder, "drop_folder")
        self.archive_folder = _optional_path(archive_folder, "archive_folder")
        if self.drop_folder is not None and self.archive_folder is None:
            self.archive_folder = self.drop_folder / "archive"
        self.ack_folder = _optional_path(ack_folder, "ack_folder")
        self.format = format
        self.encoding = _checked_encoding(encoding)
        self.delimiter = _checked_single_character(delimiter, "delimiter")
        self.decimal_separator = "," if decimal_comma else "."
        self.thousands_separator = _checked_thousands_separator(thousands_separator, self.decimal_separator)
        self.date_format = _checked_date_format(date_format)
        self.columns = _checked_columns(columns)
        self._categories = _checked_labels(category_values, DEFAULT_CATEGORY_VALUES, CATEGORIES, "category_values")
        self._statuses = _checked_labels(status_values, DEFAULT_STATUS_VALUES, STATUSES, "status_values")
        self._kinds = _checked_kind_values(kind_values)
        self.default_currency = _checked_code(default_currency, 3, "default_currency", "EUR")
        self.default_country = _checked_code(default_country, 2, "default_country", "GR")
        #: the files that the latest iter_debts call read to the end
        self.processed_files: list[ProcessedFile] = []

    def __repr__(self) -> str:
        source = f"path={str(self.path)!r}" if self.path else f"drop_folder={str(self.drop_folder)!r}"
        return f"FileConnector({self.agency_code!r}, {source})"

    # -- the connector protocol ------------------------------------------------------------------

    def iter_debts(self, changed_since: datetime | None = None) -> Iterator[DebtRecord | RecordError]:
        """Stream every debt of the export; ConnectionError at once if the file or drop folder is missing."""
        # Files are full exports: there is nothing cheaper to read for changed_since.
        del changed_since
        self.processed_files = []
        # Checked before the generator starts, so that the call itself raises, not the first next().
        if self.path is not None:
            _require_readable_file(self.path, "export file")
            return self._iter_one_file(self.path)
        assert self.drop_folder is not None
        return self._iter_drop_folder(self._files_in_drop_folder())

    def fetch_debtor(self, tax_country: str, tax_id: str) -> list[DebtRecord | RecordError]:
        """One debtor's debts (and bad rows) in the export, or in a drop folder's newest archived file."""
        source = self.path if self.path is not None else self._newest_archived_file()
        if source is None:
            return []
        _require_readable_file(source, "export file")
        wanted = (tax_country.strip().upper(), tax_id.strip())
        return [item for owner, item in self._read_file(source, self._format_of(source)) if owner == wanted]

    def acknowledge(self, ack: PaymentAck) -> None:
        """Append the payment to today's ack file, unless an ack file already has its line id."""
        if self.ack_folder is None:
            raise AckRejected("This agency's file connector has no ack folder configured.")
        try:
            self.ack_folder.mkdir(parents=True, exist_ok=True)
            # "a" creates the lock file without truncating it under another process's lock.
            with open(self.ack_folder / ACK_LOCK_NAME, "a") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                if ack.line_id in self._acknowledged_line_ids():
                    return
                today = datetime.now(UTC).strftime("%Y%m%d")
                self._append_ack(self.ack_folder / f"acks-{today}.csv", ack)
        except OSError as error:
            raise ConnectionError(
                f"The ack folder {self.ack_folder} cannot be written: {error.strerror or error}."
            ) from error

    def acknowledge_refund(self, refund: Mapping[str, Any]) -> None:
        """Append the refund to today's refunds file, unless a refunds file already has its reference."""
        reference = refund.get("refund_reference")
        amount = refund.get("amount_minor")
        if not isinstance(reference, str) or not reference or not isinstance(amount, int) or amount <= 0:
            raise AckRejected("A refund needs its refund_reference and a positive amount_minor.")
        self._append_once(
            "refunds",
            REFUND_COLUMNS,
            (
                reference,
                refund.get("payment_reference", ""),
                format_amount_minor(amount, decimal_separator=self.decimal_separator),
                refund.get("currency", ""),
                "yes" if refund.get("reopened_debts") else "no",
                refund.get("refunded_at", ""),
            ),
        )

    def acknowledge_sale(self, sale: Mapping[str, Any]) -> None:
        """Append the sale to today's sales file, unless a sales file already has its line id."""
        line_id = sale.get("line_id")
        amount = sale.get("amount_minor")
        if not isinstance(line_id, str) or not line_id or not isinstance(amount, int) or amount <= 0:
            raise AckRejected("A sale needs its line_id and a positive amount_minor.")
        self._append_once(
            "sales",
            SALE_COLUMNS,
            (
                line_id,
                sale.get("payment_reference", ""),
                sale.get("item_code", ""),
                sale.get("quantity", 1),
                format_amount_minor(amount, decimal_separator=self.decimal_separator),
                sale.get("currency", ""),
                sale.get("paid_at", ""),
            ),
        )

    def _append_once(self, name: str, columns: tuple[str, ...], row: tuple[Any, ...]) -> None:
        """Append ``row`` to today's ``<name>-YYYYMMDD.csv`` unless a file of that name holds its first value."""
        if self.ack_folder is None:
            raise AckRejected("This agency's file connector has no ack folder configured.")
        try:
            self.ack_folder.mkdir(parents=True, exist_ok=True)
            with open(self.ack_folder / ACK_LOCK_NAME, "a") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                if row[0] in self._first_column_of(f"{name}-*.csv"):
                    return
                today = datetime.now(UTC).strftime("%Y%m%d")
                target = self.ack_folder / f"{name}-{today}.csv"
                new_file = not target.exists() or target.stat().st_size == 0
                with open(target, "a", encoding="utf-8", newline="") as stream:
                    writer = csv.writer(stream, delimiter=ACK_DELIMITER, lineterminator="\r\n")
                    if new_file:
                        stream.write("\ufeff")
                        writer.writerow(columns)
                    writer.writerow(row)
        except OSError as error:
            raise ConnectionError(
                f"The ack folder {self.ack_folder} cannot be written: {error.strerror or error}."
            ) from error

    def _first_column_of(self, pattern: str) -> set[str]:
        assert self.ack_folder is not None
        values: set[str] = set()
        for path in sorted(self.ack_folder.glob(pattern)):
            with open(path, encoding="utf-8-sig", errors="replace", newline="") as stream:
                rows = csv.reader(stream, delimiter=ACK_DELIMITER)
                next(rows, None)
                values.update(row[0] for row in rows if row)
        return values

    def check(self) -> None:
        """Raise ConnectionError with a sentence if the export file or a folder cannot be reached."""
        if self.path is not None:
            _require_readable_file(self.path, "export file")
        else:
            assert self.drop_folder is not None and self.archive_folder is not None
            _require_folder(self.drop_folder, "drop folder")
            _require_writable_or_creatable(self.archive_folder, "archive folder")
        if self.ack_folder is not None:
            _require_writable_or_creatable(self.ack_folder, "ack folder")

    # -- reading ---------------------------------------------------------------------------------

    def _iter_one_file(self, source: Path) -> Iterator[DebtRecord | RecordError]:
        for _owner, item in self._read_file(source, self.format):
            yield item
        self.processed_files.append(ProcessedFile(source=source, archived_to=None))

    def _iter_drop_folder(self, sources: list[Path]) -> Iterator[DebtRecord | RecordError]:
        for source in sources:
            for _owner, item in self._read_file(source, self._format_of(source)):
                yield item
            # Reached only when the consumer asks past the file's last item: a sync that stops midway
            # leaves the file in place, to be read again next time.
            self.processed_files.append(ProcessedFile(source=source, archived_to=self._archive(source)))

    def _read_file(self, source: Path, file_format: str) -> Iterator[_Item]:
        if file_format == "jsonl":
            return self._read_jsonl(source)
        return self._read_csv(source)

    def _format_of(self, source: Path) -> str:
        return _DROP_SUFFIXES.get(source.suffix.lower(), self.format) if self.drop_folder else self.format

    def _read_csv(self, source: Path) -> Iterator[_Item]:
        with _open_export(source) as stream:
            reads_utf8 = codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")
            if stream.peek(3)[:3] == codecs.BOM_UTF8 and not reads_utf8:
                yield (
                    None,
                    RecordError(
                        f"The file {source.name} starts with a UTF-8 byte order mark but the connector reads "
                        f"{self.encoding}; set the option 'encoding' to 'utf-8-sig'. No rows were read.",
                        raw=source.name,
                    ),
                )
                return
            lines = _DecodedLines(stream, self.encoding, source.name, "Row")
            reader = csv.reader(lines, delimiter=self.delimiter)
            header = next(reader, None)
            if lines.pending_errors or header is None or not any(cell.strip() for cell in header):
                reason = "has no header row" if header is None else "has no readable header row"
                yield None, RecordError(f"The file {source.name} {reason}; no rows were read.", raw=source.name)
                return
            layout = self._layout(header, source.name)
            if isinstance(layout, RecordError):
                yield None, layout
                return
            yield from self._group_rows(self._parsed_rows(reader, lines, layout, source.name), layout)

    def _layout(self, header: list[str], file_name: str) -> _Layout | RecordError:
        names = [cell.strip() for cell in header]
        positions: dict[str, int] = {}
        for position, name in enumerate(names):
            if not name:
                # Exports often end the header with ';'; an unnamed column only matters if a row fills it.
                continue
            if _label_key(name) in positions:
                return RecordError(
                    f"The file {file_name} has the column {name!r} twice; no rows were read.", raw=";".join(names)
                )
            positions[_label_key(name)] = position
        index = {
            field_name: positions[_label_key(header_name)]
            for field_name, header_name in self.columns.items()
            if _label_key(header_name) in positions
        }
        required = list(REQUIRED_COLUMNS)
        if "installment_number" in index:
            required.extend(_INSTALLMENT_COLUMNS)
        missing = [self.columns[name] for name in required if name not in index]
        if missing:
            quoted = ", ".join(repr(name) for name in missing)
            return RecordError(
                f"The file {file_name} has no column {quoted}; its header is {'; '.join(names)}. No rows were read.",
                raw=self.delimiter.join(header),
            )
        return _Layout(names=names, index=index)

    def _parsed_rows(
        self, reader: Iterator[list[str]], lines: _DecodedLines, layout: _Layout, file_name: str
    ) -> Iterator[_Row | RecordError]:
        while True:
            lines.line_numbers.clear()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                yield from lines.take_errors()
                number = lines.line_numbers[0] if lines.line_numbers else lines.last_line_number
                yield RecordError(f"Row {number} of {file_name} cannot be read as CSV: {error}.", raw=file_name)
                continue
            yield from lines.take_errors()
            if not any(cell.strip() for cell in cells):
                continue
            yield self._parse_row(cells, lines.line_numbers[0], layout, file_name)
        yield from lines.take_errors()

    def _parse_row(self, cells: list[str], number: int, layout: _Layout, file_name: str) -> _Row:
        raw: dict[str, str] = {}
        extra: list[str] = []
        for position, cell_text in enumerate(cells):
            name = layout.names[position] if position < len(layout.names) else ""
            if name:
                raw[name] = cell_text
            elif cell_text.strip():
                extra.append(cell_text)
        for name in layout.names[len(cells) :]:
            if name:
                raw[name] = ""
        row = _Row(number=number, raw=raw, file_name=file_name)
        if extra:
            raw["(values without a column)"] = "; ".join(extra)
            row.problems.append(f"It has values without a column in the header: {'; '.join(extra)}.")
        cell = _CellReader(self, row, layout)

        row.external_id = cell.text("external_id", required=True)
        row.tax_id = cell.text("tax_id", required=True)
        head = row.head
        head["external_id"] = row.external_id
        head["tax_id"] = row.tax_id
        head["tax_country"] = self.default_country
        head["debtor_name"] = cell.text("debtor_name", required=True)
        head["category"] = cell.label("category", self._categories)
        head["kind"] = cell.kind()
        head["description"] = cell.text("description")
        head["principal_minor"] = cell.amount("principal", required=True)
        head["paid_minor"] = cell.amount("paid") if "paid" in layout.index else None
        head["currency"] = self.default_currency
        head["due_date"] = cell.date("due_date", required=True)
        head["rf_reference"] = cell.rf_reference()
        head["status"] = cell.label("status", self._statuses) or "open"
        head["vehicle_plate"] = cell.text("vehicle_plate") or None
        head["contact_email"] = cell.text("contact_email") or None
        head["contact_phone"] = cell.text("contact_phone") or None

        installment_text = cell.text("installment_number")
        if installment_text:
            row.in_installment_group = True
            row.installment_paid_given = "installment_paid" in layout.index
            row.installment = (
                cell.installment_number(installment_text),
                cell.date("installment_due_date", required=True),
                cell.amount("installment_amount", required=True),
                cell.amount("installment_paid"),
            )
        return row

    def _group_rows(self, rows: Iterator[_Row | RecordError], layout: _Layout) -> Iterator[_Item]:
        group: list[_Row] = []
        first_row_of: dict[str, int] = {}
        for row in rows:
            if isinstance(row, RecordError):
                yield None, row
                continue
            continues_group = (
                bool(group)
                and row.in_installment_group
                and group[0].in_installment_group
                and group[-1].external_id == row.external_id
            )
            if continues_group:
                group.append(row)
                continue
            if group:
                yield self._build(group, layout)
                group = []
            if not row.external_id:
                # Without its id a row cannot belong to a group or be a duplicate; only its problems matter.
                yield self._build([row], layout)
            elif row.external_id in first_row_of:
                yield (
                    row.owner(self.default_country),
                    RecordError(
                        f"Row {row.number} of {row.file_name}: duplicate external id {row.external_id!r} in the file "
                        f"(first at row {first_row_of[row.external_id]}); this row is skipped.",
                        raw=row.raw,
                    ),
                )
            else:
                first_row_of[row.external_id] = row.number
                group = [row]
        if group:
            yield self._build(group, layout)

    def _build(self, group: list[_Row], layout: _Layout) -> _Item:
        first = group[0]
        owner = first.owner(self.default_country)
        where = _rows_label(group)
        failing = [row for row in group if row.problems]
        if failing:
            if len(group) == 1:
                reason = f"{where}: {' '.join(first.problems)}"
            else:
                details = " ".join(f"Row {row.number}: {' '.join(row.problems)}" for row in failing)
                reason = f"{where} (debt {first.external_id!r}) cannot be read. {details}"
            return owner, RecordError(reason, raw=failing[0].raw)
        for row in group[1:]:
            differing = next((key for key, value in first.head.items() if row.head[key] != value), None)
            if differing is not None:
                header = layout.names[layout.index[_COLUMN_OF_FIELD.get(differing, differing)]]
                return owner, RecordError(
                    f"{where} (debt {first.external_id!r}) disagree on the column {header!r}: "
                    f"row {first.number} has {first.raw[header]!r}, row {row.number} has {row.raw[header]!r}.",
                    raw=row.raw,
                )

        head = dict(first.head)
        installments = _installments(group, head["paid_minor"])
        if head["paid_minor"] is None:
            head["paid_minor"] = sum(installment.paid_minor for installment in installments)
        record = DebtRecord(**head, installments=installments)
        problems = validate_record(record)
        if problems:
            return owner, RecordError(f"{where} (debt {record.external_id!r}): {' '.join(problems)}", raw=first.raw)
        return (record.tax_country, record.tax_id), record

    def _read_jsonl(self, source: Path) -> Iterator[_Item]:
        first_line_of: dict[str, int] = {}
        with _open_export(source) as stream:
            lines = _DecodedLines(stream, "utf-8", source.name, "Line")
            for text in lines:
                lines.line_numbers.clear()
                for undecodable in lines.take_errors():
                    yield None, undecodable
                number = lines.last_line_number
                raw_line = text.rstrip("\r\n")
                if not raw_line.strip():
                    continue
                where = f"Line {number} of {source.name}"
                try:
                    data = json.loads(raw_line)
                except json.JSONDecodeError as error:
                    reason = f"{where} is not valid JSON ({error.msg}, column {error.colno})."
                    yield None, RecordError(reason, raw=raw_line)
                    continue
                if not isinstance(data, dict):
                    yield None, RecordError(f"{where} is not a JSON object.", raw=raw_line)
                    continue
                owner = _json_owner(data)
                try:
                    record = record_from_dict(data)
                except RecordError as error:
                    yield owner, RecordError(f"{where}: {error.reason}", raw=raw_line)
                    continue
                if record.external_id in first_line_of:
                    yield (
                        owner,
                        RecordError(
                            f"{where}: duplicate external id {record.external_id!r} in the file "
                            f"(first at line {first_line_of[record.external_id]}); this line is skipped.",
                            raw=raw_line,
                        ),
                    )
                    continue
                first_line_of[record.external_id] = number
                problems = validate_record(record)
                if problems:
                    reason = f"{where} (debt {record.external_id!r}): {' '.join(problems)}"
                    yield owner, RecordError(reason, raw=raw_line)
                else:
                    yield (record.tax_country, record.tax_id), record
            for undecodable in lines.take_errors():
                yield None, undecodable

    # -- the drop folder -------------------------------------------------------------------------

    def _files_in_drop_folder(self) -> list[Path]:
        assert self.drop_folder is not None
        _require_folder(self.drop_folder, "drop folder")
        return sorted(
            (
                entry
                for entry in self.drop_folder.iterdir()
                if entry.suffix.lower() in _DROP_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
            ),
            key=lambda entry: entry.name,
        )

    def _archive(self, source: Path) -> Path | None:
        assert self.archive_folder is not None
        try:
            self.archive_folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConnectionError(
                f"The archive folder {self.archive_folder} cannot be created: {error.strerror or error}; "
                f"{source.name} stays in the drop folder and will be read again."
            ) from error
        stamp = datetime.now(UTC).strftime(_ARCHIVE_STAMP_FORMAT)
        target = self.archive_folder / f"{source.stem}.{stamp}{source.suffix}"
        counter = 2
        while target.exists():
            target = self.archive_folder / f"{source.stem}.{stamp}-{counter}{source.suffix}"
            counter += 1
        try:
            shutil.move(source, target)
        except FileNotFoundError:
            # Another sync of the same folder archived it first; its debts were read all the same.
            return None
        except OSError as error:
            raise ConnectionError(
                f"{source.name} cannot be moved to the archive folder {self.archive_folder}: "
                f"{error.strerror or error}; it will be read again."
            ) from error
        return target

    def _newest_archived_file(self) -> Path | None:
        assert self.archive_folder is not None
        if not self.archive_folder.is_dir():
            return None
        archived: list[tuple[str, int, str, Path]] = []
        for entry in self.archive_folder.iterdir():
            match = _ARCHIVED_NAME.fullmatch(entry.stem)
            if match and entry.suffix.lower() in _DROP_SUFFIXES and entry.is_file():
                archived.append((match["stamp"], int(match["counter"] or 1), entry.name, entry))
        return max(archived)[-1] if archived else None

    # -- acks ------------------------------------------------------------------------------------

    def _acknowledged_line_ids(self) -> set[str]:
        assert self.ack_folder is not None
        line_ids: set[str] = set()
        for ack_file in sorted(self.ack_folder.glob("acks-*.csv")):
            # "replace": a treasurer may have saved the file from Excel in another encoding; ids are ASCII.
            with open(ack_file, encoding="utf-8-sig", errors="replace", newline="") as stream:
                rows = csv.reader(stream, delimiter=ACK_DELIMITER)
                next(rows, None)
                line_ids.update(row[0] for row in rows if row)
        return line_ids

    def _append_ack(self, target: Path, ack: PaymentAck) -> None:
        size = target.stat().st_size if target.exists() else 0
        ends_mid_line = False
        if size:
            with open(target, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                ends_mid_line = existing.read(1) != b"\n"
        with open(target, "a", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, delimiter=ACK_DELIMITER, lineterminator="\r\n")
            if not size:
                stream.write("\ufeff")
                writer.writerow(ACK_COLUMNS)
            elif ends_mid_line:
                # A crash mid-write left half a line; start ours on a line of its own.
                stream.write("\r\n")
            writer.writerow(
                (
                    ack.line_id,
                    ack.payment_reference,
                    ack.external_id,
                    "" if ack.installment_number is None else str(ack.installment_number),
                    format_amount_minor(ack.principal_minor, decimal_separator=self.decimal_separator),
                    format_amount_minor(ack.surcharge_minor, decimal_separator=self.decimal_separator),
                    ack.currency,
                    ack.paid_at.isoformat(timespec="seconds"),
                )
            )
            stream.flush()
            # On disk before we return: the caller then marks the ack delivered.
            os.fsync(stream.fileno())


#: the option names file_connector_factory accepts, i.e. FileConnector's keyword arguments
OPTION_NAMES = (
    "path",
    "drop_folder",
    "archive_folder",
    "ack_folder",
    "format",
    "encoding",
    "delimiter",
    "decimal_comma",
    "thousands_separator",
    "date_format",
    "columns",
    "category_values",
    "kind_values",
    "status_values",
    "default_currency",
    "default_country",
)


def file_connector_factory(agency_code: str, options: Mapping[str, Any]) -> FileConnector:
    """Build a file connector from an agency's JSON options; ValueError with a sentence for an unknown option."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"The file connector has no option {names}; its options are {', '.join(OPTION_NAMES)}.")
    return FileConnector(agency_code, **options)


# -- reading helpers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field sits in a file's rows."""

    #: header names as written, without surrounding spaces
    names: list[str]
    #: field → column position, for the configured columns the header has
    index: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Labels:
    """An agency's labels for a field, folded for lookup, and the slugs they stand for."""

    slugs_by_key: Mapping[str, str]
    #: as configured, for the "expected one of" sentence
    labels: tuple[str, ...]


@dataclass(slots=True)
class _Row:
    """One CSV row, read as far as its values allow."""

    number: int
    raw: dict[str, str]
    file_name: str
    external_id: str = ""
    tax_id: str = ""
    #: the debt's own fields, which every row of an installment group repeats
    head: dict[str, Any] = field(default_factory=dict)
    in_installment_group: bool = False
    #: (number, due date, amount, paid)
    installment: tuple[int, date, int, int] | None = None
    installment_paid_given: bool = False
    #: sentences, empty when the row could be read
    problems: list[str] = field(default_factory=list)

    def owner(self, country: str) -> _Owner | None:
        """The debtor the row names, if it names one."""
        return (country, self.tax_id) if self.tax_id else None


class _CellReader:
    """Read one row's cells into typed values, noting a sentence per problem instead of raising.

    After a problem a placeholder value comes back; a row with problems never becomes a record.
    """

    def __init__(self, connector: FileConnector, row: _Row, layout: _Layout) -> None:
        self._connector = connector
        self._row = row
        self._layout = layout

    def _header(self, field_name: str) -> str:
        return self._layout.names[self._layout.index[field_name]]

    def text(self, field_name: str, *, required: bool = False) -> str:
        """The cell's text without surrounding spaces; '' if the column is absent."""
        if field_name not in self._layout.index:
            return ""
        value = self._row.raw[self._header(field_name)].strip()
        if required and not value:
            self._row.problems.append(f"The column {self._header(field_name)!r} is empty.")
        return value

    def amount(self, field_name: str, *, required: bool = False) -> int:
        """The cell as minor units; 0 when an optional cell is empty."""
        value = self.text(field_name, required=required)
        if not value:
            return 0
        try:
            return parse_amount_minor(
                value,
                decimal_separator=self._connector.decimal_separator,
                thousands_separator=self._connector.thousands_separator,
            )
        except ValueError:
            example = _amount_example(self._connector.decimal_separator, self._connector.thousands_separator)
            self._row.problems.append(
                f"The column {self._header(field_name)!r} has {value!r}, which is not an amount like {example}."
            )
            return 0

    def date(self, field_name: str, *, required: bool = False) -> date:
        """The cell as a date in the configured format."""
        value = self.text(field_name, required=required)
        if not value:
            return _EXAMPLE_DATE
        try:
            return datetime.strptime(value, self._connector.date_format).date()
        except ValueError:
            example = _EXAMPLE_DATE.strftime(self._connector.date_format)
            self._row.problems.append(
                f"The column {self._header(field_name)!r} has {value!r}, which is not a date like {example}."
            )
            return _EXAMPLE_DATE

    def label(self, field_name: str, labels: _Labels) -> str:
        """The cell's label mapped to its slug; '' if the optional cell is empty."""
        value = self.text(field_name, required=field_name in REQUIRED_COLUMNS)
        if not value:
            return ""
        slug = labels.slugs_by_key.get(_label_key(value))
        if slug is None:
            self._row.problems.append(
                f"The {field_name} {value!r} in column {self._header(field_name)!r} is unknown; "
                f"expected one of {', '.join(labels.labels)}."
            )
            return ""
        return slug

    def kind(self) -> str:
        """The kind slug, mapped through kind_values when the agency configured them."""
        value = self.text("kind", required=True)
        return self._connector._kinds.get(_label_key(value), value)

    def rf_reference(self) -> str | None:
        """The RF reference in compact form; exports often print it in groups of four."""
        value = self.text("rf_reference")
        return "".join(value.split()).upper() or None

    def installment_number(self, value: str) -> int:
        """The installment's position; a whole number."""
        if value.isascii() and value.isdigit():
            return int(value)
        self._row.problems.append(
            f"The column {self._header('installment_number')!r} has {value!r}, which is not a whole number."
        )
        return 0


def _installments(group: list[_Row], paid_minor: int | None) -> tuple[InstallmentRecord, ...]:
    scheduled = [row.installment for row in group if row.installment is not None]
    if not scheduled:
        return ()
    if group[0].installment_paid_given or paid_minor is None:
        return tuple(InstallmentRecord(number, due, amount, paid) for number, due, amount, paid in scheduled)
    # The file gives only the debt's paid amount: payments settle the oldest installment first.
    remaining = max(paid_minor, 0)
    applied = [0] * len(scheduled)
    for position in sorted(range(len(scheduled)), key=lambda index: (scheduled[index][1], scheduled[index][0])):
        applied[position] = min(remaining, max(scheduled[position][2], 0))
        remaining -= applied[position]
    return tuple(
        InstallmentRecord(number, due, amount, paid)
        for (number, due, amount, _given), paid in zip(scheduled, applied, strict=True)
    )


def _rows_label(group: list[_Row]) -> str:
    first, last = group[0], group[-1]
    if len(group) == 1:
        return f"Row {first.number} of {first.file_name}"
    return f"Rows {first.number} to {last.number} of {first.file_name}"


def _json_owner(data: Mapping[str, Any]) -> _Owner | None:
    country, tax_id = data.get("tax_country"), data.get("tax_id")
    if isinstance(country, str) and isinstance(tax_id, str):
        return country.strip().upper(), tax_id.strip()
    return None


class _DecodedLines:
    """A byte stream decoded line by line, so that an undecodable line costs one row and not the file."""

    def __init__(self, stream: BufferedReader, encoding: str, file_name: str, noun: str) -> None:
        self._stream = stream
        self._encoding = encoding
        self._file_name = file_name
        self._noun = noun
        self._pending_errors: list[RecordError] = []
        #: the line numbers handed out since the caller last cleared this list
        self.line_numbers: list[int] = []
        self.last_line_number = 0

    @property
    def pending_errors(self) -> list[RecordError]:
        """Undecodable lines met and not yet taken."""
        return self._pending_errors

    def take_errors(self) -> list[RecordError]:
        """Hand over the undecodable lines met so far."""
        errors, self._pending_errors = self._pending_errors, []
        return errors

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self._stream, start=1):
            self.last_line_number = number
            try:
                text = line.decode(self._encoding)
            except UnicodeDecodeError:
                self._pending_errors.append(
                    RecordError(
                        f"{self._noun} {number} of {self._file_name} is not valid {self._encoding} text; "
                        "it is skipped.",
                        raw=line.decode(self._encoding, errors="replace").rstrip("\r\n"),
                    )
                )
                continue
            if number == 1:
                # Whatever the configured codec, a byte order mark is never part of the first header name.
                text = text.removeprefix("\ufeff")
            self.line_numbers.append(number)
            yield text


def _open_export(source: Path) -> BufferedReader:
    try:
        # The caller closes it with `with`.
        return open(source, "rb")
    except FileNotFoundError:
        raise ConnectionError(f"The export file {source} does not exist.") from None
    except OSError as error:
        raise ConnectionError(f"The export file {source} cannot be read: {error.strerror or error}.") from None


# -- checks of the configuration and of the file system ------------------------------------------


def _optional_path(value: str | os.PathLike[str] | None, option: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"The option {option!r} must be a path, not {value!r}.")
    return Path(value)


def _checked_encoding(encoding: str) -> str:
    try:
        codec = codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            f"The encoding {encoding!r} is unknown; Greek ERPs use 'windows-1253' or 'utf-8-sig'."
        ) from None
    # Lines are split on the newline byte before decoding, which only works when text is ASCII-compatible.
    try:
        ascii_compatible = b'\r\n;"'.decode(codec.name) == '\r\n;"'
    except UnicodeDecodeError:
        ascii_compatible = False
    if not ascii_compatible:
        raise ValueError(f"The encoding {encoding!r} is not ASCII-compatible, so its lines cannot be read one by one.")
    return encoding


def _checked_single_character(value: object, option: str) -> str:
    if not isinstance(value, str) or len(value) != 1 or value in '\r\n"':
        raise ValueError(f"The option {option!r} must be a single character such as ';', not {value!r}.")
    return value


def _checked_thousands_separator(value: object, decimal_separator: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 1 or value.isdigit():
        raise ValueError(f"The option 'thousands_separator' must be one character such as '.', not {value!r}.")
    if value == decimal_separator:
        raise ValueError(
            f"The thousands separator {value!r} is also the decimal separator; amounts would be ambiguous."
        )
    return value


def _checked_date_format(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"The option 'date_format' must be a strptime format such as '%d/%m/%Y', not {value!r}.")
    try:
        round_trip = datetime.strptime(_EXAMPLE_DATE.strftime(value), value).date()
    except ValueError:
        round_trip = None
    if round_trip != _EXAMPLE_DATE:
        raise ValueError(f"The date format {value!r} cannot read back a full date; use one such as '%d/%m/%Y'.")
    return value


def _checked_columns(columns: object) -> dict[str, str]:
    if not isinstance(columns, Mapping):
        raise ValueError("The option 'columns' must map fields to header names.")
    unknown = sorted(set(columns) - set(DEFAULT_COLUMNS))
    if unknown:
        raise ValueError(
            f"The option 'columns' names unknown fields {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(DEFAULT_COLUMNS)}."
        )
    merged = {**DEFAULT_COLUMNS, **columns}
    for field_name, header in merged.items():
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"The header name for {field_name!r} must be non-empty text, not {header!r}.")
    folded = [_label_key(header) for header in merged.values()]
    if len(set(folded)) != len(folded):
        raise ValueError("The option 'columns' gives the same header name to two fields.")
    return merged


def _checked_labels(values: object, defaults: Mapping[str, str], slugs: tuple[str, ...], option: str) -> _Labels:
    if not isinstance(values, Mapping):
        raise ValueError(f"The option {option!r} must map labels to one of {', '.join(slugs)}.")
    merged = {**defaults, **values}
    for label, slug in merged.items():
        if not isinstance(label, str) or slug not in slugs:
            raise ValueError(f"The option {option!r} maps {label!r} to {slug!r}; expected one of {', '.join(slugs)}.")
    slugs_by_key = {slug: slug for slug in slugs}
    slugs_by_key.update({_label_key(label): slug for label, slug in merged.items()})
    return _Labels(slugs_by_key=slugs_by_key, labels=(*merged, *slugs))


def _checked_kind_values(values: object) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError("The option 'kind_values' must map labels to kind slugs such as 'property_fee'.")
    for label, slug in values.items():
        if not isinstance(slug, str) or not _KIND_SLUG.fullmatch(slug):
            raise ValueError(
                f"The option 'kind_values' maps {label!r} to {slug!r}, which is not a slug such as 'water_bill'."
            )
    return {_label_key(label): slug for label, slug in values.items()}


def _checked_code(value: object, length: int, option: str, example: str) -> str:
    if not isinstance(value, str) or len(value) != length or not value.isascii() or not value.isupper():
        raise ValueError(f"The option {option!r} must be a code such as {example!r}, not {value!r}.")
    return value


def _require_readable_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ConnectionError(f"The {what} {path} does not exist.")
    if not path.is_file():
        raise ConnectionError(f"The {what} {path} is not a file.")
    if not os.access(path, os.R_OK):
        raise ConnectionError(f"The {what} {path} cannot be read: permission denied.")


def _require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ConnectionError(f"The {what} {path} does not exist or is not a folder.")
    # Files are moved out of it once read, so it must be writable too.
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConnectionError(f"The {what} {path} cannot be read and written: permission denied.")


def _require_writable_or_creatable(path: Path, what: str) -> None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConnectionError(f"The {what} {path} cannot be created: {existing} is not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConnectionError(f"The {what} {path} cannot be written: permission denied.")
