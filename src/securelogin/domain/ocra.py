"""OCRA, the OATH Challenge-Response Algorithm (RFC 6287), as pure functions.

Our challenge card answers a numeric challenge with a code bound to the user's PIN; its
suite is ``CHALLENGE_CARD_SUITE``. No maintained library implements OCRA well, so this
module follows the RFC directly and is proven against every vector of RFC 6287
Appendix C and against the independent ``oath`` package (docs/test-vectors.md).

RFC 6287 §5.1, the message that is MACed ("DataInput"), in this order::

    OCRASuite | 00 | [C] | Q | [P] | [S] | [T]

* OCRASuite: the suite string itself, in ASCII, then one 0x00 byte.
* C: the counter, 8 bytes, big-endian.
* Q: the challenge question(s), always 128 bytes: the encoded question, padded on the
  right with zero bytes. N (numeric): the decimal number written in hexadecimal, the hex
  digits left-aligned (an odd count gets a final 0 nibble), then turned into bytes.
  H (hexadecimal): the hex digits, left-aligned the same way. A (alphanumeric): the
  ASCII bytes. These encodings are those of the RFC's reference code (Appendix A), which
  produced the Appendix C vectors. An N question is a number: "012345" and "12345" are
  the same question, so challenges should be drawn as fixed-length digit strings.
* P: the hash of the PIN or password, as many bytes as the suite's hash (SHA-1: 20).
* S: the session information, exactly the suite's ``nnn`` bytes.
* T: the number of time steps since the Unix epoch, 8 bytes, big-endian.

RFC 6287 §5.2, the response: ``HOTP-H-t`` is HMAC-H(K, DataInput), then RFC 4226
dynamic truncation, modulo ``10**t``, written with ``t`` digits.

RFC 6287 §6, the suite string ``Algorithm:CryptoFunction:DataInput``, parsed strictly
(upper case, no defaults, elements in the order above, each at most once):

* Algorithm: ``OCRA-1`` (§6.1, the only version).
* CryptoFunction: ``HOTP-SHA1-t``, ``HOTP-SHA256-t`` or ``HOTP-SHA512-t``, t = 0 or 4-10
  (§5.2, §6.2).
* DataInput (§6.3): ``[C-]QFxx[-PH][-Snnn][-TG]``: F is A, N or H and xx, 04-64, is the
  longest challenge (Table 2, "Up to Length"); H is SHA1, SHA256 or SHA512; nnn, 001-512,
  is the session length in bytes (§5.1: "up to 512 bytes"); G is 1-59 S, 1-59 M or 1-48 H
  (Table 3 as corrected by verified erratum 3729, which removed "0H").

RFC 6287 §7.2, mutual challenge-response: the server's response is computed over
QC | QS, the client's over QS | QC; each challenge is at most xx characters, so the
``question`` is then the pair of challenges, in that order.

Two choices a reviewer should know of:

* t = 0 ("no truncation, the full HMAC value is used", §5.2) parses, but
  ``ocra_response`` refuses it: the RFC fixes no text form for the full HMAC, the
  reference code and other implementations disagree, and no published vector covers it.
* t = 10 is accepted as the RFC allows, though the 31-bit truncated value makes
  10-digit responses biased (reported erratum 3730); prefer 8 digits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from securelogin.domain.otp import MIN_KEY_BYTES, dynamic_truncation

HashName = Literal["sha1", "sha256", "sha512"]
QuestionFormat = Literal["A", "N", "H"]

CHALLENGE_CARD_SUITE: Final = "OCRA-1:HOTP-SHA256-8:QN06-PSHA1"
"""Our challenge card: HMAC-SHA-256, 8-digit response, numeric challenge of up to 6
digits, SHA-1 hash of the PIN (see ``pin_hash``)."""

ALGORITHM: Final = "OCRA-1"
"""RFC 6287 §6.1: the only OCRA version."""

SEPARATOR: Final = b"\x00"
"""RFC 6287 §5.1: the byte between the suite string and the data inputs."""

QUESTION_BYTES: Final = 128
"""RFC 6287 §5.1 Q: 128 bytes, the question padded with zeros on the right."""

MIN_QUESTION_LENGTH: Final = 4
MAX_QUESTION_LENGTH: Final = 64
"""RFC 6287 §6.3 Table 2: the xx of QFxx is 04-64."""

MAX_SESSION_BYTES: Final = 512
"""RFC 6287 §5.1 S: session information of up to 512 bytes."""

MAX_EIGHT_BYTE_VALUE: Final = 2**64 - 1
"""RFC 6287 §5.1: C and T are 8-byte unsigned integers."""

TIME_UNIT_SECONDS: Final[Mapping[str, int]] = {"S": 1, "M": 60, "H": 3600}
MAX_TIME_STEP_COUNT: Final[Mapping[str, int]] = {"S": 59, "M": 59, "H": 48}
"""RFC 6287 §6.3 Table 3, with erratum 3729 (hours 1-48)."""

DIGEST_BYTES: Final[Mapping[HashName, int]] = {"sha1": 20, "sha256": 32, "sha512": 64}
"""Output sizes of SHA-1 / SHA-256 / SHA-512 (FIPS 180-4): the length of P (§5.1)."""

_HASH_NAMES: Final[Mapping[str, HashName]] = {"1": "sha1", "256": "sha256", "512": "sha512"}
_QUESTION_FORMATS: Final[Mapping[str, QuestionFormat]] = {"A": "A", "N": "N", "H": "H"}

_QUESTION_ALPHABETS: Final[Mapping[QuestionFormat, frozenset[str]]] = {
    "A": frozenset(string.ascii_letters + string.digits),
    "N": frozenset(string.digits),
    "H": frozenset(string.hexdigits),
}

_FORMAT_NAMES: Final[Mapping[QuestionFormat, str]] = {
    "A": "alphanumeric (ASCII letters and digits)",
    "N": "numeric (ASCII digits)",
    "H": "hexadecimal (ASCII hex digits)",
}

_CRYPTO_FUNCTION: Final = re.compile(r"HOTP-SHA(?P<hash>1|256|512)-(?P<digits>0|[4-9]|10)")
_COUNTER: Final = re.compile(r"C")
_QUESTION: Final = re.compile(r"Q(?P<format>[ANH])(?P<length>[0-9]{2})")
_PASSWORD: Final = re.compile(r"PSHA(?P<hash>1|256|512)")
_SESSION: Final = re.compile(r"S(?P<length>[0-9]{3})")
_TIMESTAMP: Final = re.compile(r"T(?P<count>[1-9][0-9]?)(?P<unit>[SMH])")


@dataclass(frozen=True)
class OcraSuite:
    """A parsed OCRA suite (RFC 6287 §6); build one with ``parse_ocra_suite``.

    The fields always describe ``text`` (checked on construction): the text is MACed while
    the fields shape the rest of the message, so the two may never disagree.
    """

    text: str
    """The suite string; it is also the first part of the MACed message (§5.1)."""
    hash_name: HashName
    """The HMAC of the CryptoFunction (§6.2)."""
    digits: int
    """The truncation t: 4-10 digits, or 0 for none (§5.2)."""
    uses_counter: bool
    """C: an 8-byte counter is MACed (§6.3)."""
    question_format: QuestionFormat
    """F of QFxx: A (alphanumeric), N (numeric) or H (hexadecimal)."""
    question_length: int
    """xx of QFxx: the longest single challenge, in characters (4-64)."""
    password_hash_name: HashName | None
    """H of PH: the hash of the PIN or password that is MACed, if any."""
    session_length: int | None
    """nnn of Snnn: the length in bytes of the MACed session information, if any."""
    time_step_seconds: int | None
    """G of TG, in seconds: the size of the time step that T counts, if any."""

    def __post_init__(self) -> None:
        described = _SuiteFields(
            self.hash_name,
            self.digits,
            self.uses_counter,
            self.question_format,
            self.question_length,
            self.password_hash_name,
            self.session_length,
            self.time_step_seconds,
        )
        if described != _parse_suite_fields(self.text):
            raise ValueError(f"the OcraSuite fields do not describe its text {self.text!r}")


class _SuiteFields(NamedTuple):
    """What a suite string says, in the order of the ``OcraSuite`` fields after ``text``."""

    hash_name: HashName
    digits: int
    uses_counter: bool
    question_format: QuestionFormat
    question_length: int
    password_hash_name: HashName | None
    session_length: int | None
    time_step_seconds: int | None


class _DataInput(NamedTuple):
    """What the DataInput part of a suite string says (§6.3)."""

    uses_counter: bool
    question_format: QuestionFormat
    question_length: int
    password_hash_name: HashName | None
    session_length: int | None
    time_step_seconds: int | None


def parse_ocra_suite(text: str) -> OcraSuite:
    """Parse ``Algorithm:CryptoFunction:DataInput``; ValueError names what is wrong."""
    return OcraSuite(text, *_parse_suite_fields(text))


def pin_hash(pin: str) -> bytes:
    """The P input of a ``PSHA1`` suite: SHA-1 of the PIN's ASCII bytes (RFC 6287 §5.1)."""
    if not pin or not pin.isascii():
        raise ValueError("a PIN is a non-empty ASCII string")
    # SHA-1 is what the PSHA1 suite (and so our card) mandates; it is MACed, never stored.
    return hashlib.sha1(pin.encode("ascii")).digest()  # noqa: S324


