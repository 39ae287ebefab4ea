"""The portal as gunicorn serves it in bench/load.py, plus a bare route to compare each page with.

``/bench/ok`` answers "ok" from the same app, through the same request hooks (session, locale,
rate limiter, unit of work), so the ratio page / bare route shows what the page itself costs.
"""

from __future__ import annotations

from app import create_app

app = create_app()
app.add_url_rule("/bench/ok", "bench_ok", lambda: "ok")
