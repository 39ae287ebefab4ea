"""Payments acknowledged to the demo ERP: kept per agency and seed, in memory or in a shared JSON file."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from erp_connectors.base import DebtRecord, PaymentAck, payment_ack_from_dict, payment_ack_to_dict


@dataclass(frozen=True)
class AckEntry:
    """A payment line the demo ERP accepted, and when it did (the debt's new updated_at)."""

    ack: PaymentAck
    recorded_at: datetime


#: the version of the state file's layout
_STATE_FORMAT = 1


class AckLedger:
    """Every payment line the demo ERPs of this process accepted, by "agency/seed"; kept in a JSON file if given.

    Readers see a snapshot that is never changed in place; writers rebuild the book under a lock (and,
    with a file, under an exclusive lock on a side file, re-reading it first) and replace the file
    atomically, so a web app and a worker sharing the file never lose each other's acks.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._books: dict[str, dict[str, AckEntry]] = {}
        self._file_signature: tuple[int, int, int] | None = None

    def snapshot(self, key: str) -> Mapping[str, AckEntry]:
        """The book of one agency and seed as it is now: line id → entry, in the order they were recorded."""
        with self._lock:
            self._reload()
            return self._books.get(key, {})

    @contextmanager
    def updating(self, key: str) -> Iterator[dict[str, AckEntry]]:
        """A copy of the book to change; saved (atomically) when the block ends without an exception."""
        with self._lock, _exclusive_file_lock(self.path):
            self._reload()
            current = self._books.get(key, {})
            book = dict(current)
            yield book
            if book != current:
                self._books[key] = book
                self._save()

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._books, self._file_signature = {}, None
            return
        signature = (status.st_ino, status.st_mtime_ns, status.st_size)
        if signature == self._file_signature:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            books = {
                key: {
                    item["ack"]["line_id"]: AckEntry(
                        payment_ack_from_dict(item["ack"]), datetime.fromisoformat(item["recorded_at"])
                    )
                    for item in items
                }
                for key, items in data["acknowledgements"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"The demo ERP state file {self.path} cannot be read ({error}).") from None
        self._books, self._file_signature = books, signature

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": _STATE_FORMAT,
            "acknowledgements": {
                key: [
                    {"recorded_at": entry.recorded_at.isoformat(), "ack": payment_ack_to_dict(entry.ack)}
                    for entry in book.values()
                ]
                for key, book in self._books.items()
                if book
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed over it: readers see the old file or the new one, never half.
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, ensure_ascii=False, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        status = os.stat(self.path)
        self._file_signature = (status.st_ino, status.st_mtime_ns, status.st_size)


@contextmanager
def _exclusive_file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on path's side file, so writers in other processes take turns."""
    if path is None or fcntl is None:
        # Without fcntl (Windows), processes sharing a state file may race; the demo ERP is a sandbox.
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


_LEDGERS: dict[Path | None, AckLedger] = {}
_LEDGERS_LOCK = threading.Lock()


def ack_ledger(path: Path | None) -> AckLedger:
    with _LEDGERS_LOCK:
        return _LEDGERS.setdefault(path, AckLedger(path))


def with_acks(record: DebtRecord, entries: Iterable[AckEntry]) -> DebtRecord:
    """The record as the ERP reports it once these payment lines are booked."""
    for entry in entries:
        ack = entry.ack
        installments = record.installments
        if installments:
            remaining = ack.principal_minor
            booked = []
            for installment in installments:
                # Without an installment number, a payment settles the earliest installments first.
                if remaining and ack.installment_number in (None, installment.number):
                    share = min(remaining, installment.amount_minor - installment.paid_minor)
                    installment = replace(installment, paid_minor=installment.paid_minor + share)
                    remaining -= share
                booked.append(installment)
            installments = tuple(booked)
            paid = sum(installment.paid_minor for installment in installments)
        else:
            paid = min(record.principal_minor, record.paid_minor + ack.principal_minor)
        updated_at = entry.recorded_at if record.updated_at is None else max(record.updated_at, entry.recorded_at)
        record = replace(
            record,
            paid_minor=paid,
            installments=installments,
            status="paid" if paid == record.principal_minor else record.status,
            updated_at=updated_at,
        )
    return record


def ack_problem(record: DebtRecord, ack: PaymentAck) -> str | None:
    """Why the ERP refuses this payment line for this debt, as a sentence, or None if it accepts it."""
    if ack.currency != record.currency:
        return f"The debt {record.external_id} is in {record.currency}, not {ack.currency}."
    if record.status == "cancelled":
        return f"The debt {record.external_id} was cancelled; it takes no payments."
    if ack.installment_number is None:
        owed, what = record.outstanding_minor, f"the debt {record.external_id}"
    else:
        numbers = [installment.number for installment in record.installments]
        if ack.installment_number not in numbers:
            count = f"{len(numbers)} installments" if numbers else "no installments"
            return f"The debt {record.external_id} has {count}; installment {ack.installment_number} does not exist."
        installment = record.installments[numbers.index(ack.installment_number)]
        owed = installment.amount_minor - installment.paid_minor
        what = f"installment {installment.number} of the debt {record.external_id}"
    if ack.principal_minor > owed:
        return f"The payment of {ack.principal_minor} minor units exceeds the {owed} minor units still owed on {what}."
    return None
