"""The staff's second factor: enrolment with a QR code, TOTP codes, recovery codes, the limit."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.models import User
from app.extensions import db
from app.treasury.access.second_factor import _hash_recovery_code
from app.treasury.models import StaffRecoveryCode
from tests.factories import PASSWORD, STAFF_TOTP_SECRET, AgencyFactory, staff_member, totp_code
from tests.helpers import csrf_token, log_in, page_text
from tests.treasury.helpers import MORNING, SECRET_ON_PAGE, enrol, pass_second_factor


def test_first_sign_in_sets_up_the_authenticator_and_shows_ten_recovery_codes_once(client: FlaskClient) -> None:
    user = staff_member(AgencyFactory(), "view", enrolled=False)
    log_in(client, user.email, PASSWORD)
    first = client.get("/treasury")
    assert first.headers["Location"].startswith("/treasury/2fa/setup")

    setup = client.get("/treasury/2fa/setup").get_data(as_text=True)
    assert '<svg role="img" aria-label="QR code to add Civic Pay Treasury' in setup
    secret = SECRET_ON_PAGE.search(setup).group(1)
    # Reloading shows the same secret: a code already scanned keeps working.
    assert SECRET_ON_PAGE.search(client.get("/treasury/2fa/setup").get_data(as_text=True)).group(1) == secret

    wrong = client.post(
        "/treasury/2fa/setup", data={"code": "000000", "csrf_token": csrf_token(client, "/treasury/2fa/setup")}
    )
    assert wrong.status_code == 400 and "This code is not right" in page_text(wrong)

    _secret, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/treasury").status_code == 200  # the session is verified now

    stored = db.session.scalar(select(User).where(User.id == user.id))
    assert stored.totp_confirmed_at is not None
    assert secret not in stored.totp_secret  # encrypted at rest
    hashes = set(db.session.scalars(select(StaffRecoveryCode.code_hash).where(StaffRecoveryCode.user_id == user.id)))
    assert len(hashes) == 10 and not any(code.replace("-", "") in hashes for code in codes)
    # Never shown again: the set-up page now sends to the code page.
    assert client.get("/treasury/2fa/setup").headers["Location"].endswith("/treasury/2fa")


def test_a_totp_code_opens_the_treasury_until_log_out(client: FlaskClient) -> None:
    user = staff_member(AgencyFactory(), "view")
    log_in(client, user.email, PASSWORD)
    assert client.get("/treasury").headers["Location"].startswith("/treasury/2fa")
    wrong = pass_second_factor(client, "123456")
    assert wrong.status_code == 400
    assert "This code is not right" in page_text(wrong)
    assert pass_second_factor(client).status_code == 303
    assert client.get("/treasury").status_code == 200

    # A new log-in starts a new session, which must pass the second factor again.
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})
    log_in(client, user.email, PASSWORD)
    assert client.get("/treasury").status_code == 302


def test_codes_from_the_neighbouring_time_steps_work_but_older_ones_do_not(client: FlaskClient) -> None:
    user = staff_member(AgencyFactory(), "view")
    log_in(client, user.email, PASSWORD)
    too_old = totp_code(MORNING - timedelta(seconds=90))
    assert pass_second_factor(client, too_old).status_code == 400
    previous = totp_code(MORNING - timedelta(seconds=30))  # a phone clock half a minute slow
    assert pass_second_factor(client, previous).status_code == 303


def test_a_code_is_accepted_only_once(client: FlaskClient, app: Flask, clock: time_machine.Traveller) -> None:
    user = staff_member(AgencyFactory(), "view")
    code = totp_code()
    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, code).status_code == 303

    clock.shift(timedelta(seconds=5))  # the same 30-second step, in another browser
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    log_in(other, user.email, PASSWORD)
    assert pass_second_factor(other, code).status_code == 400
    clock.shift(timedelta(seconds=30))  # the next step's code works
    assert pass_second_factor(other, totp_code(MORNING + timedelta(seconds=35))).status_code == 303


def test_a_recovery_code_works_once(client: FlaskClient, app: Flask) -> None:
    user = staff_member(AgencyFactory(), "view", enrolled=False)
    log_in(client, user.email, PASSWORD)
    _secret, codes = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})

    log_in(client, user.email, PASSWORD)
    typed = codes[3].upper().replace("-", " ")  # as someone might type it from paper
    used = pass_second_factor(client, typed)
    assert used.status_code == 303
    assert "You have 9 left" in page_text(client.get("/treasury"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})

    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, codes[3]).status_code == 400
    assert pass_second_factor(client, codes[4]).status_code == 303


def _stored_hashes(user_id: int) -> dict[str, str | None]:
    """Each of the person's recovery code hashes, with "used" or None."""
    rows = db.session.execute(
        select(StaffRecoveryCode.code_hash, StaffRecoveryCode.used_at).where(StaffRecoveryCode.user_id == user_id)
    ).all()
    return {code_hash: ("used" if used_at else None) for code_hash, used_at in rows}


