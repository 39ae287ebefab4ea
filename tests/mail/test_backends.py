"""Mail backends: SMTP against a real local server (aiosmtpd), .eml files, the console, config."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask

from app import create_app
from app.config import ConfigurationError
from app.mail import build_message, send_mail
from app.mail.backends import (
    ConsoleBackend,
    FileBackend,
    MailConfigurationError,
    MailDeliveryError,
    SMTPBackend,
    backend_from_config,
)
from tests.mail.smtp import SMTPServer, free_loopback_port, start_smtp_server


def a_message(to: str = "maria@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Civic Pay <no-reply@civicpay.example>"
    message["To"] = to
    message["Subject"] = "Η πληρωμή σας"
    message.set_content("Ευχαριστούμε για την πληρωμή.\n")
    return message


# -- SMTP ----------------------------------------------------------------------------------------


def test_smtp_backend_delivers_utf8_message(smtp_server: SMTPServer) -> None:
    smtp_server.clear()
    SMTPBackend(smtp_server.host, smtp_server.port, timeout=5).send(a_message())
    received = smtp_server.only("maria@example.org")
    assert received.subject == "Η πληρωμή σας"
    assert received.text == "Ευχαριστούμε για την πληρωμή.\n"
    assert received.envelope_from == "no-reply@civicpay.example"


def test_send_mail_uses_the_configured_sender_and_adds_an_html_alternative(app_ctx: Flask, mailbox: SMTPServer) -> None:
    send_mail("john@example.org", "Your receipt", "Thank you.\n", "<p>Thank you.</p>")
    received = mailbox.only("john@example.org")
    assert received.message["From"] == app_ctx.config["MAIL_FROM"]
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert received.message["Message-ID"] and received.message["Date"]
    assert received.text == "Thank you.\n"
    assert received.html is not None and "<p>Thank you.</p>" in received.html


@pytest.fixture()
def smtp_server_with_login() -> Iterator[SMTPServer]:
    """A server that wants AUTH (over plain text on loopback only, as the backend allows)."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"portal", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    controller, server = start_smtp_server(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    try:
        yield server
    finally:
        controller.stop()


#: aiosmtpd warns about AUTH without TLS; here it is deliberate, and on loopback only.
auth_without_tls = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@auth_without_tls
def test_smtp_backend_logs_in_when_given_credentials(smtp_server_with_login: SMTPServer) -> None:
    server = smtp_server_with_login
    SMTPBackend(server.host, server.port, username="portal", password="s3cret", timeout=5).send(a_message())
    assert len(server.messages) == 1


@auth_without_tls
def test_smtp_backend_with_wrong_credentials_raises_and_sends_nothing(smtp_server_with_login: SMTPServer) -> None:
    server = smtp_server_with_login
    backend = SMTPBackend(server.host, server.port, username="portal", password="wrong", timeout=5)
    with pytest.raises(MailDeliveryError, match="did not accept"):
        backend.send(a_message())
    assert server.messages == []


def test_starttls_never_falls_back_to_plain_text(smtp_server: SMTPServer) -> None:
    """The local server offers no STARTTLS: a backend told to use it must refuse to send."""
    smtp_server.clear()
    backend = SMTPBackend(smtp_server.host, smtp_server.port, starttls=True, timeout=5)
    with pytest.raises(MailDeliveryError):
        backend.send(a_message())
    assert smtp_server.messages == []


def test_credentials_without_tls_to_a_remote_server_are_refused_up_front() -> None:
    with pytest.raises(MailConfigurationError, match="MAIL_SMTP_STARTTLS"):
        SMTPBackend("smtp.example.org", 587, username="portal", password="s3cret")


def test_unreachable_server_raises_delivery_error() -> None:
    backend = SMTPBackend("127.0.0.1", free_loopback_port(), timeout=2)
    with pytest.raises(MailDeliveryError, match="127.0.0.1"):
        backend.send(a_message())