def ocra_time_step(suite: OcraSuite, unix_time: int) -> int:
    """The T input at ``unix_time``: whole time steps of the suite since the Unix epoch."""
    if suite.time_step_seconds is None:
        raise ValueError(f"the OCRA suite {suite.text} has no timestamp (T)")
    if unix_time < 0:
        raise ValueError("OCRA counts time steps from the Unix epoch; the time is before it")
    return unix_time // suite.time_step_seconds


def ocra_data_input(
    suite: OcraSuite,
    *,
    question: str | tuple[str, str],
    counter: int | None = None,
    password_hash: bytes | None = None,
    session_info: bytes | None = None,
    timestamp: int | None = None,
) -> bytes:
    """The message MACed by ``ocra_response`` (RFC 6287 §5.1); see the module docstring.

    ``question`` is one challenge, or for mutual challenge-response (§7.2) the two
    challenges in the order they are MACed. An input the suite uses must be given, and
    one it does not use must not be.
    """
    return b"".join(
        (
            suite.text.encode("ascii"),
            SEPARATOR,
            _counter_bytes(suite, counter),
            _question_bytes(suite, question),
            _password_bytes(suite, password_hash),
            _session_bytes(suite, session_info),
            _timestamp_bytes(suite, timestamp),
        )
    )


