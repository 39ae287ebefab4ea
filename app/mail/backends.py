"""Ways an e-mail leaves the portal: SMTP, .eml files, or the console.

Each backend has one method, ``send(message)``, and is chosen by ``MAIL_BACKEND``: "smtp" in
production, "file" for development (`make run`), "console" for the test suite unless a test
points "smtp" at its local aiosmtpd server.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import smtplib
import ssl
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol, TextIO

log = logging.getLogger("civicpay.mail")

BACKEND_NAMES = ("smtp", "file", "console")


class MailDeliveryError(RuntimeError):
    """The message could not be handed over; the reason is in the message (and the cause)."""


class MailConfigurationError(RuntimeError):
    """The mail settings cannot work as given."""


class MailBackend(Protocol):
    """Somewhere an e-mail message can be handed to."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise MailDeliveryError."""


class SMTPBackend:
    """Hands each message to an SMTP server (a local relay or the provider's submission port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10,
    ) -> None:
        if username and not starttls and not _is_loopback(host):
            # smtplib would send the password in the clear.
            raise MailConfigurationError(
                f"MAIL_SMTP_USERNAME is set but MAIL_SMTP_STARTTLS is off for {host}: the password "
                "would cross the network unencrypted. Turn MAIL_SMTP_STARTTLS on."
            )
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        """One connection per message: the portal sends few, and a stale connection cannot bite."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    # Raises SMTPNotSupportedError when the server offers no STARTTLS: we never
                    # fall back to plain text once TLS was asked for.
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            raise MailDeliveryError(
                f"The mail server {self.host}:{self.port} did not accept the message: {error}"
            ) from error


class FileBackend:
    """Writes each message as an .eml file (open it with any mail program); nothing is sent."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        """Write ``message`` to a new file named by the time and a random suffix."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = self.directory / f"{stamp}-{secrets.token_hex(3)}.eml"
            path.write_bytes(bytes(message))
        except OSError as error:
            raise MailDeliveryError(f"Could not write the message to {self.directory}: {error}") from error
        log.info("E-mail written to %s (MAIL_BACKEND=file: nothing was sent)", path)


class ConsoleBackend:
    """Prints each message, headers and all, to a stream (standard output by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, message: EmailMessage) -> None:
        """Print ``message`` between two rules."""
        stream = self.stream or sys.stdout
        rule = "-" * 72
        stream.write(f"{rule}\n{message.as_string()}\n{rule}\n")
        stream.flush()


def backend_from_config(config: Mapping[str, Any], instance_path: str | Path) -> MailBackend:
    """The backend MAIL_BACKEND names, built from the MAIL_* settings (strings from the
    environment are accepted for numbers and booleans)."""
    name = str(config.get("MAIL_BACKEND") or "").strip().lower()
    if name == "smtp":
        return SMTPBackend(
            str(config.get("MAIL_SMTP_HOST") or "localhost"),
            _as_int(config.get("MAIL_SMTP_PORT", 25), "MAIL_SMTP_PORT"),
            starttls=_as_bool(config.get("MAIL_SMTP_STARTTLS", False), "MAIL_SMTP_STARTTLS"),
            username=config.get("MAIL_SMTP_USERNAME") or None,
            password=config.get("MAIL_SMTP_PASSWORD") or None,
            timeout=float(_as_int(config.get("MAIL_SMTP_TIMEOUT", 10), "MAIL_SMTP_TIMEOUT")),
        )
    if name == "file":
        return FileBackend(Path(config.get("MAIL_FILE_DIR") or Path(instance_path) / "mail"))
    if name == "console":
        return ConsoleBackend()
    raise MailConfigurationError(
        f"MAIL_BACKEND={config.get('MAIL_BACKEND')!r} is not known; use one of {', '.join(BACKEND_NAMES)}."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise MailConfigurationError(f"{name}={value!r} is not a yes/no value; use true or false.")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MailConfigurationError(f"{name}={value!r} is not a whole number.") from None
