"""A real SMTP server for tests: aiosmtpd on a free loopback port, keeping what it receives.

A fixture plugin: tests/conftest.py lists it in ``pytest_plugins``, so every test can ask for
``smtp_server`` or ``mailbox`` without importing them (import ``SMTPServer`` for annotations).
``mailbox`` points the app's "smtp" backend at the server for one test and restores the
settings afterwards; tests read links and codes from the messages the server received.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

_URL = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class ReceivedMail:
    """One message as the SMTP server got it."""

    envelope_from: str
    envelope_to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body, with the wire's CRLF line ends made plain newlines."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the message has no text/plain part"
        return part.get_content().replace("\r\n", "\n")

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content().replace("\r\n", "\n") if part is not None else None

    def links(self) -> list[str]:
        """Every URL in the plain-text body, in order."""
        return _URL.findall(self.text)

    def link_path(self, containing: str) -> str:
        """The path (for the test client) of the one link whose URL contains ``containing``."""
        found = [url for url in self.links() if containing in url]
        assert len(found) == 1, f"expected one link with {containing!r} in:\n{self.text}"
        return urlsplit(found[0]).path


@dataclass
class _Collector:
    """aiosmtpd handler: keeps each message; thread-safe reads for the tests."""

    received: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.lock:
            self.received.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
            )
        return "250 Message accepted for delivery"


class SMTPServer:
    """The running server: its address and what it has received."""

    def __init__(self, host: str, port: int, collector: _Collector) -> None:
        self.host = host
        self.port = port
        self._collector = collector

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._collector.lock:
            return list(self._collector.received)

    def clear(self) -> None:
        with self._collector.lock:
            self._collector.received.clear()

    def to(self, address: str) -> list[ReceivedMail]:
        """Messages addressed to ``address``."""
        return [mail for mail in self.messages if address.lower() in (r.lower() for r in mail.envelope_to)]

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages arrived (for mail sent by another thread)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} e-mail(s), the SMTP server got {len(self.messages)}")
            time.sleep(0.02)
        return self.messages

    def only(self, address: str) -> ReceivedMail:
        """The one message sent to ``address``; fails if there are none or several."""
        found = self.to(address)
        assert len(found) == 1, f"expected one e-mail to {address}, got {[m.subject for m in found]}"
        return found[0]


def free_loopback_port() -> int:
    """A port nobody listens on right now (aiosmtpd's controller needs the number up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_smtp_server(**smtp_options: Any) -> tuple[Controller, SMTPServer]:
    """Start aiosmtpd on 127.0.0.1; ``smtp_options`` go to its SMTP class (e.g. authenticator)."""
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_loopback_port(), **smtp_options)
    controller.start()
    return controller, SMTPServer("127.0.0.1", controller.port, collector)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    """One aiosmtpd server per test worker."""
    controller, server = start_smtp_server()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture()
def mailbox(app: Flask, smtp_server: SMTPServer) -> Iterator[SMTPServer]:
    """The app sends its mail by SMTP to ``smtp_server`` during this test; emptied first."""
    names = ("MAIL_BACKEND", "MAIL_SMTP_HOST", "MAIL_SMTP_PORT", "MAIL_SMTP_STARTTLS", "MAIL_SMTP_USERNAME")
    saved = {name: app.config.get(name) for name in names}
    app.config.update(
        MAIL_BACKEND="smtp",
        MAIL_SMTP_HOST=smtp_server.host,
        MAIL_SMTP_PORT=smtp_server.port,
        MAIL_SMTP_STARTTLS=False,
        MAIL_SMTP_USERNAME=None,
    )
    smtp_server.clear()
    try:
        yield smtp_server
    finally:
        app.config.update(saved)
        smtp_server.clear()