def ocra_response(
    suite: OcraSuite,
    key: bytes,
    *,
    question: str | tuple[str, str],
    counter: int | None = None,
    password_hash: bytes | None = None,
    session_info: bytes | None = None,
    timestamp: int | None = None,
) -> str:
    """The OCRA response (RFC 6287 §5.2): HMAC of the data input, truncated to t digits.

    ``timestamp`` is the T input, a count of time steps (see ``ocra_time_step``);
    ``password_hash`` is the hashed PIN (see ``pin_hash``).
    """
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"an OCRA key must be at least {MIN_KEY_BYTES} bytes (RFC 4226 §4 R6)")
    if suite.digits == 0:
        raise ValueError("untruncated OCRA responses (HOTP-...-0) have no defined text form")
    message = ocra_data_input(
        suite,
        question=question,
        counter=counter,
        password_hash=password_hash,
        session_info=session_info,
        timestamp=timestamp,
    )
    digest = hmac.new(key, message, suite.hash_name).digest()
    code = dynamic_truncation(digest) % 10**suite.digits
    return str(code).zfill(suite.digits)


def verify_ocra_response(
    suite: OcraSuite,
    key: bytes,
    response: str,
    *,
    question: str | tuple[str, str],
    counter: int | None = None,
    password_hash: bytes | None = None,
    session_info: bytes | None = None,
    timestamp: int | None = None,
) -> bool:
    """Whether ``response`` is the OCRA response for these inputs, compared in constant time."""
    expected = ocra_response(
        suite,
        key,
        question=question,
        counter=counter,
        password_hash=password_hash,
        session_info=session_info,
        timestamp=timestamp,
    )
    if not response.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), response.encode("ascii"))


