"""OCRA (securelogin.domain.ocra) against RFC 6287 Appendix C and the independent ``oath``.

Proof comes from two directions (docs/test-vectors.md):
* all 70 published vectors of RFC 6287 Appendix C (one-way, mutual, signature);
* the ``oath`` package's own OCRA implementation (PyPI, test dependency only), on random
  keys, challenges, PINs, counters, session data and timestamps, for our card's suite, a
  few fixed suites and randomly built suites. ``oath`` is first checked against the same
  published vectors, so it is a trustworthy oracle.
"""

from __future__ import annotations

import ast
import hashlib
import string
from pathlib import Path
from typing import Any

import oath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securelogin.domain import ocra
from securelogin.domain.ocra import (
    CHALLENGE_CARD_SUITE,
    OcraSuite,
    ocra_data_input,
    ocra_response,
    ocra_time_step,
    parse_ocra_suite,
    pin_hash,
    verify_ocra_response,
)
from tests.unit.vectors import load_vectors

# RFC 6287 Appendix C: the "Standard 20Byte/32Byte/64Byte" keys.
RFC_KEYS = {
    "std20": b"12345678901234567890",
    "std32": b"12345678901234567890123456789012",
    "std64": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# RFC 6287 Appendix B (test program): PASS1234, the SHA-1 of the PIN "1234".
RFC_PASS1234 = "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"

OCRA_VECTORS = load_vectors("rfc6287-appendix-c.txt")

KEY = bytes(range(1, 33))
CARD = parse_ocra_suite(CHALLENGE_CARD_SUITE)

HYPOTHESIS = settings(database=None, deadline=None, max_examples=300)

FIXED_CROSS_CHECK_SUITES = [
    CHALLENGE_CARD_SUITE,
    "OCRA-1:HOTP-SHA1-6:QN08",
    "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
    "OCRA-1:HOTP-SHA512-8:QA10-T1M",
    "OCRA-1:HOTP-SHA1-4:QH40-S064",
    "OCRA-1:HOTP-SHA256-7:QN64-PSHA512-T30S",
    "OCRA-1:HOTP-SHA512-10:C-QA64-PSHA256-S512-T48H",
]

_ALPHABETS = {"A": string.ascii_letters + string.digits, "N": string.digits, "H": string.hexdigits}


def _vector_id(row: list[str]) -> str:
    appendix, computation, suite, _, counter, question, _, _, _ = row
    counter_part = "" if counter == "-" else f"-C{counter}"
    return f"{appendix}-{computation}-{suite}{counter_part}-Q{question}"


def _optional(value: str) -> str | None:
    return None if value == "-" else value


def _vector_inputs(row: list[str]) -> tuple[OcraSuite, bytes, dict[str, Any]]:
    """Our arguments for one Appendix C line (see the file's header for the columns)."""
    _, computation, suite_text, key, counter, question, pin, timestamp, _ = row
    suite = parse_ocra_suite(suite_text)
    mutual = computation in ("server", "client")
    length = suite.question_length
    counter_text, pin_text, timestamp_text = (
        _optional(counter),
        _optional(pin),
        _optional(timestamp),
    )
    inputs: dict[str, Any] = {
        # C.2 prints each mutual question as two xx-character challenges concatenated.
        "question": (question[:length], question[length:]) if mutual else question,
        "counter": None if counter_text is None else int(counter_text, 10),
        "password_hash": None if pin_text is None else pin_hash(pin_text),
        "timestamp": None if timestamp_text is None else int(timestamp_text, 16),
    }
    return suite, RFC_KEYS[key], inputs


# --- RFC 6287 Appendix C -------------------------------------------------------------


def test_rfc6287_file_holds_all_seventy_vectors() -> None:
    groups: dict[tuple[str, str], int] = {}
    for row in OCRA_VECTORS:
        groups[(row[0], row[1])] = groups.get((row[0], row[1]), 0) + 1
    assert groups == {
        ("C.1", "one-way"): 40,
        ("C.2", "server"): 10,
        ("C.2", "client"): 10,
        ("C.3", "signature"): 10,
    }


@pytest.mark.parametrize("row", OCRA_VECTORS, ids=_vector_id)
def test_ocra_matches_rfc6287_appendix_c(row: list[str]) -> None:
    suite, key, inputs = _vector_inputs(row)
    assert ocra_response(suite, key, **inputs) == row[8]


@pytest.mark.parametrize("row", OCRA_VECTORS, ids=_vector_id)
def test_verify_ocra_response_accepts_rfc6287_vectors_and_nothing_else(row: list[str]) -> None:
    suite, key, inputs = _vector_inputs(row)
    response = row[8]
    altered = f"{(int(response) + 1) % 10 ** len(response):0{len(response)}d}"
    assert verify_ocra_response(suite, key, response, **inputs)
    assert not verify_ocra_response(suite, key, altered, **inputs)


@pytest.mark.parametrize("row", OCRA_VECTORS, ids=_vector_id)
def test_independent_oath_package_matches_rfc6287_appendix_c(row: list[str]) -> None:
    """The oracle of the random cross-checks below is itself right on the published vectors."""
    _, computation, suite_text, key, counter, question, pin, timestamp, response = row
    arguments: dict[str, Any] = {"Qsc" if computation in ("server", "client") else "Q": question}
    if counter != "-":
        arguments["C"] = int(counter, 10)
    if pin != "-":
        arguments["P"] = pin
    if timestamp != "-":
        arguments["T_precomputed"] = int(timestamp, 16)
    assert oath.str2ocrasuite(suite_text)(RFC_KEYS[key], **arguments) == response


def test_pin_hash_of_1234_is_the_rfc_pass1234() -> None:
    assert pin_hash("1234").hex() == RFC_PASS1234


def test_ocra_time_step_of_the_rfc_moment_is_the_rfc_timestamp() -> None:
    """Appendix B's test program: "Mar 25 2008, 12:06:30 GMT" in minutes is 0x132d0b6."""
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA512-8:QN08-T1M")
    assert ocra_time_step(suite, 1206446790) == 0x132D0B6


# --- Suite parsing -------------------------------------------------------------------


def test_ocra_parses_the_card_suite() -> None:
    assert CARD == OcraSuite(
        text="OCRA-1:HOTP-SHA256-8:QN06-PSHA1",
        hash_name="sha256",
        digits=8,
        uses_counter=False,
        question_format="N",
        question_length=6,
        password_hash_name="sha1",
        session_length=None,
        time_step_seconds=None,
    )


def test_ocra_suite_fields_cannot_disagree_with_its_text() -> None:
    with pytest.raises(ValueError, match="do not describe its text"):
        OcraSuite(
            text=CHALLENGE_CARD_SUITE,
            hash_name="sha256",
            digits=8,
            uses_counter=False,
            question_format="N",
            question_length=64,
            password_hash_name="sha1",
            session_length=None,
            time_step_seconds=None,
        )


def test_ocra_suite_text_must_be_well_formed_even_when_built_directly() -> None:
    with pytest.raises(ValueError, match="malformed OCRA suite"):
        OcraSuite(
            text="OCRA-1:HOTP-SHA256-8:QN6-PSHA1",
            hash_name="sha256",
            digits=8,
            uses_counter=False,
            question_format="N",
            question_length=6,
            password_hash_name="sha1",
            session_length=None,
            time_step_seconds=None,
        )


def test_ocra_parses_every_data_input_at_once() -> None:
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA512-10:C-QH64-PSHA512-S512-T48H")
    assert (suite.hash_name, suite.digits, suite.uses_counter) == ("sha512", 10, True)
    assert (suite.question_format, suite.question_length) == ("H", 64)
    assert (suite.password_hash_name, suite.session_length) == ("sha512", 512)
    assert suite.time_step_seconds == 48 * 3600


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("T1S", 1), ("T59S", 59), ("T1M", 60), ("T59M", 3540), ("T1H", 3600), ("T48H", 172800)],
)
def test_ocra_parses_time_steps(text: str, seconds: int) -> None:
    assert parse_ocra_suite(f"OCRA-1:HOTP-SHA1-6:QN08-{text}").time_step_seconds == seconds


