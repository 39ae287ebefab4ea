"""Outgoing e-mail: ``send_mail`` builds the message and hands it to the configured backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import Flask, current_app

from app.config import ConfigurationError
from app.mail.backends import (
    MailBackend,
    MailConfigurationError,
    MailDeliveryError,
    backend_from_config,
)

__all__ = ["Attachment", "MailBackend", "MailDeliveryError", "build_message", "init_mail", "send_mail"]


def init_mail(app: Flask) -> None:
    """Check the mail settings at start-up (a typo stops the portal, not the first e-mail)."""
    try:
        backend = backend_from_config(app.config, app.instance_path)
    except MailConfigurationError as error:
        raise ConfigurationError(str(error)) from None
    if app.config["MAIL_BACKEND"] == "file":
        app.logger.info("E-mail is written to %s, not sent (MAIL_BACKEND=file)", backend.directory)


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message, e.g. a PDF receipt."""

    filename: str
    content: bytes
    mime_type: str = "application/pdf"


def build_message(
    to: str,
    subject: str,
    body_text: str,
    body_html: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A UTF-8 message from MAIL_FROM to ``to``, plain text with an optional HTML alternative."""
    sender = current_app.config["MAIL_FROM"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: an automatic message; out-of-office replies should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body_text)
    if body_html is not None:
        message.add_alternative(body_html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message


def send_mail(
    to: str,
    subject: str,
    body_text: str,
    body_html: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> None:
    """Send one message with the backend MAIL_BACKEND names; raises MailDeliveryError."""
    message = build_message(to, subject, body_text, body_html, attachments)
    backend_from_config(current_app.config, current_app.instance_path).send(message)