def _parse_suite_fields(text: str) -> _SuiteFields:
    """``Algorithm:CryptoFunction:DataInput`` (§6), or ValueError naming what is wrong."""
    parts = text.split(":")
    if len(parts) != 3:
        raise _malformed(text, "it must be Algorithm:CryptoFunction:DataInput")
    algorithm, crypto_function, data_input = parts
    if algorithm != ALGORITHM:
        raise _malformed(text, f"the algorithm must be {ALGORITHM}")
    hash_name, digits = _parse_crypto_function(text, crypto_function)
    inputs = _parse_data_input(text, data_input)
    return _SuiteFields(
        hash_name=hash_name,
        digits=digits,
        uses_counter=inputs.uses_counter,
        question_format=inputs.question_format,
        question_length=inputs.question_length,
        password_hash_name=inputs.password_hash_name,
        session_length=inputs.session_length,
        time_step_seconds=inputs.time_step_seconds,
    )


def _parse_crypto_function(text: str, crypto_function: str) -> tuple[HashName, int]:
    match = _CRYPTO_FUNCTION.fullmatch(crypto_function)
    if match is None:
        raise _malformed(text, "the crypto function must be HOTP-SHA1|SHA256|SHA512-t, t 0 or 4-10")
    return _HASH_NAMES[match["hash"]], int(match["digits"])


def _parse_data_input(text: str, data_input: str) -> _DataInput:
    """``[C-]QFxx[-PH][-Snnn][-TG]``, each element once and in this order (§6.3)."""
    elements = data_input.split("-")
    counter = _take(elements, _COUNTER)
    question = _take(elements, _QUESTION)
    if question is None:
        raise _malformed(text, "the data input needs a challenge QFxx (F: A, N or H), after C")
    password = _take(elements, _PASSWORD)
    session = _take(elements, _SESSION)
    timestamp = _take(elements, _TIMESTAMP)
    if elements:
        raise _malformed(
            text, f"unexpected data input {elements[0]!r}; the form is [C-]QFxx[-PH][-Snnn][-TG]"
        )
    return _DataInput(
        uses_counter=counter is not None,
        question_format=_QUESTION_FORMATS[question["format"]],
        question_length=_question_length(text, question["length"]),
        password_hash_name=None if password is None else _HASH_NAMES[password["hash"]],
        session_length=None if session is None else _session_length(text, session["length"]),
        time_step_seconds=None if timestamp is None else _time_step(text, timestamp),
    )


def _take(elements: list[str], pattern: re.Pattern[str]) -> re.Match[str] | None:
    """Remove and return the first element if it is ``pattern``; None (nothing removed) if not."""
    match = pattern.fullmatch(elements[0]) if elements else None
    if match is not None:
        del elements[0]
    return match


def _question_length(text: str, digits: str) -> int:
    length = int(digits)
    if not MIN_QUESTION_LENGTH <= length <= MAX_QUESTION_LENGTH:
        raise _malformed(text, "the challenge length xx of QFxx must be 04-64")
    return length


def _session_length(text: str, digits: str) -> int:
    length = int(digits)
    if not 1 <= length <= MAX_SESSION_BYTES:
        raise _malformed(text, f"the session length nnn of Snnn must be 001-{MAX_SESSION_BYTES}")
    return length


def _time_step(text: str, match: re.Match[str]) -> int:
    count, unit = int(match["count"]), match["unit"]
    if count > MAX_TIME_STEP_COUNT[unit]:
        raise _malformed(text, "the time step G of TG must be 1-59S, 1-59M or 1-48H")
    return count * TIME_UNIT_SECONDS[unit]


