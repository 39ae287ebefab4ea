"""Pages under load: gunicorn with the production settings on PostgreSQL, each page against a bare
route of the same app, driven from loopback.

    .venv/bin/python bench/load.py [--workers 2] [--concurrency 20] [--seconds 4] [--rounds 3]

It creates a database on the PostgreSQL at 127.0.0.1:5432 (``--database-url`` for another
server; dropped afterwards), migrates and seeds it: a Greek citizen owing 30 debts over three
agencies (44 rows on the dashboard: seven debts are arrangements of three installments), a quote of three of
them for the checkout review, and an agency with ``--payments`` paid payments (COPY-loaded as
in bench/treasury.py) and a staff member who passes the second factor. Then it starts
``gunicorn --workers N --worker-class sync --timeout 30 --max-requests 10000
--max-requests-jitter 1000 bench/load_wsgi.py:app`` with ``CIVICPAY_ENV=production`` (rate
limits shared in Redis when it answers at 127.0.0.1:6379, set high enough not to refuse the
load; everything else as in production: secure cookies, CSRF, logging at INFO), and drives it
with ``--concurrency`` connections from two client processes of threads (plain ``http.client``,
a new connection per request as sync workers close them).

Each page is measured in ``--rounds`` rounds of ``--seconds``, alternating with the bare
route ``/bench/ok`` of the same app, so both see the same machine. It prints, per page:
requests/s, the bare route's requests/s, their ratio, p50 and p99 and p99/p50. Targets (issue
16): dashboard ratio >= 0.20 (goal 0.30) with p99 <= 4 x p50; the guest look-up POST (a code
no debt has, the refused path: what a guessing client sends) >= 40/s at 20 concurrent.

The pages: the dashboard (GET /debts), the guest look-up page (GET /pay) and look-up (POST
/pay), the checkout review (GET /checkout/<token>), the treasury's payment history (first page),
settlement report (a week) and sync runs (GET /treasury/<agency>/payments, /settlement,
/operations/sync). The client shares the server's two cores: at the bare
route's rates it takes a part of them (the bare route's figure is the client's ceiling as much
as the server's), and whatever else runs on the machine slows both sides of a ratio alike only
on average: read the ratios of a quiet machine, and repeat.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from dashboard import EMAIL, PASSWORD, seed_citizen  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

STAFF_EMAIL = "bench-staff@example.org"
STAFF_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
HIGH_LIMIT = "1000000 per minute"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_ITEM = re.compile(r'name="item" value="([^"]+)"')


# -- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _instance_config(directory: Path) -> None:
    """instance/config.py: every rate limit high (the load comes from one address), nothing else."""
    limits = [
        "LOGIN_RATE_LIMIT",
        "GUEST_LOOKUP_RATE_LIMIT",
        "GUEST_LOOKUP_CODE_RATE_LIMIT",
        "GUEST_PAY_RATE_LIMIT",
        "GUEST_RECEIPT_RATE_LIMIT",
        "TREASURY_2FA_RATE_LIMIT",
    ]
    lines = [f"{name} = {HIGH_LIMIT!r}" for name in limits]
    lines.append(f"RATELIMIT_KEY_PREFIX = {'bench-load-' + uuid.uuid4().hex[:8]!r}")
    (directory / "config.py").write_text("\n".join(lines) + "\n")


def start_gunicorn(url: str, secret: str, workers: int, instance: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn on a free loopback port with the production settings; returns it and the port."""
    port = _free_port()
    environment = dict(os.environ)
    environment.update(
        CIVICPAY_ENV="production",
        SECRET_KEY=secret,
        DATABASE_URL=url,
        CIVICPAY_INSTANCE_PATH=str(instance),
        MAIL_BACKEND="console",
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0" if _redis_answers() else "memory://",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(BENCH)]),
    )
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
        "--timeout", "30", "--max-requests", "10000", "--max-requests-jitter", "1000",
        "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "load_wsgi:app",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn stopped: see {log}")
        try:
            status, _headers, _body = request(port, "GET", "/bench/ok")
            if status == 200:
                return server, port
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within 60 s: see {log}")


