"""A guest's hold on their quotes and receipts: unguessable tokens kept in this browser's session.

Both ways of paying without an account (a debt by its payment code, an agency's items from its
shop) remember here the quotes they made and the receipts they showed, and answer every page
reached by such a token privately.
"""

from __future__ import annotations

from flask import Response, session

#: Session keys: the guest's quotes and receipts are theirs by an unguessable token held here.
QUOTES_KEY = "guest_quotes"
RECEIPTS_KEY = "guest_receipts"
#: How many of each a session remembers (the cookie stays small).
REMEMBERED = 10


def remember(key: str, value: str) -> None:
    """Keep ``value`` among the newest tokens this session holds under ``key``."""
    remembered = [item for item in session.get(key, []) if item != value]
    session[key] = [*remembered, value][-REMEMBERED:]


def private_page(response: Response) -> Response:
    """Pages reached by a token: never cached, never sent on in a Referer header, never indexed."""
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response