def test_a_new_recovery_code_is_stored_as_argon2_and_works_once(client: FlaskClient) -> None:
    user = staff_member(AgencyFactory(), "view", enrolled=False)
    user_id = user.id
    log_in(client, user.email, PASSWORD)
    _secret, codes = enrol(client)
    hashes = _stored_hashes(user_id)
    assert len(hashes) == 10 and all(code_hash.startswith("$argon2id$") for code_hash in hashes)
    assert len(set(hashes)) == 10  # salted: no two alike, and none is the code's SHA-256
    assert not {hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes} & set(hashes)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})

    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, codes[0]).status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})
    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, codes[0]).status_code == 400
    assert list(_stored_hashes(user_id).values()).count("used") == 1


def test_an_old_sha256_recovery_code_still_works_and_no_sha256_is_left(client: FlaskClient) -> None:
    """Codes stored before argon2: the one used and the ones left are all argon2 afterwards, and still work."""
    user = staff_member(AgencyFactory(), "view")
    user_id = user.id
    codes = ["0a1b2-c3d4e", "11111-22222", "abcde-f0123"]
    for code in codes:  # as the earlier version stored them: unsalted SHA-256 hex
        digest = hashlib.sha256(code.replace("-", "").encode()).hexdigest()
        db.session.add(StaffRecoveryCode(user_id=user_id, code_hash=digest, created_at=MORNING))
    db.session.commit()

    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, codes[0].upper()).status_code == 303
    hashes = _stored_hashes(user_id)
    assert not [code_hash for code_hash in hashes if re.fullmatch(r"[0-9a-f]{64}", code_hash)]
    [used] = [code_hash for code_hash, state in hashes.items() if state == "used"]
    assert used.startswith("$argon2id$")
    assert sorted(code_hash[:17] for code_hash, state in hashes.items() if state is None) == ["sha256+$argon2id$"] * 2
    client.post("/logout", data={"csrf_token": csrf_token(client, "/treasury")})

    # The codes not used yet keep working after their hashes were upgraded; the used one does not.
    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, codes[0]).status_code == 400
    assert pass_second_factor(client, codes[2]).status_code == 303


def test_a_totp_sign_in_upgrades_old_recovery_codes_without_using_them(client: FlaskClient) -> None:
    user = staff_member(AgencyFactory(), "view")
    user_id = user.id
    digest = hashlib.sha256(b"99999aaaaa").hexdigest()
    db.session.add(StaffRecoveryCode(user_id=user_id, code_hash=digest, created_at=MORNING))
    db.session.commit()
    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client).status_code == 303
    [(code_hash, state)] = _stored_hashes(user_id).items()
    assert code_hash.startswith("sha256+$argon2id$") and state is None


@pytest.mark.parametrize("code", ["00000-00000", "0a1b2-c3d4f", "0a1b2c3d4e0", "0a1b2-c3d4", "not a code"])
def test_a_wrong_recovery_code_fails(client: FlaskClient, code: str) -> None:
    user = staff_member(AgencyFactory(), "view")
    user_id = user.id
    db.session.add(
        StaffRecoveryCode(user_id=user_id, code_hash=hashlib.sha256(b"0a1b2c3d4e").hexdigest(), created_at=MORNING)
    )
    db.session.add(StaffRecoveryCode(user_id=user_id, code_hash=_hash_recovery_code("fffff-00000"), created_at=MORNING))
    db.session.commit()
    log_in(client, user.email, PASSWORD)
    assert pass_second_factor(client, code).status_code == 400
    assert list(_stored_hashes(user_id).values()) == [None, None]


def test_wrong_codes_are_limited_per_account_and_logged_without_the_code(
    client: FlaskClient, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    user = staff_member(AgencyFactory(), "view")
    log_in(client, user.email, PASSWORD)
    saved = app.config["TREASURY_2FA_RATE_LIMIT"]
    app.config["TREASURY_2FA_RATE_LIMIT"] = "3 per minute"
    try:
        with caplog.at_level(logging.WARNING, logger="civicpay.treasury"):
            statuses = [pass_second_factor(client, f"11111{n}").status_code for n in range(3)]
            blocked = pass_second_factor(client, totp_code())  # even the right code must wait
    finally:
        app.config["TREASURY_2FA_RATE_LIMIT"] = saved
    assert statuses == [400, 400, 400]
    assert blocked.status_code == 429
    refusals = [record.getMessage() for record in caplog.records if "Refused" in record.getMessage()]
    assert len(refusals) == 3
    assert all(f"user {user.id}" in message and "11111" not in message for message in refusals)
    assert STAFF_TOTP_SECRET not in caplog.text


def test_reset_2fa_command_makes_the_person_enrol_again(app: Flask, client: FlaskClient) -> None:
    email = staff_member(AgencyFactory(), "view").email  # the command's commit ends the session that held it
    result = app.test_cli_runner().invoke(args=["treasury", "reset-2fa", email])
    assert result.exit_code == 0, result.output
    log_in(client, email, PASSWORD)
    assert client.get("/treasury").headers["Location"].startswith("/treasury/2fa/setup")
