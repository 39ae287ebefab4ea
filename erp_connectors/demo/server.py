"""The demo ERP over real HTTP, in the REST connector's default format, with hooks to make it slow, fail or go down.

    with DemoERPServer("eastcoast", debtors=100) as server:
        connector = RestConnector("eastcoast", base_url=server.url)

or from a terminal: python -m erp_connectors.demo serve --agency eastcoast --port 8081
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain, islice
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from erp_connectors.base import AckRejected, DebtRecord, payment_ack_from_dict, record_to_dict
from erp_connectors.demo.connector import DemoERP

log = logging.getLogger("erp_connectors.demo.server")

#: the largest page a client may ask for
MAX_PAGE_SIZE = 5_000
#: paused crawls kept, each ready to serve the page after its last one
_CONTINUATIONS_KEPT = 16
#: the largest request body read (a payment ack is a few hundred bytes)
_MAX_BODY_BYTES = 64 * 1024


class DemoERPServer:
    """A DemoERP served over HTTP on a loopback address; a context manager that serves from a daemon thread."""

    def __init__(
        self,
        agency_code: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        debtors: int = 25,
        seed: int = 2026,
        token: str | None = None,
        page_size: int = 100,
        as_of: date | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"The demo ERP only listens on loopback addresses such as 127.0.0.1, not {host!r}.")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"The demo ERP's page size must be from 1 to {MAX_PAGE_SIZE} (got {page_size}).")
        self.erp = DemoERP(agency_code, seed=seed, debtors=debtors, as_of=as_of, state_file=state_file)
        self.token = token
        self.page_size = page_size
        #: seconds every answer waits before it is sent, to try clients' timeouts
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._down = False
        self._requests_served = 0
        self._continuations: dict[tuple[str | None, str | None], Iterator[DebtRecord]] = {}
        # Set on stop, so that slow answers in flight wake up instead of holding the process.
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd = _HTTPServer((host, port), _Handler, self)

    # -- address and life cycle ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, if it was given 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Its base URL, e.g. http://127.0.0.1:8081."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Serve from a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                # A short poll, so that stop() (and each test's teardown) takes milliseconds, not half a second.
                target=functools.partial(self._httpd.serve_forever, poll_interval=0.02),
                name=f"demo-erp-{self.erp.agency_code}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve from this thread until interrupted (the command line's way)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._stopping.set()
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test hooks ---------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests, whatever they ask, with this HTTP status."""
        with self._lock:
            self._failures.extend([status] * count)

    def go_down(self) -> None:
        """Answer every request with 503 until come_back()."""
        self._down = True

    def come_back(self) -> None:
        """Serve normally again after go_down()."""
        self._down = False

    @property
    def requests_served(self) -> int:
        """How many requests it has answered, failures included."""
        return self._requests_served

    # -- answering ----------------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request; the hooks apply before anything else."""
        with self._lock:
            self._requests_served += 1
            injected = self._failures.pop(0) if self._failures else None
        if self.delay_seconds:
            self._stopping.wait(self.delay_seconds)
        if self._down:
            return 503, {"message": "The demo ERP is down for maintenance."}
        if injected is not None:
            return injected, {"message": f"The demo ERP was told to fail this request (HTTP {injected})."}
        if self.token is not None and not _bearer_matches(headers.get("Authorization"), self.token):
            return 401, {"message": "A valid bearer token is required."}

        parts = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [unquote(segment) for segment in parts.path.strip("/").split("/")]
        if method == "GET" and segments == ["health"]:
            return 200, {"status": "ok", "agency": self.erp.agency_code}
        if method == "GET" and segments == ["debts"]:
            return self._debts_page(query)
        if method == "GET" and len(segments) == 4 and segments[0] == "debtors" and segments[3] == "debts":
            records = self.erp.fetch_debtor(segments[1], segments[2])
            items = [record_to_dict(record) for record in records if isinstance(record, DebtRecord)]
            return 200, {"items": items, "next": None}
        if method == "POST" and segments == ["payments"]:
            return self._payment(body)
        if method == "POST" and segments == ["refunds"]:
            return self._refund(body)
        if method == "POST" and segments == ["sales"]:
            return self._sale(body)
        return 404, {"message": f"The demo ERP has nothing at {method} {parts.path}."}

    def _debts_page(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            size = int(query.get("page_size", self.page_size))
        except ValueError:
            return 400, {"message": f"page_size must be a whole number, not {query['page_size']!r}."}
        if not 1 <= size <= MAX_PAGE_SIZE:
            return 400, {"message": f"page_size must be from 1 to {MAX_PAGE_SIZE}."}
        changed_since = None
        if query.get("changed_since"):
            # A raw "+" in a query means a space; a client that did not escape its offset still means "+".
            text = query["changed_since"].replace(" ", "+")
            try:
                changed_since = datetime.fromisoformat(text)
            except ValueError:
                changed_since = None
            if changed_since is None or changed_since.utcoffset() is None:
                return 400, {"message": f"changed_since must be an ISO 8601 time with its offset, not {text!r}."}
        after = query.get("after") or None
        since_key = changed_since.isoformat() if changed_since is not None else None
        with self._lock:
            stream = self._continuations.pop((after, since_key), None)
        try:
            if stream is None:
                stream = self.erp.iter_debts_after(after, changed_since)
            # One more than the page, to know whether there is a next page without a final empty one.
            records = list(islice(stream, size + 1))
        except ValueError as error:
            return 400, {"message": str(error)}
        page = records[:size]
        next_link = None
        if len(records) > size:
            link_query = {"after": page[-1].external_id, "page_size": str(size)}
            if since_key is not None:
                link_query["changed_since"] = since_key
            next_link = "/debts?" + urlencode(link_query)
            with self._lock:
                # Kept for the crawler's next request, which then costs no replay of the random stream.
                self._continuations[(page[-1].external_id, since_key)] = chain(records[size:], stream)
                while len(self._continuations) > _CONTINUATIONS_KEPT:
                    del self._continuations[next(iter(self._continuations))]
        return 200, {"items": [record_to_dict(record) for record in page], "next": next_link}

    def _payment(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            ack = payment_ack_from_dict(json.loads(body.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as error:
            return 400, {"message": str(error) if isinstance(error, ValueError) else "The body is not UTF-8 JSON."}
        try:
            recorded = self.erp.record_ack(ack)
        except AckRejected as error:
            return 422, {"message": error.reason}
        if not recorded:
            message = f"The payment line {ack.line_id} was already recorded."
            return 409, {"status": "already_recorded", "message": message}
        return 201, {"status": "recorded", "line_id": ack.line_id}

    def _sale(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            sale = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400, {"message": "The body is not UTF-8 JSON."}
        if not isinstance(sale, dict):
            return 400, {"message": "A sale is a JSON object."}
        try:
            recorded = self.erp.record_sale(sale)
        except AckRejected as error:
            return 422, {"message": error.reason}
        if not recorded:
            return 409, {"status": "already_recorded", "message": f"The sale {sale['line_id']} was already recorded."}
        return 201, {"status": "recorded", "line_id": sale["line_id"]}

    def _refund(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            refund = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400, {"message": "The body is not UTF-8 JSON."}
        if not isinstance(refund, dict):
            return 400, {"message": "A refund is a JSON object."}
        try:
            recorded = self.erp.record_refund(refund)
        except AckRejected as error:
            return 422, {"message": error.reason}
        if not recorded:
            return 409, {
                "status": "already_recorded",
                "message": f"The refund {refund['refund_reference']} was already recorded.",
            }
        return 201, {"status": "recorded", "refund_reference": refund["refund_reference"]}


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its DemoERPServer and does not wait for slow answers on close."""

    daemon_threads = True
    # Closing must not wait for answers sleeping on delay_seconds; they are daemon threads and wake on stop.
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], demo: DemoERPServer) -> None:
        self.demo = demo
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without http.server's look-up of the host's full name, a DNS query that can stall start-up."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the DemoERPServer and writes its JSON answer."""

    # Keep-alive, so that a client crawling thousands of pages does not open a connection per page.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, each answer then waits
    # ~40 ms for a delayed ACK (measured: 17 → 85 ack requests/s over loopback when turned off).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        """Answer a GET."""
        self._respond("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self._respond("POST")

    def do_PUT(self) -> None:
        """Answer a PUT (with 404: the demo ERP has none)."""
        self._respond("PUT")

    def do_DELETE(self) -> None:
        """Answer a DELETE (with 404: the demo ERP has none)."""
        self._respond("DELETE")

    def _respond(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            self._send(413, {"message": "The request body is too large or its length is unreadable."})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        try:
            status, payload = self.server.demo._answer(method, self.path, self.headers, body)
        except Exception:
            log.exception("demo ERP: %s %s failed", method, self.path)
            status, payload = 500, {"message": "The demo ERP failed on this request."}
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="demo-erp"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout in a test, usually); nobody is left to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests at debug level instead of printing them to stderr."""
        log.debug("demo ERP %s: " + format, self.address_string(), *args)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # Constant time, so the token cannot be guessed from how long a refusal takes.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
