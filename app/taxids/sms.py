"""Text messages behind a small Protocol: a file gateway for development, a recording one for tests.

Real gateways (an SMS provider's HTTP API) come later; each will be one more class with the same
``send`` method, chosen by the ``SMS_GATEWAY`` setting. Until then the portal writes each message
to ``instance/sms/*.txt`` (or ``SMS_FILE_DIR``), where a developer can read it.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from flask import current_app


class SMSDeliveryError(RuntimeError):
    """The message could not be handed to the gateway."""


@runtime_checkable
class SMSGateway(Protocol):
    """Somewhere a text message can be handed to."""

    def send(self, to: str, text: str) -> None:
        """Deliver ``text`` to the phone number ``to`` (E.164) or raise SMSDeliveryError."""


class FileSMSGateway:
    """Writes each message to a .txt file (recipient on the first line); nothing is sent."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, to: str, text: str) -> None:
        """Write the message to a new file named by the time and a random suffix."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = self.directory / f"{stamp}-{secrets.token_hex(3)}.txt"
            path.write_text(f"To: {to}\n\n{text}\n", encoding="utf-8")
        except OSError as error:
            raise SMSDeliveryError(f"The text message could not be written to {self.directory}: {error}") from error


@dataclass(frozen=True)
class SentSMS:
    """One message a RecordingSMSGateway was given."""

    to: str
    text: str


@dataclass
class RecordingSMSGateway:
    """Keeps every message in memory, for tests (set ``SMS_GATEWAY`` to an instance)."""

    sent: list[SentSMS] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, to: str, text: str) -> None:
        """Record the message."""
        with self._lock:
            self.sent.append(SentSMS(to, text))

    def to(self, number: str) -> list[SentSMS]:
        """Messages sent to ``number``."""
        with self._lock:
            return [message for message in self.sent if message.to == number]


def sms_gateway() -> SMSGateway:
    """The gateway ``SMS_GATEWAY`` names: "file" (the default) or a gateway object (tests)."""
    configured = current_app.config.get("SMS_GATEWAY", "file")
    if isinstance(configured, SMSGateway):
        return configured
    if configured == "file":
        directory = current_app.config.get("SMS_FILE_DIR") or Path(current_app.instance_path) / "sms"
        return FileSMSGateway(Path(directory))
    raise SMSDeliveryError(f"SMS_GATEWAY={configured!r} is not known: use 'file' (real gateways come later).")