def _malformed(text: str, reason: str) -> ValueError:
    return ValueError(f"malformed OCRA suite {text!r}: {reason}")


def _counter_bytes(suite: OcraSuite, counter: int | None) -> bytes:
    _require_exactly_when(suite.uses_counter, counter, "counter (C)", suite)
    if counter is None:
        return b""
    return _eight_bytes(counter, "counter (C)")


def _question_bytes(suite: OcraSuite, question: str | tuple[str, str]) -> bytes:
    """Q: the challenge(s), encoded for the suite's format and zero-padded to 128 bytes."""
    challenges = (question,) if isinstance(question, str) else question
    if len(challenges) not in (1, 2):
        raise ValueError("the question is one challenge, or two for mutual challenge-response")
    for challenge in challenges:
        _check_challenge(suite, challenge)
    encoded = _encode_question(suite.question_format, "".join(challenges))
    if len(encoded) > QUESTION_BYTES:
        raise ValueError(f"the encoded question exceeds {QUESTION_BYTES} bytes")
    return encoded.ljust(QUESTION_BYTES, b"\x00")


def _check_challenge(suite: OcraSuite, challenge: str) -> None:
    """One challenge fits QFxx: 1 to xx characters, all of format F."""
    if not 1 <= len(challenge) <= suite.question_length:
        raise ValueError(
            f"a challenge of the OCRA suite {suite.text} has 1 to {suite.question_length} "
            "characters"
        )
    if not set(challenge) <= _QUESTION_ALPHABETS[suite.question_format]:
        raise ValueError(
            f"a challenge of the OCRA suite {suite.text} is {_FORMAT_NAMES[suite.question_format]}"
        )


def _encode_question(question_format: QuestionFormat, question: str) -> bytes:
    """§5.1 and Appendix A: N as hexadecimal of the number, H as is, A as ASCII bytes."""
    if question_format == "A":
        return question.encode("ascii")
    hex_digits = format(int(question, 10), "X") if question_format == "N" else question
    if len(hex_digits) % 2:
        hex_digits += "0"  # left-aligned: an odd last digit is the high nibble of its byte
    return bytes.fromhex(hex_digits)


def _password_bytes(suite: OcraSuite, password_hash: bytes | None) -> bytes:
    name = suite.password_hash_name
    _require_exactly_when(name is not None, password_hash, "password hash (P)", suite)
    if name is None or password_hash is None:
        return b""
    if len(password_hash) != DIGEST_BYTES[name]:
        raise ValueError(f"the password hash (P) must be a {name} digest of the PIN or password")
    return password_hash


def _session_bytes(suite: OcraSuite, session_info: bytes | None) -> bytes:
    length = suite.session_length
    _require_exactly_when(length is not None, session_info, "session information (S)", suite)
    if length is None or session_info is None:
        return b""
    if len(session_info) != length:
        raise ValueError(f"the session information (S) must be exactly {length} bytes")
    return session_info


def _timestamp_bytes(suite: OcraSuite, timestamp: int | None) -> bytes:
    uses_timestamp = suite.time_step_seconds is not None
    _require_exactly_when(uses_timestamp, timestamp, "timestamp (T)", suite)
    if timestamp is None:
        return b""
    return _eight_bytes(timestamp, "timestamp (T)")


def _eight_bytes(value: int, name: str) -> bytes:
    """§5.1: C and T are unsigned 8-byte big-endian integers."""
    if not 0 <= value <= MAX_EIGHT_BYTE_VALUE:
        raise ValueError(f"the {name} is an unsigned 64-bit number")
    return value.to_bytes(8, "big")


def _require_exactly_when(used: bool, value: object, what: str, suite: OcraSuite) -> None:
    """An input the suite uses must be given; one it does not use must not be."""
    if used and value is None:
        raise ValueError(f"the OCRA suite {suite.text} needs the {what}")
    if not used and value is not None:
        raise ValueError(f"the OCRA suite {suite.text} takes no {what}")