def test_ocra_parses_untruncated_suites_but_refuses_to_answer_them() -> None:
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA1-0:QN08")
    assert suite.digits == 0
    with pytest.raises(ValueError, match="untruncated"):
        ocra_response(suite, KEY, question="12345678")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "OCRA-1",
        "OCRA-1:HOTP-SHA1-6",
        "OCRA-2:HOTP-SHA1-6:QN08",
        "ocra-1:hotp-sha1-6:qn08",
        "OCRA-1:HOTP-SHA1-6:QN08:",
        "OCRA-1:HOTP-MD5-6:QN08",
        "OCRA-1:HOTP-SHA224-6:QN08",
        "OCRA-1:TOTP-SHA1-6:QN08",
        "OCRA-1:HOTP-SHA1-3:QN08",
        "OCRA-1:HOTP-SHA1-11:QN08",
        "OCRA-1:HOTP-SHA1-06:QN08",
        "OCRA-1:HOTP-SHA1:QN08",
        "OCRA-1:HOTP-SHA1-6:",
        "OCRA-1:HOTP-SHA1-6:C",
        "OCRA-1:HOTP-SHA1-6:Q",
        "OCRA-1:HOTP-SHA1-6:QN8",
        "OCRA-1:HOTP-SHA1-6:QN03",
        "OCRA-1:HOTP-SHA1-6:QN65",
        "OCRA-1:HOTP-SHA1-6:QX08",
        "OCRA-1:HOTP-SHA1-6:QN0\uff18",
        "OCRA-1:HOTP-SHA1-6:QN08-C",
        "OCRA-1:HOTP-SHA1-6:C-C-QN08",
        "OCRA-1:HOTP-SHA1-6:C--QN08",
        "OCRA-1:HOTP-SHA1-6:QN08-",
        "OCRA-1:HOTP-SHA1-6:QN08 ",
        "OCRA-1:HOTP-SHA1-6:QN08-QN08",
        "OCRA-1:HOTP-SHA1-6:QN08-P",
        "OCRA-1:HOTP-SHA1-6:QN08-PMD5",
        "OCRA-1:HOTP-SHA1-6:QN08-PSHA1-PSHA1",
        "OCRA-1:HOTP-SHA1-6:QN08-S",
        "OCRA-1:HOTP-SHA1-6:QN08-S64",
        "OCRA-1:HOTP-SHA1-6:QN08-S000",
        "OCRA-1:HOTP-SHA1-6:QN08-S513",
        "OCRA-1:HOTP-SHA1-6:QN08-T",
        "OCRA-1:HOTP-SHA1-6:QN08-T0H",
        "OCRA-1:HOTP-SHA1-6:QN08-T01M",
        "OCRA-1:HOTP-SHA1-6:QN08-T49H",
        "OCRA-1:HOTP-SHA1-6:QN08-T60M",
        "OCRA-1:HOTP-SHA1-6:QN08-T60S",
        "OCRA-1:HOTP-SHA1-6:QN08-T1D",
        "OCRA-1:HOTP-SHA1-6:QN08-T1M-S064",
        "OCRA-1:HOTP-SHA1-6:QN08-S064-PSHA1",
        "OCRA-1:HOTP-SHA1-6:QN08-T1M-T1M",
    ],
)
def test_ocra_rejects_malformed_suite(text: str) -> None:
    with pytest.raises(ValueError, match="malformed OCRA suite"):
        parse_ocra_suite(text)