# -- HTTP ---------------------------------------------------------------------------------------


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (sync workers close each one); status, headers, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class Browser:
    """Just enough of a browser for the set-up: a cookie jar of one session cookie, forms."""

    def __init__(self, port: int, language: str = "el") -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.language = language

    def headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {"Cookie": cookie, "Accept-Language": self.language} if cookie else {"Accept-Language": self.language}

    def send(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        headers = self.headers()
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, data = request(self.port, method, path, body, headers)
        cookie = response_headers.get("set-cookie")
        if cookie:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return status, response_headers, data.decode()

    def post_form(self, page: str, target: str, fields: dict[str, str]) -> tuple[int, dict[str, str], str]:
        status, _headers, html = self.send("GET", page)
        match = _CSRF.search(html)
        assert status == 200 and match, f"no form on {page} ({status})"
        return self.send("POST", target, {**fields, "csrf_token": match.group(1)})


# -- seeding ------------------------------------------------------------------------------------


def seed(url: str, secret: str, payments: int) -> dict[str, str]:
    """Everything the pages show; returns the guest code and factor."""
    from treasury import _load

    from app import create_app, migrate
    from app.accounts.models import User
    from app.accounts.services import hash_password
    from app.agencies.models import Agency
    from app.db import utcnow
    from app.encryption import encrypt_secret
    from app.extensions import db
    from app.treasury.models import StaffMembership

    migrate.upgrade(url)
    _load(url, {"bench-town": payments, "bench-other": max(1, payments // 10)})
    app = create_app({"ENV_NAME": "testing", "DATABASE_URL": url, "SECRET_KEY": secret, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        guest = seed_citizen(30)
        staff = User(email=STAFF_EMAIL, password_hash=hash_password(PASSWORD), full_name="Bench Staff",
                     language="el", email_verified_at=utcnow(), totp_confirmed_at=utcnow(),
                     totp_secret=encrypt_secret(STAFF_TOTP_SECRET, key=secret))  # fmt: skip
        db.session.add(staff)
        db.session.flush()
        town = db.session.query(Agency).filter_by(code="bench-town").one()
        db.session.add(StaffMembership(user_id=staff.id, agency_id=town.id, role="view"))
        db.session.commit()
    db.engine_of(app).dispose()
    return guest


def sessions(port: int) -> dict[str, dict[str, str]]:
    """Log in the citizen and the staff member (with their second factor) over HTTP; quote 3 debts."""
    import pyotp

    citizen = Browser(port)
    status, headers, _ = citizen.post_form("/login", "/login", {"email": EMAIL, "password": PASSWORD})
    assert status == 303, f"citizen log-in: {status}"
    status, _, dashboard = citizen.send("GET", "/debts")
    items = _ITEM.findall(dashboard)
    assert status == 200 and len(items) >= 30, f"dashboard: {status}, {len(items)} items"
    # Three debts of three agencies in one quote, posted as a browser posts several checkboxes.
    token = _CSRF.search(dashboard).group(1)
    body = urlencode([("csrf_token", token)] + [("item", item) for item in items[:3]]).encode()
    status, headers, _data = request(
        port, "POST", "/checkout", body, {**citizen.headers(), "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 303 and "/checkout/" in headers["location"], f"checkout: {status}"
    location = headers["location"]
    review = "/" + location.split("/", 3)[3] if "://" in location else location

    staff = Browser(port)
    status, _, _ = staff.post_form("/login", "/login", {"email": STAFF_EMAIL, "password": PASSWORD})
    assert status == 303, f"staff log-in: {status}"
    status, _, _ = staff.post_form("/treasury/2fa", "/treasury/2fa", {"code": pyotp.TOTP(STAFF_TOTP_SECRET).now()})
    assert status == 303, f"second factor: {status}"
    history = "/treasury/bench-town/payments"
    # A week of the loaded payments (they start on 1 January 2024, one every 37 s).
    settlement = "/treasury/bench-town/settlement?from=2024-01-02&to=2024-01-08"
    operations = "/treasury/bench-town/operations/sync"
    for page in (history, settlement, operations):
        status, _, _ = staff.send("GET", page)
        assert status == 200, f"{page}: {status}"

    guest = Browser(port)
    status, _, page = guest.send("GET", "/pay")
    assert status == 200
    return {
        "citizen": citizen.headers(),
        "staff": staff.headers(),
        "guest": guest.headers(),
        "guest_token": _CSRF.search(page).group(1),
        "review": review,
        "history": history,
        "settlement": settlement,
        "operations": operations,
    }


# -- the load -----------------------------------------------------------------------------------


def _client_process(port, target, seconds, threads, results) -> None:
    """``threads`` threads sending ``target`` for ``seconds``; puts (latencies, unexpected statuses)."""
    method, path, headers, form, expected = target
    latencies: list[float] = []
    unexpected: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(number: int) -> None:
        mine, wrong, counter = [], [], 0
        while time.monotonic() < deadline:
            body = None
            if form is not None:
                # A code no debt has, new each time: the refused path, as a guessing client sends.
                counter += 1
                fields = {**form, "code": f"RF00BENCH{os.getpid()}X{number}X{counter}"}
                body = urlencode(fields).encode()
            started = time.perf_counter()
            status, _headers, _body = request(port, method, path, body, headers)
            mine.append(time.perf_counter() - started)
            if status != expected:
                wrong.append(status)
        with lock:
            latencies.extend(mine)
            unexpected.extend(wrong)

    workers = [threading.Thread(target=run, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, unexpected))


def drive(port: int, target, seconds: float, concurrency: int, processes: int = 2) -> tuple[list[float], list[int]]:
    """``concurrency`` connections at once for ``seconds``, from ``processes`` client processes."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    shares = [concurrency // processes + (1 if index < concurrency % processes else 0) for index in range(processes)]
    children = [
        context.Process(target=_client_process, args=(port, target, seconds, share, results))
        for share in shares
        if share
    ]
    for child in children:
        child.start()
    latencies: list[float] = []
    unexpected: list[int] = []
    for _ in children:
        got, wrong = results.get()
        latencies.extend(got)
        unexpected.extend(wrong)
    for child in children:
        child.join()
    return latencies, unexpected


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(port: int, name: str, target, bare, arguments) -> dict[str, float]:
    """Alternate rounds of the page and of the bare route; the figures of both."""
    page_latencies: list[float] = []
    page_seconds = bare_requests = bare_seconds = 0.0
    bare_latencies: list[float] = []
    unexpected: list[int] = []
    for _ in range(arguments.rounds):
        for which in ("page", "bare"):
            started = time.monotonic()
            latencies, wrong = drive(
                port, target if which == "page" else bare, arguments.seconds, arguments.concurrency
            )
            elapsed = time.monotonic() - started
            if which == "page":
                page_latencies += latencies
                page_seconds += elapsed
                unexpected += wrong
            else:
                bare_latencies += latencies
                bare_requests += len(latencies)
                bare_seconds += elapsed
    if unexpected:
        print(f"  {name}: {len(unexpected)} unexpected statuses, e.g. {sorted(set(unexpected))[:5]}")
    p50, p99 = percentile(page_latencies, 0.50), percentile(page_latencies, 0.99)
    figures = {
        "rps": len(page_latencies) / page_seconds,
        "bare_rps": bare_requests / bare_seconds,
        "p50": p50 * 1000,
        "p99": p99 * 1000,
        "bare_p50": statistics.median(bare_latencies) * 1000,
    }
    figures["ratio"] = figures["rps"] / figures["bare_rps"]
    figures["tail"] = p99 / p50
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payments", type=int, default=20_000, help="payments of the treasury's agency")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", nargs="*", help="measure only these pages (names as printed)")
    arguments = parser.parse_args()

    name = f"bench_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(arguments.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    secret = secrets.token_urlsafe(48)
    server = None
    try:
        with tempfile.TemporaryDirectory() as directory:
            instance = Path(directory)
            _instance_config(instance)
            print(f"seeding {name} ...", flush=True)
            guest = seed(url, secret, arguments.payments)
            server, port = start_gunicorn(url, secret, arguments.workers, instance, instance / "gunicorn.log")
            state = sessions(port)
            bare = ("GET", "/bench/ok", {}, None, 200)
            guest_form = {"factor": guest["factor"], "csrf_token": state["guest_token"]}
            form_headers = {**state["guest"], "Content-Type": "application/x-www-form-urlencoded"}
            pages = {
                "dashboard": ("GET", "/debts", state["citizen"], None, 200),
                "guest look-up GET": ("GET", "/pay", state["guest"], None, 200),
                "guest look-up POST": ("POST", "/pay", form_headers, guest_form, 400),
                "checkout review": ("GET", state["review"], state["citizen"], None, 200),
                "treasury history": ("GET", state["history"], state["staff"], None, 200),
                "treasury settlement": ("GET", state["settlement"], state["staff"], None, 200),
                "treasury operations": ("GET", state["operations"], state["staff"], None, 200),
            }
            print(
                f"gunicorn: {arguments.workers} sync workers; {arguments.concurrency} concurrent connections; "
                f"{arguments.rounds} rounds of {arguments.seconds:g} s per page, alternating with /bench/ok\n"
            )
            print(
                f"{'page':<20} {'req/s':>8} {'bare req/s':>11} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99/p50':>8}"
            )
            for page, target in pages.items():
                if arguments.only and page not in arguments.only:
                    continue
                figures = measure(port, page, target, bare, arguments)
                print(
                    f"{page:<20} {figures['rps']:8.1f} {figures['bare_rps']:11.1f} {figures['ratio']:6.3f} "
                    f"{figures['p50']:7.1f} {figures['p99']:7.1f} {figures['tail']:8.1f}",
                    flush=True,
                )
            print(
                "\ntargets: dashboard ratio >= 0.20 (goal 0.30), its p99/p50 <= 4; "
                f"guest look-up POST >= 40 req/s at {arguments.concurrency} concurrent"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
