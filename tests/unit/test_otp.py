"""HOTP and TOTP (securelogin.domain.otp) against RFC 4226 / RFC 6238 and independent tools.

Proof comes from three directions (docs/test-vectors.md):
* every published vector of RFC 4226 Appendix D and RFC 6238 Appendix B;
* the independent ``oath`` package (PyPI) on random keys and counters;
* ``oathtool`` (OATH Toolkit), when installed, reading our otpauth secrets.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import oath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securelogin.domain import otp
from securelogin.domain.otp import (
    base32_secret,
    dynamic_truncation,
    hotp,
    match_totp,
    otpauth_uri,
    totp,
    totp_step,
)
from tests.unit.vectors import load_vectors

# RFC 4226 Appendix D and RFC 6238 Appendix B: the ASCII seed "12345678901234567890";
# RFC 6238 erratum 2866: extended to 32 and 64 bytes for SHA256 and SHA512.
RFC_SEED_20 = b"12345678901234567890"
RFC_SEED_32 = b"12345678901234567890123456789012"
RFC_SEED_64 = b"1234567890123456789012345678901234567890123456789012345678901234"
RFC6238_SEEDS = {"SHA1": RFC_SEED_20, "SHA256": RFC_SEED_32, "SHA512": RFC_SEED_64}

HOTP_VECTORS = load_vectors("rfc4226-appendix-d.txt")
TOTP_VECTORS = load_vectors("rfc6238-appendix-b.txt")

KEY = bytes(range(1, 21))  # any 20-byte key for behaviour tests
NOW = 1_700_000_000  # any time; its step is NOW // 30
STEP = NOW // 30

HYPOTHESIS = settings(database=None, deadline=None, max_examples=300)
OATHTOOL = shutil.which("oathtool")


def _hotp_id(row: list[str]) -> str:
    return f"count-{row[0]}"


def _totp_id(row: list[str]) -> str:
    return f"{row[0]}-{row[4]}"


# --- RFC 4226 Appendix D -------------------------------------------------------------


def test_rfc4226_file_holds_all_ten_vectors() -> None:
    assert [int(row[0]) for row in HOTP_VECTORS] == list(range(10))


@pytest.mark.parametrize("row", HOTP_VECTORS, ids=_hotp_id)
def test_hotp_matches_rfc4226_appendix_d(row: list[str]) -> None:
    count, _, _, _, expected = row
    assert hotp(RFC_SEED_20, int(count)) == expected


@pytest.mark.parametrize("row", HOTP_VECTORS, ids=_hotp_id)
def test_dynamic_truncation_matches_rfc4226_table_2(row: list[str]) -> None:
    _, hmac_hex, truncated_hex, truncated_decimal, _ = row
    value = dynamic_truncation(bytes.fromhex(hmac_hex))
    assert value == int(truncated_decimal) == int(truncated_hex, 16)


@pytest.mark.parametrize("row", HOTP_VECTORS, ids=_hotp_id)
def test_rfc4226_hmac_is_hmac_sha1_of_the_8_byte_big_endian_counter(row: list[str]) -> None:
    """Checks our reading of the table with the standard library, not the module under test."""
    count, hmac_hex = row[0], row[1]
    digest = hmac.new(RFC_SEED_20, int(count).to_bytes(8, "big"), hashlib.sha1).hexdigest()
    assert digest == hmac_hex


# --- RFC 6238 Appendix B -------------------------------------------------------------


def test_rfc6238_file_holds_all_eighteen_vectors() -> None:
    assert len(TOTP_VECTORS) == 18
    assert {row[4] for row in TOTP_VECTORS} == {"SHA1", "SHA256", "SHA512"}


@pytest.mark.parametrize("row", TOTP_VECTORS, ids=_totp_id)
def test_totp_matches_rfc6238_appendix_b(row: list[str]) -> None:
    seconds, _, _, expected, mode = row
    code = totp(RFC6238_SEEDS[mode], int(seconds), digits=8, algorithm=mode.lower())
    assert code == expected


@pytest.mark.parametrize("row", TOTP_VECTORS, ids=_totp_id)
def test_totp_step_matches_rfc6238_value_of_t(row: list[str]) -> None:
    seconds, _, t_hex, _, _ = row
    assert totp_step(int(seconds)) == int(t_hex, 16)


@pytest.mark.parametrize("row", TOTP_VECTORS, ids=_totp_id)
def test_rfc6238_utc_column_is_the_same_instant_as_the_seconds(row: list[str]) -> None:
    seconds, utc_time = int(row[0]), row[1]
    assert datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == utc_time


@pytest.mark.parametrize("row", TOTP_VECTORS, ids=_totp_id)
def test_match_totp_finds_every_rfc6238_vector(row: list[str]) -> None:
    seconds, _, t_hex, code, mode = row
    step = match_totp(
        RFC6238_SEEDS[mode],
        code,
        int(seconds),
        last_used_step=None,
        digits=8,
        algorithm=mode.lower(),
    )
    assert step == int(t_hex, 16)


# --- TOTP verification behaviour (RFC 6238 §5.2) -------------------------------------


def test_totp_accepts_current_step() -> None:
    code = totp(KEY, NOW)
    assert match_totp(KEY, code, NOW, last_used_step=None) == STEP


def test_totp_accepts_previous_step() -> None:
    code = totp(KEY, NOW - 30)
    assert match_totp(KEY, code, NOW, last_used_step=None) == STEP - 1


def test_totp_refuses_two_steps_back() -> None:
    code = totp(KEY, NOW - 60)
    assert _differs_from_newer_codes(code, STEP - 2)
    assert match_totp(KEY, code, NOW, last_used_step=None) is None


def test_totp_accepts_two_steps_back_only_when_asked_to() -> None:
    code = totp(KEY, NOW - 60)
    assert match_totp(KEY, code, NOW, last_used_step=None, steps_back=2) == STEP - 2


def test_totp_refuses_previous_step_when_steps_back_is_zero() -> None:
    code = totp(KEY, NOW - 30)
    assert _differs_from_newer_codes(code, STEP - 1)
    assert match_totp(KEY, code, NOW, last_used_step=None, steps_back=0) is None


def test_totp_refuses_next_step() -> None:
    code = totp(KEY, NOW + 30)
    assert _differs_from_newer_codes(code, STEP - 1)
    assert code != totp(KEY, NOW - 30)
    assert match_totp(KEY, code, NOW, last_used_step=None) is None


def test_totp_refuses_step_already_used() -> None:
    code = totp(KEY, NOW)
    assert match_totp(KEY, code, NOW, last_used_step=STEP) is None


def test_totp_refuses_earlier_step_once_a_later_one_was_used() -> None:
    code = totp(KEY, NOW - 30)
    assert match_totp(KEY, code, NOW, last_used_step=STEP) is None


def test_totp_accepts_current_step_after_previous_step_was_used() -> None:
    code = totp(KEY, NOW)
    assert match_totp(KEY, code, NOW, last_used_step=STEP - 1) == STEP


def test_totp_replayed_code_is_refused_within_the_same_step() -> None:
    code = totp(KEY, NOW)
    accepted = match_totp(KEY, code, NOW, last_used_step=None)
    assert accepted == STEP
    assert match_totp(KEY, code, NOW + 29, last_used_step=accepted) is None


def test_totp_accepts_nothing_while_the_clock_is_behind_the_last_used_step() -> None:
    code = totp(KEY, NOW)
    assert match_totp(KEY, code, NOW, last_used_step=STEP + 1) is None


def test_totp_refuses_wrong_code() -> None:
    wrong = f"{(int(totp(KEY, NOW)) + 1) % 10**6:06d}"
    assert _differs_from_newer_codes(wrong, STEP - 2)
    assert match_totp(KEY, wrong, NOW, last_used_step=None) is None


def test_totp_match_at_the_epoch_looks_at_no_negative_step() -> None:
    code = totp(KEY, 0)
    assert match_totp(KEY, code, 0, last_used_step=None, steps_back=3) == 0


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "12345a", " 123456", "123456\n", "١٢٣٤٥٦", "１２３４５６"],
    ids=["empty", "short", "long", "letter", "space", "newline", "arabic-indic", "fullwidth"],
)
def test_totp_refuses_malformed_codes_without_error(code: str) -> None:
    assert match_totp(KEY, code, NOW, last_used_step=None) is None


def test_totp_match_works_for_8_digit_sha512() -> None:
    key = RFC_SEED_64
    code = totp(key, NOW, digits=8, algorithm="sha512")
    found = match_totp(key, code, NOW, last_used_step=None, digits=8, algorithm="sha512")
    assert found == STEP


def test_totp_match_rejects_negative_steps_back() -> None:
    with pytest.raises(ValueError, match="steps_back"):
        match_totp(KEY, "123456", NOW, last_used_step=None, steps_back=-1)


@given(
    key=st.binary(min_size=16, max_size=64),
    unix_time=st.integers(min_value=60, max_value=2**40),
    offset=st.integers(min_value=0, max_value=1),
)
@HYPOTHESIS
def test_totp_match_returns_the_newest_step_with_that_code(
    key: bytes, unix_time: int, offset: int
) -> None:
    current = totp_step(unix_time)
    code = totp(key, unix_time - 30 * offset)
    newest = next(s for s in (current, current - 1) if hotp(key, s) == code)
    assert match_totp(key, code, unix_time, last_used_step=None) == newest


# --- Argument checking ---------------------------------------------------------------


def test_hotp_rejects_a_key_shorter_than_128_bits() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        hotp(b"x" * 15, 0)


@pytest.mark.parametrize("digits", [0, 5, 7, 9, 10])
def test_hotp_rejects_unsupported_digit_counts(digits: int) -> None:
    with pytest.raises(ValueError, match="6 or 8 digits"):
        hotp(KEY, 0, digits=digits)


@pytest.mark.parametrize("algorithm", ["md5", "SHA1", "sha224", ""])
def test_hotp_rejects_unknown_algorithms(algorithm: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        hotp(KEY, 0, algorithm=algorithm)


@pytest.mark.parametrize("counter", [-1, 2**64])
def test_hotp_rejects_counters_outside_64_bits(counter: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        hotp(KEY, counter)


def test_hotp_accepts_the_largest_counter() -> None:
    assert len(hotp(KEY, 2**64 - 1)) == 6


def test_totp_step_rejects_times_before_the_epoch() -> None:
    with pytest.raises(ValueError, match="epoch"):
        totp_step(-1)


@pytest.mark.parametrize("step_seconds", [0, -30])
def test_totp_step_rejects_non_positive_steps(step_seconds: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        totp_step(NOW, step_seconds=step_seconds)


def test_totp_step_uses_exact_integer_division_far_in_the_future() -> None:
    far = 2**60 + 29  # float division would round this
    assert totp_step(far) == far // 30


def test_dynamic_truncation_rejects_digests_shorter_than_sha1() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        dynamic_truncation(b"\x00" * 19)


# --- Independent implementations -----------------------------------------------------


@given(
    key=st.binary(min_size=16, max_size=80),
    counter=st.integers(min_value=0, max_value=2**64 - 1),
    digits=st.sampled_from([6, 8]),
    algorithm=st.sampled_from(["sha1", "sha256", "sha512"]),
)
@HYPOTHESIS
def test_hotp_matches_independent_oath_package_on_random_inputs(
    key: bytes, counter: int, digits: int, algorithm: str
) -> None:
    expected = oath.hotp(
        key.hex(), counter, format=f"dec{digits}", hash=getattr(hashlib, algorithm)
    )
    assert hotp(key, counter, digits=digits, algorithm=algorithm) == expected


@pytest.mark.skipif(OATHTOOL is None, reason="oathtool (OATH Toolkit) is not installed")
@pytest.mark.parametrize("row", TOTP_VECTORS, ids=_totp_id)
def test_oathtool_agrees_with_rfc6238_vectors_from_our_base32_secret(row: list[str]) -> None:
    seconds, _, _, expected, mode = row
    secret = base32_secret(RFC6238_SEEDS[mode])
    assert _oathtool_totp(secret, int(seconds), digits=8, algorithm=mode.lower()) == expected


# --- Base32 and otpauth URIs ---------------------------------------------------------


def test_base32_secret_of_the_rfc_seed() -> None:
    assert base32_secret(RFC_SEED_20) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


@given(secret=st.binary(min_size=1, max_size=80))
@HYPOTHESIS
def test_base32_secret_is_unpadded_rfc4648_base32(secret: bytes) -> None:
    text = base32_secret(secret)
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert base64.b32decode(text + "=" * (-len(text) % 8)) == secret


def test_otpauth_uri_has_the_key_uri_format() -> None:
    uri = otpauth_uri(RFC_SEED_20, account="alice", issuer="Example")
    assert uri == (
        "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        "&issuer=Example&algorithm=SHA1&digits=6&period=30"
    )


def test_otpauth_uri_percent_encodes_label_and_parameters() -> None:
    uri = otpauth_uri(KEY, account="alice smith@example.com", issuer="Acme Bank & Co/UK")
    assert uri.startswith("otpauth://totp/Acme%20Bank%20%26%20Co%2FUK:alice%20smith%40example.com?")
    assert "&issuer=Acme%20Bank%20%26%20Co%2FUK&" in uri
    assert "+" not in uri


def test_otpauth_uri_round_trips_with_oathtool_secret_format() -> None:
    secret = bytes(range(100, 121))  # 21 bytes: base32 would need "=" padding
    uri = otpauth_uri(secret, account="bob", issuer="Secure Login", digits=8, algorithm="sha256")
    parts = urlsplit(uri)
    params = dict(parse_qsl(parts.query, strict_parsing=True))
    assert (parts.scheme, parts.netloc, unquote(parts.path)) == (
        "otpauth",
        "totp",
        "/Secure Login:bob",
    )
    assert params == {
        "secret": base32_secret(secret),
        "issuer": "Secure Login",
        "algorithm": "SHA256",
        "digits": "8",
        "period": "30",
    }
    encoded = params["secret"]
    assert "=" not in encoded
    assert base64.b32decode(encoded + "=" * (-len(encoded) % 8)) == secret
    if OATHTOOL is not None:  # the secret as an app would type it into oathtool -b
        expected = totp(secret, NOW, digits=8, algorithm="sha256")
        assert _oathtool_totp(encoded, NOW, digits=8, algorithm="sha256") == expected


@pytest.mark.parametrize(
    ("account", "issuer"),
    [("alice", "Evil:Corp"), ("al:ice", "Example"), ("", "Example"), ("alice", "")],
    ids=["colon-in-issuer", "colon-in-account", "empty-account", "empty-issuer"],
)
def test_otpauth_uri_rejects_unusable_labels(account: str, issuer: str) -> None:
    with pytest.raises(ValueError, match="otpauth URI"):
        otpauth_uri(KEY, account=account, issuer=issuer)


def test_otpauth_uri_rejects_a_secret_shorter_than_128_bits() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        otpauth_uri(b"x" * 10, account="alice", issuer="Example")


# --- Purity --------------------------------------------------------------------------


def test_otp_module_imports_no_clock_randomness_or_io() -> None:
    assert _imported_modules(Path(otp.__file__)) <= {
        "__future__",
        "base64",
        "collections.abc",
        "cryptography.hazmat.primitives.hashes",
        "cryptography.hazmat.primitives.twofactor.hotp",
        "hmac",
        "typing",
        "urllib.parse",
    }


# --- Helpers -------------------------------------------------------------------------


def _differs_from_newer_codes(code: str, step: int) -> bool:
    """True when no step after ``step`` up to STEP has ``code``: the test means what it says."""
    return all(hotp(KEY, s) != code for s in range(step + 1, STEP + 1))


def _oathtool_totp(secret_base32: str, unix_time: int, *, digits: int, algorithm: str) -> str:
    assert OATHTOOL is not None
    completed = subprocess.run(
        [
            OATHTOOL,
            f"--totp={algorithm}",
            "--base32",
            f"--digits={digits}",
            f"--now=@{unix_time}",
            secret_base32,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return completed.stdout.strip()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names
