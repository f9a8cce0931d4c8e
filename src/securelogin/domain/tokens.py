"""Opaque bearer tokens (sessions, staff tokens): made from random bytes, stored as digests.

Tokens carry at least 256 bits of randomness, so a fast digest (SHA-256) is the right way
to store them: nothing can be guessed, and lookups stay cheap (R4.5: at least 128 bits,
stored only as a hash).
"""

from __future__ import annotations

import base64
import hashlib

TOKEN_BYTES = 32  # 256 bits; R4.5 asks for at least 128
MAX_TOKEN_LENGTH = 128  # anything longer is not one of ours


def encode_token(prefix: str, random_bytes: bytes) -> str:
    """A printable token: ``prefix`` plus URL-safe base64 of the random bytes."""
    if len(random_bytes) < TOKEN_BYTES:
        raise ValueError("a token needs at least 256 random bits")
    return prefix + base64.urlsafe_b64encode(random_bytes).rstrip(b"=").decode("ascii")


def token_digest(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
