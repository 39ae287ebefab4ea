"""Configuration: secrets are required outside development; instance/config.py overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigurationError, normalise_database_url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SECRET_KEY", "DATABASE_URL", "CIVICPAY_ENV", "CARD_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIVICPAY_INSTANCE_PATH", str(tmp_path / "instance"))


def test_production_without_secret_key_stops_with_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        create_app()


def test_production_without_database_url_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not set"):
        create_app()


def test_unknown_environment_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "staging-typo")
    with pytest.raises(ConfigurationError, match="not known"):
        create_app()


def test_development_defaults_to_sqlite_in_instance_and_keeps_its_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "development")
    first = create_app()
    second = create_app()
    assert first.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'civicpay.sqlite3'}"
    assert len(first.config["SECRET_KEY"]) >= 40
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]


def test_instance_config_overrides_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "from-environment-" + "x" * 30)
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text('DATABASE_URL = "sqlite://"\nSECRET_KEY = "from-instance-file-0123456789"\n')
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-instance-file-0123456789"
    assert app.config["DATABASE_URL"] == "sqlite://"


def test_database_password_never_reaches_the_log(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CIVICPAY_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-very-secret-key-that-must-stay-hidden-123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://civicpay:s3cret-pw@127.0.0.1:1/civicpay")
    create_app()
    logged = capfd.readouterr().err
    assert "@127.0.0.1:1/civicpay" in logged  # the start-up line was written...
    assert "s3cret-pw" not in logged  # ...without the password
    assert "a-very-secret-key" not in logged


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_use_psycopg_3(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected
