"""Helpers of the history's tests: reading an export back."""

from __future__ import annotations

import csv
import io


def rows(body: bytes, delimiter: str = ",") -> list[list[str]]:
    """The rows of a CSV export, after checking it starts with a UTF-8 byte order mark."""
    assert body.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte order mark: Excel would garble Greek"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=delimiter))
