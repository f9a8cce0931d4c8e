"""Secrets at rest (R5.7): AES-256-GCM under ``SECURELOGIN_SECRET_KEY``.

A sealed value is ``v1.<key id>.<base64url(nonce | ciphertext | tag)>``. The key id (the
first 8 hex digits of SHA-256 of the key) says which key sealed it, so that
``securelogin secrets rotate`` can open values under the old key and seal them under the
new one. The ``context`` (e.g. the device id) is bound as associated data: a sealed value
copied to another row does not open there.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random nonces are safe far beyond our volumes
VERSION = "v1"


class SecretKeyError(ValueError):
    """The configured key is not a urlsafe-base64 encoding of 32 bytes."""


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        raise SecretKeyError("SECURELOGIN_SECRET_KEY is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(
            "SECURELOGIN_SECRET_KEY must encode 32 bytes "
            "(make one with: securelogin secrets generate)"
        )
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class AesGcmSecretBox:
    """SecretBox port: seals with the current key, opens with the current or older keys."""

    def __init__(self, key: bytes, *older_keys: bytes) -> None:
        self._current = (key_id(key), AESGCM(key))
        self._keys = {key_id(k): AESGCM(k) for k in (key, *older_keys)}

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        ident, aead = self._current
        sealed = aead.encrypt(nonce, plaintext, context.encode("utf-8"))
        return f"{VERSION}.{ident}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sealed: str, context: str) -> bytes:
        version, ident, body = sealed.split(".", 2)
        if version != VERSION or ident not in self._keys:
            raise ValueError("sealed with an unknown key")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._keys[ident].decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")
            )
        except InvalidTag:
            raise ValueError("sealed value does not open: wrong key or context") from None

    def is_current(self, sealed: str) -> bool:
        return sealed.split(".", 2)[1] == self._current[0]
