"""Browser tests: the portal served on a real port, driven by Chromium through Playwright.

Chromium is Debian's package (``apt-get install chromium``), found at /usr/bin/chromium or at
$CHROMIUM_PATH; Playwright cannot download its own browsers here. Without Chromium these tests
skip with a banner in the summary, except under CI (the CI variable set), where they fail.

Each test gets a live server on the test worker's database (real commits, emptied afterwards)
and a fresh browser context. Screenshots go to test-results/screenshots/<test>/: one per step a
test names with ``snap`` and one of every page left open when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.e2e.steps import Snap

E2E_DIR = Path(__file__).parent
CHROMIUM_PATH = Path(os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
IN_CI = bool(os.environ.get("CI"))
NO_CHROMIUM = "Chromium is not installed (apt-get install chromium): browser tests SKIPPED"

#: How long an action or assertion waits for the page, in milliseconds.
TIMEOUT_MS = 10_000


def chromium_installed() -> bool:
    """Whether the Chromium binary the tests launch is there."""
    return CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)


# -- collection: mark, and skip loudly without Chromium -----------------------------------------


def _is_e2e(item: pytest.Item) -> bool:
    return Path(item.path).is_relative_to(E2E_DIR)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as e2e; skip them all (outside CI) when Chromium is missing."""
    e2e_items = [item for item in items if _is_e2e(item)]
    for item in e2e_items:
        item.add_marker(pytest.mark.e2e)
    if e2e_items and not chromium_installed() and not IN_CI:
        skip = pytest.mark.skip(reason=NO_CHROMIUM)
        for item in e2e_items:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A banner nobody can miss when the browser tests did not run."""
    # Counted from the reports rather than at collection, so that it also works when
    # pytest-xdist workers did the collecting and skipping.
    reports = terminalreporter.stats.get("skipped", [])
    skipped = sum(NO_CHROMIUM in str(report.longrepr) for report in reports)
    if skipped:
        write = terminalreporter.write_line
        terminalreporter.write_sep("!", f"{skipped} BROWSER TESTS SKIPPED", red=True, bold=True)
        write(f"{NO_CHROMIUM} (looked for {CHROMIUM_PATH}; set CHROMIUM_PATH to override).", red=True)
        write("Under CI (the CI variable set) a missing Chromium fails the run instead.", red=True)


# -- the portal on a real port --------------------------------------------------------------------


class _RecordErrors:
    """WSGI middleware keeping every exception the portal raised, so the test reports it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.errors: list[str] = []
        #: What each request thread was last asked ("POST /webhooks/stripe/eastcoast"), by thread id.
        self.requests: dict[int, str] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        self.requests[threading.get_ident()] = request
        try:
            return self.app(environ, start_response)
        except Exception:
            self.errors.append(f"{request}\n{traceback.format_exc()}")
            raise


class _RequestThreads:
    """The requests the server is still answering: werkzeug answers each in a thread of its own,
    which outlives ``shutdown()``; the live server waits for them before the test ends."""

    def __init__(self, server: Any) -> None:
        #: Each accepted connection, with the id of the thread answering it (None until it starts).
        self.running: dict[Any, int | None] = {}
        self._changed = threading.Condition()
        start, answer = server.process_request, server.process_request_thread

        def process_request(request: Any, client_address: Any) -> None:
            with self._changed:  # counted in the serving thread, before its thread can start
                self.running[request] = None
            start(request, client_address)

        def process_request_thread(request: Any, client_address: Any) -> None:
            with self._changed:
                self.running[request] = threading.get_ident()
            try:
                answer(request, client_address)
            finally:
                with self._changed:
                    del self.running[request]
                    self._changed.notify_all()

        server.process_request = process_request
        server.process_request_thread = process_request_thread  # the target of ThreadingMixIn's threads

    def wait_until_done(self, timeout: float) -> bool:
        """Wait until every accepted request has been answered; False if time ran out first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self.running, timeout=timeout)


@pytest.fixture()
def live_server(app: Flask, committed_db: None) -> Iterator[str]:
    """The portal served by werkzeug on a free loopback port; yields its base URL.

    When the test ends the server stops taking requests, then waits for those it is still
    answering (a late webhook, say): they would otherwise write to the database while the next
    test empties and fills it.
    """
    recorder = _RecordErrors(app)
    server = make_server("127.0.0.1", 0, recorder, threaded=True)
    request_threads = _RequestThreads(server)
    thread = threading.Thread(target=server.serve_forever, name="civicpay-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        done = request_threads.wait_until_done(timeout=30)
        server.server_close()
        thread.join(timeout=10)
    if not done:
        running = ", ".join(
            recorder.requests.get(ident or 0, "a request not read yet") for ident in request_threads.running.values()
        )
        pytest.fail(f"30 s after the test ended the portal was still answering: {running}", pytrace=False)
    if recorder.errors:
        report = "\n".join(recorder.errors)
        pytest.fail(f"The portal raised while serving the browser:\n\n{report}", pytrace=False)


@pytest.fixture()
def demo_data(app: Flask, committed_db: None) -> None:
    """The demo agencies and citizens, with every agency's debts pulled from the demo ERP."""
    from app.agencies.models import Agency
    from app.demo import setup_demo
    from app.extensions import db
    from app.sync.engine import sync_agency

    with app.app_context():
        setup_demo()
        db.session.commit()  # the demo command's unit of work, done here by hand
        for agency in db.session.scalars(select(Agency).order_by(Agency.code)).all():
            run = sync_agency(agency)
            assert (run.status, run.quarantined) == ("succeeded", 0)


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium per test worker."""
    if not chromium_installed():
        # Only reached under CI: elsewhere the collection hook has skipped these tests.
        pytest.fail(
            f"CI is set but Chromium is not installed at {CHROMIUM_PATH}: install Debian's chromium package",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "page"


@pytest.fixture()
def screenshots_dir(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder under test-results/screenshots/, emptied first."""
    folder = request.config.rootpath / "test-results" / "screenshots" / _file_name(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture()
def snap(screenshots_dir: Path) -> Snap:
    """``snap(page, "03-review")`` saves a full-page screenshot of this step."""

    def save(page: Any, name: str) -> Path:
        path = screenshots_dir / f"{_file_name(name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture()
def open_page(browser: Any, live_server: str, screenshots_dir: Path) -> Iterator[Callable[..., Any]]:
    """``open_page(**context_options)``: a page in a new browser context on the live server.

    Defaults: British English, a 1280×900 window, relative URLs resolved against the server.
    Every page still open at the end is screenshotted (as last-*.png), then its context closed.
    """
    from playwright.sync_api import Error as PlaywrightError

    contexts: list[Any] = []

    def open_(**options: Any) -> Any:
        settings = {"locale": "en-GB", "viewport": {"width": 1280, "height": 900}, "base_url": live_server}
        context = browser.new_context(**(settings | options))
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_
    for number, context in enumerate(contexts, start=1):
        for index, page in enumerate(context.pages, start=1):
            suffix = "" if (number, index) == (1, 1) else f"-{number}-{index}"
            try:
                page.screenshot(path=str(screenshots_dir / f"last{suffix}.png"), full_page=True)
            except PlaywrightError as error:  # a crashed page must not hide the test's own failure
                print(f"could not take the final screenshot: {error}")
        context.close()


@pytest.fixture()
def page(open_page: Callable[..., Any]) -> Any:
    """A page in a fresh context: en-GB, 1280×900, on the live server."""
    return open_page()