@st.composite
def suite_texts(draw: st.DrawFn) -> str:
    """Any well-formed suite of RFC 6287 §6 with a truncated response (t = 4-10)."""
    elements = ["C"] if draw(st.booleans()) else []
    question_format = draw(st.sampled_from("ANH"))
    elements.append(f"Q{question_format}{draw(st.integers(4, 64)):02d}")
    if draw(st.booleans()):
        elements.append("P" + draw(st.sampled_from(["SHA1", "SHA256", "SHA512"])))
    if draw(st.booleans()):
        elements.append(f"S{draw(st.integers(1, 512)):03d}")
    if draw(st.booleans()):
        unit = draw(st.sampled_from("SMH"))
        elements.append(f"T{draw(st.integers(1, 48 if unit == 'H' else 59))}{unit}")
    hash_name = draw(st.sampled_from(["SHA1", "SHA256", "SHA512"]))
    return f"OCRA-1:HOTP-{hash_name}-{draw(st.integers(4, 10))}:{'-'.join(elements)}"


@given(text=suite_texts())
@HYPOTHESIS
def test_ocra_parses_every_well_formed_suite_as_the_oath_package_does(text: str) -> None:
    ours, theirs = parse_ocra_suite(text), oath.str2ocrasuite(text)
    assert ours.text == text
    assert ours.digits == theirs.crypto_function.truncation_length
    assert ours.hash_name == theirs.crypto_function.hash_algo().name
    assert ours.uses_counter == bool(theirs.data_input.C)
    assert (ours.question_format, ours.question_length) == theirs.data_input.Q
    their_password = theirs.data_input.P
    assert ours.password_hash_name == (None if their_password is None else their_password().name)
    assert ours.session_length == theirs.data_input.S
    assert ours.time_step_seconds == theirs.data_input.T


