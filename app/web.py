"""Helpers every web feature shares; this module imports no feature, only the standard library.

``safe_next``: where a ``?next=`` or form field may send the browser after a log-in, a language
switch or a second factor, so that the portal never redirects to another site.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: Browsers read a backslash as a slash and drop tabs and line breaks in a URL, so "/\evil.example"
#: and "/\t/evil.example" lead to another site: such targets are refused outright.
_BROWSER_REWRITTEN = re.compile(r"[\\\x00-\x1f\x7f]")


def safe_next(target: str | None, fallback: str) -> str:
    """A redirect target on this site only (no open redirects): a path, else ``fallback``."""
    if not target or _BROWSER_REWRITTEN.search(target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target