def test_a_server_that_never_answers_times_out() -> None:
    """A socket that accepts and then says nothing: the timeout bounds how long a request waits."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    thread.start()
    try:
        backend = SMTPBackend("127.0.0.1", silent.getsockname()[1], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(MailDeliveryError):
            backend.send(a_message())
        assert time.monotonic() - started < 5
    finally:
        for connection in accepted:
            connection.close()
        silent.close()


# -- files and console -------------------------------------------------------------------------


def test_file_backend_writes_a_readable_eml_and_logs_where(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("civicpay.mail")
    logger.addHandler(caplog.handler)  # the civicpay loggers do not propagate to the root
    try:
        with caplog.at_level(logging.INFO, logger="civicpay.mail"):
            FileBackend(tmp_path / "mail").send(a_message())
    finally:
        logger.removeHandler(caplog.handler)
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Η πληρωμή σας"
    assert parsed.get_body().get_content() == "Ευχαριστούμε για την πληρωμή.\n"
    # One line, naming the file (seen once or twice: the handler may also sit on the root logger).
    assert {record.getMessage() for record in caplog.records} == {
        f"E-mail written to {files[0]} (MAIL_BACKEND=file: nothing was sent)"
    }


def test_file_backend_reports_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(MailDeliveryError, match="Could not write"):
        FileBackend(blocker / "mail").send(a_message())


def test_console_backend_prints_the_whole_message() -> None:
    stream = io.StringIO()
    ConsoleBackend(stream).send(a_message())
    printed = stream.getvalue()
    assert "To: maria@example.org" in printed
    assert "Subject:" in printed


# -- choosing the backend ----------------------------------------------------------------------


def test_smtp_settings_from_the_environment_are_converted() -> None:
    config = {
        "MAIL_BACKEND": "smtp",
        "MAIL_SMTP_HOST": "mail.example.org",
        "MAIL_SMTP_PORT": "587",
        "MAIL_SMTP_STARTTLS": "true",
        "MAIL_SMTP_USERNAME": "portal",
        "MAIL_SMTP_PASSWORD": "s3cret",
        "MAIL_SMTP_TIMEOUT": "7",
    }
    backend = backend_from_config(config, "/srv/instance")
    assert isinstance(backend, SMTPBackend)
    assert (backend.host, backend.port, backend.starttls, backend.timeout) == ("mail.example.org", 587, True, 7.0)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"MAIL_BACKEND": "carrier-pigeon"}, "is not known"),
        ({"MAIL_BACKEND": "smtp", "MAIL_SMTP_PORT": "twenty-five"}, "not a whole number"),
        ({"MAIL_BACKEND": "smtp", "MAIL_SMTP_STARTTLS": "maybe"}, "not a yes/no value"),
    ],
)
def test_bad_mail_settings_are_refused_with_a_sentence(settings: dict, problem: str) -> None:
    with pytest.raises(MailConfigurationError, match=problem):
        backend_from_config(settings, "/srv/instance")


def test_file_backend_defaults_to_instance_mail() -> None:
    backend = backend_from_config({"MAIL_BACKEND": "file"}, "/srv/instance")
    assert isinstance(backend, FileBackend) and backend.directory == Path("/srv/instance/mail")


def test_portal_does_not_start_with_an_unknown_mail_backend() -> None:
    with pytest.raises(ConfigurationError, match="MAIL_BACKEND"):
        create_app({"ENV_NAME": "testing", "DATABASE_URL": "sqlite://", "MAIL_BACKEND": "pigeon"})


def test_development_writes_mail_into_instance_mail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIVICPAY_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("MAIL_BACKEND", raising=False)
    development = create_app({"ENV_NAME": "development", "DATABASE_URL": "sqlite://"})
    with development.test_request_context():
        send_mail("maria@example.org", "Καλώς ήρθατε", "Γεια σας.\n")
    files = list((tmp_path / "instance" / "mail").glob("*.eml"))
    assert len(files) == 1
    assert "Καλώς ήρθατε" in message_from_bytes(files[0].read_bytes(), policy=policy.default)["Subject"]


def test_build_message_refuses_header_injection(app_ctx: Flask) -> None:
    with pytest.raises(ValueError):
        build_message("maria@example.org\nBcc: everyone@example.org", "Hi", "Body")