# --- Inputs that do not fit the suite ------------------------------------------------


@pytest.mark.parametrize(
    "question",
    ["", "1234567", "12345a", "12 345", "-12345", "+12345", "١٢٣٤٥", "12345\n"],
    ids=["empty", "too-long", "letter", "space", "minus", "plus", "arabic-indic", "newline"],
)
def test_ocra_rejects_card_question_that_does_not_fit_the_suite(question: str) -> None:
    with pytest.raises(ValueError, match="challenge of the OCRA suite"):
        ocra_response(CARD, KEY, question=question, password_hash=pin_hash("1234"))


@pytest.mark.parametrize(
    ("suite_text", "question"),
    [
        ("OCRA-1:HOTP-SHA256-8:QA08", "SIG-1000"),
        ("OCRA-1:HOTP-SHA256-8:QA08", "SIGé1000"),
        ("OCRA-1:HOTP-SHA256-8:QA08", "SIG100000"),
        ("OCRA-1:HOTP-SHA1-6:QH08", "ABCDEFGX"),
        ("OCRA-1:HOTP-SHA1-6:QH08", "0x1234"),
        ("OCRA-1:HOTP-SHA1-6:QN08", "1e5"),
    ],
)
def test_ocra_rejects_question_of_the_wrong_format(suite_text: str, question: str) -> None:
    with pytest.raises(ValueError, match="challenge of the OCRA suite"):
        ocra_response(parse_ocra_suite(suite_text), KEY, question=question)


def test_ocra_mutual_question_is_two_challenges_each_within_the_suite_length() -> None:
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA256-8:QA08")
    assert len(ocra_response(suite, KEY, question=("CLI22220", "SRV11110"))) == 8
    with pytest.raises(ValueError, match="1 to 8 characters"):
        ocra_response(suite, KEY, question=("CLI222201", "SRV1111"))
    with pytest.raises(ValueError, match="1 to 8 characters"):
        ocra_response(suite, KEY, question="CLI22220SRV11110")


