"""One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), as pure functions.

Nothing here reads a clock or draws randomness: the caller passes the Unix time and the
secret, so every function is a plain function of its arguments and is proven against the
published test vectors (tests/vectors/, docs/test-vectors.md).

HOTP, RFC 4226 §5.3: ``HOTP(K, C) = Truncate(HMAC-SHA-1(K, C))``, where C is an 8-byte
big-endian counter and Truncate is the "dynamic truncation" of §5.3 (a 31-bit number taken
at an offset given by the last nibble of the HMAC), reduced modulo ``10**Digit``. The
HMAC and truncation come from ``cryptography``'s HOTP class; ``dynamic_truncation`` below
is our own copy of §5.3, needed by OCRA (ocra.py), which truncates HMACs of other messages.

TOTP, RFC 6238 §4.2: ``TOTP = HOTP(K, T)`` with ``T = floor((unix_time - T0) / X)``,
T0 = 0 and X = 30 seconds by default. §1.2 extends the HMAC to SHA-256 and SHA-512.
We compute T with integer floor division and call HOTP ourselves rather than use
``cryptography``'s TOTP class, whose ``generate`` divides in floating point.

Replay, RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the OTP after
the successful validation has been issued for the first OTP". ``match_totp`` therefore
never matches a step at or before the last step already accepted, and returns the step
it matched so the caller can store it. §5.2 also recommends accepting at most one step
of transmission delay, hence ``steps_back=1`` by default.

Provisioning: ``otpauth_uri`` builds the Key Uri Format used by authenticator apps
(https://github.com/google/google-authenticator/wiki/Key-Uri-Format), with the secret
in RFC 4648 base32 without padding, as those apps and ``oathtool --totp -b`` read it.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.hashes import SHA1, SHA256, SHA512
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

MIN_KEY_BYTES: Final = 16
"""RFC 4226 §4 R6: "The length of the shared secret MUST be at least 128 bits"."""

SUPPORTED_DIGITS: Final = frozenset({6, 8})
"""RFC 4226 §5.3 asks for at least 6 digits; authenticator apps offer 6 or 8."""

SUPPORTED_ALGORITHMS: Final = ("sha1", "sha256", "sha512")
"""RFC 4226 §5 (HMAC-SHA-1) and RFC 6238 §1.2 (HMAC-SHA-256, HMAC-SHA-512)."""

MAX_COUNTER: Final = 2**64 - 1
"""RFC 4226 §5.1: C is an 8-byte counter value."""

DEFAULT_STEP_SECONDS: Final = 30
"""RFC 6238 §4.1 (X, default 30 seconds) and §5.2 (30 seconds recommended)."""

MIN_DIGEST_BYTES: Final = 20
"""RFC 4226 §5.3: the offset is at most 15 and 4 bytes are read, so 20 bytes (SHA-1) suffice."""

_HASHES: Final[Mapping[str, type[SHA1] | type[SHA256] | type[SHA512]]] = {
    "sha1": SHA1,
    "sha256": SHA256,
    "sha512": SHA512,
}


def dynamic_truncation(digest: bytes) -> int:
    """RFC 4226 §5.3 DT: the 31-bit number at the offset named by the digest's last nibble."""
    if len(digest) < MIN_DIGEST_BYTES:
        raise ValueError(f"dynamic truncation needs an HMAC of at least {MIN_DIGEST_BYTES} bytes")
    offset = digest[-1] & 0x0F
    return int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF


def hotp(key: bytes, counter: int, *, digits: int = 6, algorithm: str = "sha1") -> str:
    """RFC 4226 HOTP value for ``counter``: ``digits`` decimal digits, zero-padded."""
    _check_key(key)
    _check_digits(digits)
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError("an HOTP counter is an unsigned 64-bit number (RFC 4226 §5.1)")
    generator = HOTP(key, digits, _hash_algorithm(algorithm))
    return generator.generate(counter).decode("ascii")


def totp_step(unix_time: int, *, step_seconds: int = DEFAULT_STEP_SECONDS) -> int:
    """RFC 6238 §4.2 T: whole steps of ``step_seconds`` since the Unix epoch (T0 = 0)."""
    if step_seconds <= 0:
        raise ValueError("a TOTP time step is a positive number of seconds")
    if unix_time < 0:
        raise ValueError("TOTP counts time steps from the Unix epoch; the time is before it")
    return unix_time // step_seconds


