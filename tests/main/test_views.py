"""Front page, language switch and error pages."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.helpers import csrf_token, page_text


def switch(client: FlaskClient, language: str, next_path: str = "/"):
    return client.post(
        "/language", data={"language": language, "next": next_path, "csrf_token": csrf_token(client, "/")}
    )


def test_front_page_follows_the_browser_language(client: FlaskClient) -> None:
    english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in page_text(english)
    greek = client.get("/", headers={"Accept-Language": "el-GR"})
    assert '<html lang="el">' in page_text(greek)
    assert "Πληρώστε" in page_text(greek)  # translated, not just tagged


def test_language_switch_sticks_and_returns_to_the_page(client: FlaskClient) -> None:
    response = switch(client, "el", "/login")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    page = page_text(client.get("/login", headers={"Accept-Language": "en"}))
    assert '<html lang="el">' in page
    assert "Σύνδεση" in page


def test_unknown_language_is_refused_with_a_message_and_changes_nothing(client: FlaskClient) -> None:
    switch(client, "en")
    response = switch(client, "xx")
    assert response.status_code == 303
    page = page_text(client.get("/"))
    assert "That language is not available" in page
    assert '<html lang="en">' in page


def test_language_switch_never_redirects_off_site(client: FlaskClient) -> None:
    assert switch(client, "en", "//evil.example/").headers["Location"] == "/"


def test_unknown_page_is_a_sentence(client: FlaskClient) -> None:
    response = client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert "We could not find this page." in page_text(response)
