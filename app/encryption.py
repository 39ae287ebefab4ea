"""Secrets stored in the database, encrypted (staff TOTP secrets; later provider credentials).

Fernet (the ``cryptography`` package) rather than a hand-made cipher: authenticated encryption
(AES-128-CBC + HMAC-SHA256) whose tokens refuse to decrypt if altered or under another key. The
key comes from DATA_ENCRYPTION_KEY, or else is derived from SECRET_KEY with HKDF, so a stolen
database alone does not give an attacker the staff's second factors.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

__all__ = ["DecryptionError", "decrypt_secret", "encrypt_secret"]


class DecryptionError(ValueError):
    """A stored secret could not be decrypted: altered, or encrypted under another key."""


def _fernet(key: str | None = None) -> Fernet:
    material = key or current_app.config.get("DATA_ENCRYPTION_KEY") or current_app.config["SECRET_KEY"]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"civicpay.data-encryption").derive(
        material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(plaintext: str, key: str | None = None) -> str:
    """The secret encrypted for storage (an ASCII token of about 140 characters for 32 bytes).

    ``key`` overrides the configured key material (for tools and tests outside an app context).
    """
    return _fernet(key).encrypt(plaintext.encode()).decode("ascii")


def decrypt_secret(token: str, key: str | None = None) -> str:
    """The secret back from its stored token; raises DecryptionError if it cannot be read."""
    try:
        return _fernet(key).decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise DecryptionError(
            "A stored secret cannot be decrypted: DATA_ENCRYPTION_KEY (or SECRET_KEY) has changed."
        ) from None