@pytest.mark.parametrize(
    ("suite_text", "arguments", "message"),
    [
        (CHALLENGE_CARD_SUITE, {}, "needs the password hash"),
        ("OCRA-1:HOTP-SHA1-6:C-QN08", {}, "needs the counter"),
        ("OCRA-1:HOTP-SHA1-6:QN08-S064", {}, "needs the session information"),
        ("OCRA-1:HOTP-SHA1-6:QN08-T1M", {}, "needs the timestamp"),
        ("OCRA-1:HOTP-SHA1-6:QN08", {"counter": 1}, "takes no counter"),
        ("OCRA-1:HOTP-SHA1-6:QN08", {"password_hash": bytes(20)}, "takes no password hash"),
        ("OCRA-1:HOTP-SHA1-6:QN08", {"session_info": bytes(64)}, "takes no session"),
        ("OCRA-1:HOTP-SHA1-6:QN08", {"timestamp": 1}, "takes no timestamp"),
        (CHALLENGE_CARD_SUITE, {"password_hash": bytes(32)}, "sha1 digest"),
        ("OCRA-1:HOTP-SHA1-6:QN08-S064", {"session_info": bytes(63)}, "exactly 64 bytes"),
        ("OCRA-1:HOTP-SHA1-6:C-QN08", {"counter": -1}, "64-bit"),
        ("OCRA-1:HOTP-SHA1-6:C-QN08", {"counter": 2**64}, "64-bit"),
        ("OCRA-1:HOTP-SHA1-6:QN08-T1M", {"timestamp": 2**64}, "64-bit"),
    ],
)
def test_ocra_takes_exactly_the_inputs_the_suite_names(
    suite_text: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ocra_response(parse_ocra_suite(suite_text), KEY, question="123456", **arguments)


def test_ocra_accepts_the_largest_counter_and_timestamp() -> None:
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA1-6:C-QN08-T1M")
    assert len(ocra_response(suite, KEY, question="1", counter=2**64 - 1, timestamp=2**64 - 1)) == 6


def test_ocra_rejects_a_key_shorter_than_128_bits() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ocra_response(CARD, b"k" * 15, question="123456", password_hash=pin_hash("1234"))


@pytest.mark.parametrize("pin", ["", "12é4"])
def test_pin_hash_rejects_empty_or_non_ascii_pins(pin: str) -> None:
    with pytest.raises(ValueError, match="PIN"):
        pin_hash(pin)


def test_ocra_time_step_needs_a_timed_suite_and_a_time_after_the_epoch() -> None:
    with pytest.raises(ValueError, match="no timestamp"):
        ocra_time_step(CARD, 1206446790)
    with pytest.raises(ValueError, match="epoch"):
        ocra_time_step(parse_ocra_suite("OCRA-1:HOTP-SHA1-6:QN08-T1M"), -1)


# --- The data input (RFC 6287 §5.1) --------------------------------------------------


def test_ocra_data_input_layout_of_the_card_suite() -> None:
    message = ocra_data_input(CARD, question="123456", password_hash=pin_hash("1234"))
    prefix = CHALLENGE_CARD_SUITE.encode("ascii") + b"\x00"
    # 123456 = 0x1E240: five hex digits, left-aligned, so the bytes are 1E 24 0|0, not 01 E2 40.
    question = bytes.fromhex("1e2400").ljust(128, b"\x00")
    assert message == prefix + question + bytes.fromhex(RFC_PASS1234)


def test_ocra_data_input_layout_with_every_input() -> None:
    suite = parse_ocra_suite("OCRA-1:HOTP-SHA1-6:C-QH08-PSHA256-S003-T1M")
    password = hashlib.sha256(b"pw").digest()
    message = ocra_data_input(
        suite,
        question="ABC",
        counter=0x0102,
        password_hash=password,
        session_info=b"xyz",
        timestamp=0x132D0B6,
    )
    assert message == b"".join(
        (
            suite.text.encode("ascii"),
            b"\x00",
            bytes.fromhex("0000000000000102"),
            b"\xab\xc0".ljust(128, b"\x00"),  # odd hex: the last digit is a high nibble
            password,
            b"xyz",
            bytes.fromhex("000000000132d0b6"),
        )
    )


@pytest.mark.parametrize(
    ("question_format", "question", "encoded"),
    [
        ("N", "00000000", "00"),
        ("N", "12345678", "bc614e"),
        ("N", "11111111", "a98ac7"),
        ("N", "15", "f0"),
        ("N", "123456", "1e2400"),
        ("H", "0ABcd", "0abcd0"),
        ("A", "SIG10000", "5349473130303030"),
    ],
)
def test_ocra_question_encoding(question_format: str, question: str, encoded: str) -> None:
    suite = parse_ocra_suite(f"OCRA-1:HOTP-SHA1-6:Q{question_format}08")
    message = ocra_data_input(suite, question=question)
    expected = bytes.fromhex(encoded).ljust(128, b"\x00")
    assert message == suite.text.encode("ascii") + b"\x00" + expected


def test_ocra_numeric_question_is_a_number_so_leading_zeros_do_not_count() -> None:
    pin = pin_hash("1234")
    with_zero = ocra_response(CARD, KEY, question="012345", password_hash=pin)
    assert with_zero == ocra_response(CARD, KEY, question="12345", password_hash=pin)
    assert with_zero != ocra_response(CARD, KEY, question="123450", password_hash=pin)


def test_ocra_card_response_depends_on_the_pin() -> None:
    with_1234 = ocra_response(CARD, KEY, question="123456", password_hash=pin_hash("1234"))
    with_4321 = ocra_response(CARD, KEY, question="123456", password_hash=pin_hash("4321"))
    assert with_1234 != with_4321


# --- Cross-check against the independent oath package --------------------------------


def _draw_challenge(data: st.DataObject, suite: OcraSuite) -> str:
    alphabet = _ALPHABETS[suite.question_format]
    if suite.question_format == "H":  # oath reads hex challenges as whole bytes only
        pairs = data.draw(st.integers(1, suite.question_length // 2))
        return data.draw(st.text(alphabet, min_size=2 * pairs, max_size=2 * pairs))
    return data.draw(st.text(alphabet, min_size=1, max_size=suite.question_length))


def _draw_and_compare(data: st.DataObject, suite: OcraSuite) -> None:
    """Random inputs for ``suite``; our response must equal the oath package's."""
    key = data.draw(st.binary(min_size=16, max_size=100), label="key")
    mutual = data.draw(st.booleans(), label="mutual")
    challenges = [_draw_challenge(data, suite) for _ in range(2 if mutual else 1)]
    ours: dict[str, Any] = {"question": (challenges[0], challenges[1]) if mutual else challenges[0]}
    theirs: dict[str, Any] = {"Qsc" if mutual else "Q": "".join(challenges)}
    if suite.uses_counter:
        ours["counter"] = theirs["C"] = data.draw(st.integers(0, 2**64 - 1), label="counter")
    if suite.password_hash_name is not None:
        pin = data.draw(st.text(string.printable, min_size=1, max_size=16), label="pin")
        ours["password_hash"] = (
            pin_hash(pin)
            if suite.password_hash_name == "sha1"
            else hashlib.new(suite.password_hash_name, pin.encode("ascii")).digest()
        )
        theirs["P"] = pin  # oath hashes the PIN itself
    if suite.session_length is not None:
        size = suite.session_length
        session = data.draw(st.binary(min_size=size, max_size=size), label="session")
        ours["session_info"] = theirs["S"] = session
    if suite.time_step_seconds is not None:
        timestamp = data.draw(st.integers(0, 2**64 - 1), label="timestamp")
        ours["timestamp"] = theirs["T_precomputed"] = timestamp
    expected = oath.str2ocrasuite(suite.text)(key, **theirs)
    assert ocra_response(suite, key, **ours) == expected


@given(text=st.sampled_from(FIXED_CROSS_CHECK_SUITES), data=st.data())
@HYPOTHESIS
def test_ocra_matches_independent_oath_package_on_random_inputs(
    text: str, data: st.DataObject
) -> None:
    _draw_and_compare(data, parse_ocra_suite(text))


@given(data=st.data())
@HYPOTHESIS
def test_ocra_card_suite_matches_independent_oath_package_on_random_inputs(
    data: st.DataObject,
) -> None:
    _draw_and_compare(data, CARD)


@given(text=suite_texts(), data=st.data())
@HYPOTHESIS
def test_ocra_matches_independent_oath_package_on_random_suites(
    text: str, data: st.DataObject
) -> None:
    _draw_and_compare(data, parse_ocra_suite(text))


# --- Purity --------------------------------------------------------------------------


def test_ocra_module_imports_no_clock_randomness_or_io() -> None:
    tree = ast.parse(Path(ocra.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
    assert imported <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "hashlib",
        "hmac",
        "re",
        "securelogin.domain.otp",
        "string",
        "typing",
    }