def totp(
    key: bytes,
    unix_time: int,
    *,
    digits: int = 6,
    algorithm: str = "sha1",
    step_seconds: int = DEFAULT_STEP_SECONDS,
) -> str:
    """RFC 6238 TOTP value at ``unix_time``: HOTP of the time step."""
    step = totp_step(unix_time, step_seconds=step_seconds)
    return hotp(key, step, digits=digits, algorithm=algorithm)


def match_totp(
    key: bytes,
    code: str,
    unix_time: int,
    *,
    last_used_step: int | None,
    steps_back: int = 1,
    step_seconds: int = DEFAULT_STEP_SECONDS,
    digits: int = 6,
    algorithm: str = "sha1",
) -> int | None:
    """The time step ``code`` is valid for, or None; never a step at or before ``last_used_step``.

    Considers the current step and ``steps_back`` steps before it, newest first. Every
    candidate is computed and compared in constant time (``hmac.compare_digest``), so the
    time taken does not depend on which candidate, if any, matched. The caller stores the
    returned step as the new ``last_used_step`` (RFC 6238 §5.2: no OTP is accepted twice).
    """
    _check_key(key)
    _check_digits(digits)
    _hash_algorithm(algorithm)
    if steps_back < 0:
        raise ValueError("steps_back counts earlier time steps and cannot be negative")
    current = totp_step(unix_time, step_seconds=step_seconds)
    if not _is_well_formed_code(code, digits):
        return None
    matched: int | None = None
    for step in _candidate_steps(current, steps_back, last_used_step):
        expected = hotp(key, step, digits=digits, algorithm=algorithm)
        is_match = hmac.compare_digest(expected.encode("ascii"), code.encode("ascii"))
        if is_match and matched is None:
            matched = step
    return matched


def base32_secret(secret: bytes) -> str:
    """RFC 4648 §6 base32 of ``secret`` without "=" padding, as authenticator apps show it."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def otpauth_uri(
    secret: bytes,
    *,
    account: str,
    issuer: str,
    digits: int = 6,
    algorithm: str = "sha1",
    step_seconds: int = DEFAULT_STEP_SECONDS,
) -> str:
    """The ``otpauth://totp/...`` URI (Key Uri Format) that enrols ``secret`` in an app.

    The label is ``Issuer:account``, each part percent-encoded (spaces as %20); the
    issuer is repeated in the ``issuer`` parameter as the format recommends.
    """
    _check_key(secret)
    _check_digits(digits)
    _hash_algorithm(algorithm)
    if step_seconds <= 0:
        raise ValueError("a TOTP time step is a positive number of seconds")
    _check_label_part(issuer, "issuer")
    _check_label_part(account, "account")
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    parameters = [
        ("secret", base32_secret(secret)),
        ("issuer", issuer),
        ("algorithm", algorithm.upper()),
        ("digits", str(digits)),
        ("period", str(step_seconds)),
    ]
    return f"otpauth://totp/{label}?{urlencode(parameters, quote_via=quote)}"


def _candidate_steps(current: int, steps_back: int, last_used_step: int | None) -> list[int]:
    """Steps ``current`` down to ``current - steps_back``, newest first, none reused or < 0."""
    oldest = max(current - steps_back, 0)
    if last_used_step is not None:
        oldest = max(oldest, last_used_step + 1)
    return list(range(current, oldest - 1, -1))


def _is_well_formed_code(code: str, digits: int) -> bool:
    """``digits`` ASCII decimal digits; anything else can never match."""
    return len(code) == digits and code.isascii() and code.isdigit()


def _hash_algorithm(name: str) -> SHA1 | SHA256 | SHA512:
    """The ``cryptography`` hash for ``sha1``, ``sha256`` or ``sha512``."""
    factory = _HASHES.get(name)
    if factory is None:
        raise ValueError(f"the OTP algorithm must be one of {', '.join(SUPPORTED_ALGORITHMS)}")
    return factory()


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"an OTP secret must be at least {MIN_KEY_BYTES} bytes (RFC 4226 §4 R6)")


def _check_digits(digits: int) -> None:
    if digits not in SUPPORTED_DIGITS:
        raise ValueError("an OTP has 6 or 8 digits")


def _check_label_part(value: str, name: str) -> None:
    """Key Uri Format: neither the issuer nor the account may be empty or contain a colon."""
    if not value or ":" in value:
        raise ValueError(f"the {name} of an otpauth URI must be non-empty and have no colon")
