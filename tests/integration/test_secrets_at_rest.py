"""R5.7, R2.1, R4.5, R9.1: no secret sits in the database or in a log in the clear.

One user goes through every credential the system makes, over HTTP (the ASGI app):
password, security answers, an authenticator app (TOTP), a challenge card (OCRA key and
PIN), a printed code card, a temporary passcode, an online security code card, a
password-reset code, sessions through both doors, and staff tokens. Meanwhile every log
record is captured at DEBUG, including the SQL and parameters sent to the database
(``sqlalchemy.engine``). Afterwards every column of every row of every table is read back
as text, and none of those secrets, in any of the encodings a careless store would use,
may appear there or in the logs.

How each secret is stored (storage/tables.py), and checked here to be so:

- TOTP and OCRA keys, code-card values, the SHA-1 of a challenge card's PIN:
  ``devices.secret_sealed`` / ``pin_sealed``, AES-256-GCM (adapters/secretbox.py) under
  the configured key, bound to the device id; online card values likewise in
  ``online_cards.values_sealed``, bound to the card id;
- passwords, security answers, temporary passcodes, reset codes: argon2id hashes;
- session and staff tokens: SHA-256 hex digests.

Runs on SQLite and on PostgreSQL. (Under ``securelogin serve`` uvicorn's own access log
is off, cli/main.py; the access log is ``securelogin.access``, captured here.)
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.adapters.secretbox import AesGcmSecretBox, key_id, parse_key
from securelogin.bootstrap import Application
from securelogin.domain import ocra, otp
from securelogin.domain.accounts import StaffRole
from securelogin.domain.tokens import token_digest
from securelogin.services import admin
from securelogin.services.context import Caller
from securelogin.storage.tables import devices, online_cards
from tests.clock import FakeClock
from tests.conftest import QUESTIONS, TEST_SECRET_KEY, user_body

USER = "abcde123"
FIRST_PASSWORD = "Kettle7drum!Saffron"
NEW_PASSWORD = "Lantern4harbour?Quill"
WRONG_PASSWORD = "Kettle7drum!Saffrom"  # a near miss: often all but the real password
PIN = "7391"
ANSWERS = ["Tiberius the tortoise", "Saint Aldhelm Infants", "Citroen 2CV Charleston"]
STEP = timedelta(seconds=30)
LOGINS = "/api/v1/logins"
DEVICES = "/api/v1/devices"
AGENT = "/api/v1/agent"
SUITE = ocra.parse_ocra_suite(ocra.CHALLENGE_CARD_SUITE)
TEST_CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client, not the server


@dataclass
class Made:
    """What the story made: each secret, and the ids that travel in paths."""

    passwords: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # session and staff tokens
    totp_secret: bytes = b""
    totp_device: str = ""
    totp_codes: list[str] = field(default_factory=list)
    ocra_key: bytes = b""
    challenge_card: dict[str, Any] = field(default_factory=dict)
    ocra_responses: list[str] = field(default_factory=list)
    code_card: dict[str, Any] = field(default_factory=dict)
    online_card_id: str = ""
    online_values: dict[str, str] = field(default_factory=dict)
    card_responses: list[str] = field(default_factory=list)
    passcode: str = ""
    reset_code: str = ""
    login_ids: list[str] = field(default_factory=list)  # capabilities in paths: never logged
    verification_ids: list[str] = field(default_factory=list)  # likewise

    def needles(self) -> set[str]:
        """Strings that must appear nowhere: each secret in every plausible encoding."""
        found = {*self.passwords, *self.tokens, *ANSWERS, self.passcode, self.reset_code}
        found |= set(self.card_responses)
        found |= encodings(self.totp_secret) | encodings(self.ocra_key)
        found |= encodings(ocra.pin_hash(PIN))
        for values in (self.code_card["provisioning"]["values"], self.online_values):
            found |= card_needles(values)
        assert all(len(needle) >= 6 for needle in found), "short needles match by chance"
        return found

    def short_secrets(self) -> set[str]:
        """Secrets too short to look for inside other text: no stored value may equal one."""
        return {PIN, *self.totp_codes, *self.ocra_responses}


def encodings(raw: bytes) -> set[str]:
    b32 = base64.b32encode(raw).decode("ascii")
    b64 = base64.b64encode(raw).decode("ascii")
    url64 = base64.urlsafe_b64encode(raw).decode("ascii")
    return {
        raw.hex(),
        raw.hex().upper(),
        b32,
        b32.rstrip("="),
        b32.lower().rstrip("="),
        b64,
        b64.rstrip("="),
        url64.rstrip("="),
    }


def card_needles(values: dict[str, str]) -> set[str]:
    """A card in the clear: its JSON, or any two values side by side (6 characters)."""
    ordered = [values[str(index)] for index in range(1, 101)]
    found = {json.dumps(values), json.dumps(values, separators=(",", ":")), "".join(ordered)}
    found |= {a + b for a, b in itertools.pairwise(ordered)}
    found |= {f'"{k}": "{v}"' for k, v in values.items()}  # JSON, in any order
    found |= {f'"{k}":"{v}"' for k, v in values.items()}
    return found


# ---- the story, over HTTP -----------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(reply: Any, status: int = 200) -> Any:
    assert reply.status_code == status, reply.text
    return reply.json() if status != 204 else None


class Story:
    def __init__(self, client: TestClient, clock: FakeClock, made: Made) -> None:
        self.client = client
        self.clock = clock
        self.made = made
        self.password = FIRST_PASSWORD

    def step_one(self, platform: str = "portal") -> dict[str, Any]:
        body: dict[str, Any] = ok(
            self.client.post(
                LOGINS, json={"username": USER, "password": self.password, "platform": platform}
            )
        )
        if "login_id" in body:
            self.made.login_ids.append(body["login_id"])
        return body

    def password_only(self) -> dict[str, str]:
        session = self.step_one()["session"]
        assert session["factor_kind"] is None
        self.made.tokens.append(session["token"])
        return bearer(session["token"])

    def log_in(self, kind: str, platform: str = "portal") -> dict[str, str]:
        first = self.step_one(platform)
        (factor,) = [f for f in first["factors"] if f["kind"] == kind]
        response = self.answer(factor)
        reply = self.client.post(
            f"{LOGINS}/{first['login_id']}/response",
            json={"factor_id": factor["factor_id"], "response": response},
        )
        session = ok(reply)["session"]
        assert session["factor_kind"] == kind
        self.made.tokens.append(session["token"])
        return bearer(session["token"])

    def answer(self, factor: dict[str, Any]) -> str:
        kind = factor["kind"]
        if kind == "totp":
            return self.totp_code()
        if kind == "challenge_card":
            return self.ocra_response(factor["challenge"]["code"])
        if kind == "online_card":
            return self.card_response(self.made.online_values, factor["challenge"]["indices"])
        assert kind == "temporary_passcode", factor
        return self.made.passcode

    def totp_code(self) -> str:
        code = otp.totp(self.made.totp_secret, int(self.clock.now().timestamp()))
        self.made.totp_codes.append(code)
        return code

    def ocra_response(self, challenge: str) -> str:
        response = ocra.ocra_response(
            SUITE, self.made.ocra_key, question=challenge, password_hash=ocra.pin_hash(PIN)
        )
        self.made.ocra_responses.append(response)
        return response

    def card_response(self, values: dict[str, str], indices: list[int]) -> str:
        response = "".join(values[str(index)] for index in indices)
        self.made.card_responses.append(response)
        return response


class Agent:
    def __init__(self, client: TestClient, token: str, made: Made) -> None:
        self.client = client
        self.headers = bearer(token)
        self.made = made

    def verify(self) -> str:
        started = ok(
            self.client.post(
                f"{AGENT}/verifications", headers=self.headers, json={"username": USER}
            ),
            201,
        )
        answer = ANSWERS[[q["question"] for q in QUESTIONS].index(started["question"])]
        ok(
            self.client.post(
                f"{AGENT}/verifications/{started['verification_id']}/answer",
                headers=self.headers,
                json={"answer": answer},
            )
        )
        self.made.verification_ids.append(started["verification_id"])
        return str(started["verification_id"])

    def issue(self, what: str, verification_id: str) -> dict[str, Any]:
        reply = self.client.post(
            f"{AGENT}/users/{USER}/{what}",
            headers=self.headers,
            json={"verification_id": verification_id},
        )
        issued: dict[str, Any] = ok(reply, 201)
        return issued


def run_story(client: TestClient, clock: FakeClock, admin_token: str, agent_token: str) -> Made:
    made = Made(passwords=[FIRST_PASSWORD], tokens=[admin_token, agent_token])
    story = Story(client, clock, made)
    questions = [
        {"question": q["question"], "answer": a} for q, a in zip(QUESTIONS, ANSWERS, strict=True)
    ]
    body = user_body(USER, FIRST_PASSWORD, security_questions=questions)
    ok(client.post("/api/v1/admin/users", headers=bearer(admin_token), json=body), 201)

    # The user enrols an authenticator app and orders both kinds of card (R5.1, R5.2).
    session = story.password_only()
    enrolment = ok(client.post(f"{DEVICES}/totp", headers=session), 201)
    made.totp_device = enrolment["device_id"]
    made.totp_secret = base64.b32decode(enrolment["secret"] + "=" * (-len(enrolment["secret"]) % 8))
    activation = {"response": story.totp_code()}
    ok(client.post(f"{DEVICES}/{made.totp_device}/activation", headers=session, json=activation))
    orders = f"{DEVICES}/orders"
    order = {"kind": "challenge_card", "pin": PIN, "country": "US"}
    made.challenge_card = ok(client.post(orders, headers=session, json=order), 201)
    made.ocra_key = bytes.fromhex(made.challenge_card["provisioning"]["key_hex"])
    order = {"kind": "code_card", "country": "DE"}
    made.code_card = ok(client.post(orders, headers=session, json=order), 201)

    # A near-miss password, then both doors with the app (R2.3, R4).
    wrong = {"username": USER, "password": WRONG_PASSWORD, "platform": "trading"}
    assert client.post(LOGINS, json=wrong).status_code == 401
    made.passwords.append(WRONG_PASSWORD)
    malformed = {"username": USER, "password": WRONG_PASSWORD, "platform": "desktop"}
    assert client.post(LOGINS, json=malformed).status_code == 422
    clock.advance(STEP)
    story.log_in("totp", "trading")

    # The user lost the phone: the agent verifies the caller, issues a passcode (R6, R8).
    agent = Agent(client, agent_token, made)
    made.passcode = agent.issue("temporary-passcode", agent.verify())["passcode"]
    passcode_session = story.log_in("temporary_passcode")
    card = ok(client.post("/api/v1/online-card", headers=passcode_session), 201)
    made.online_card_id = card["card_id"]
    made.online_values = card["values"]
    indices = card["activation_challenge"]["indices"]
    activation = {"response": story.card_response(made.online_values, indices)}
    card_url = f"/api/v1/online-card/{made.online_card_id}/activation"
    ok(client.post(card_url, headers=passcode_session, json=activation))
    story.log_in("online_card", "trading")

    # A password reset through the agent (R8.3), then the challenge card arrives (R5.4).
    made.reset_code = agent.issue("password-reset-code", agent.verify())["reset_code"]
    reset = {"username": USER, "reset_code": made.reset_code, "new_password": NEW_PASSWORD}
    ok(client.post("/api/v1/password-resets", json=reset), 204)
    made.passwords.append(NEW_PASSWORD)
    story.password = NEW_PASSWORD
    card_session = story.log_in("online_card")
    device_id = made.challenge_card["device_id"]
    challenge = ok(client.get(f"{DEVICES}/{device_id}/activation", headers=card_session))
    activation = {
        "serial": made.challenge_card["serial"],
        "response": story.ocra_response(challenge["challenge"]["code"]),
    }
    ok(client.post(f"{DEVICES}/{device_id}/activation", headers=card_session, json=activation))
    last = story.log_in("challenge_card", "trading")
    ok(client.delete("/api/v1/session", headers=last), 204)
    return made


# ---- reading back what was stored and logged ----------------------------------------------


Cell = tuple[str, str, str]  # table, column, value as text


def every_stored_value(application: Application) -> list[Cell]:
    """Every non-null cell of every table the database holds (reflected, not assumed)."""
    tables = MetaData()
    tables.reflect(bind=application.engine)
    assert {"users", "devices", "sessions", "online_cards", "audit_records"} <= set(tables.tables)
    cells: list[Cell] = []
    with application.engine.connect() as connection:
        for name, table in sorted(tables.tables.items()):
            for row in connection.execute(select(table)).mappings():
                cells.extend(
                    (name, col, as_text(val)) for col, val in row.items() if val is not None
                )
    return cells


def as_text(value: object) -> str:
    """A cell as text; binary as hex, so that a raw key in a BLOB is found too."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def leaks_in(cells: Iterable[Cell], made: Made) -> list[tuple[str, str, str]]:
    """(table, column, secret) wherever a secret sits in a cell in the clear."""
    needles, short = made.needles(), made.short_secrets()
    return [
        (table, column, needle)
        for table, column, value in cells
        for needle in needles | short
        if (value == needle if needle in short else needle in value)
    ]


def values_of(cells: Iterable[Cell], table: str, column: str) -> list[str]:
    return [value for t, c, value in cells if (t, c) == (table, column)]


def logged_text(records: Iterable[logging.LogRecord]) -> str:
    """Everything a handler could write: message, arguments, extras, traceback."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture
def agent_token(application: Application) -> str:
    return admin.create_staff_token(
        application.context, name="amy", role=StaffRole.AGENT, caller=Caller("test")
    )


@pytest.fixture
def story(
    client: TestClient,
    clock: FakeClock,
    admin_token: str,
    agent_token: str,
    caplog: pytest.LogCaptureFixture,
) -> tuple[Made, list[logging.LogRecord]]:
    # set_level also sets the capturing handler's level: the DEBUG call must come last.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQL and its parameters
    caplog.set_level(logging.DEBUG, logger="securelogin")
    caplog.set_level(logging.DEBUG)  # every other logger: uvicorn.*, starlette, ...
    made = run_story(client, clock, admin_token, agent_token)
    logging.getLogger("securelogin.control").debug("the capture takes DEBUG records")
    records = [r for r in caplog.records if not r.name.startswith(TEST_CLIENT_LOGGERS)]
    caplog.clear()
    return made, records


def assert_leak_finder_finds_every_kind_of_secret(made: Made) -> None:
    """The control: every secret, put in a cell in the clear, is found."""
    shown_once = [  # what the replies showed, and how a careless store might keep it
        made.passwords[0],
        made.tokens[-1],
        base64.b32encode(made.totp_secret).decode(),
        made.totp_secret.hex(),
        made.challenge_card["provisioning"]["key_hex"],
        ocra.pin_hash(PIN).hex(),
        json.dumps(made.code_card["provisioning"]["values"]),
        json.dumps(dict(sorted(made.online_values.items())), separators=(",", ":")),
        made.passcode,
        made.reset_code,
        ANSWERS[0],
        PIN,
        made.totp_codes[0],
        made.ocra_responses[0],
    ]
    cells = [
        ("control", str(n), f"{{'x': '{s}'}}" if len(s) > 8 else s)
        for n, s in enumerate(shown_once)
    ]

    flagged = {column for _, column, _ in leaks_in(cells, made)}

    assert flagged == {str(n) for n in range(len(shown_once))}


# ---- the tests ----------------------------------------------------------------------------


def test_no_secret_is_stored_in_the_clear_only_sealed_hashed_or_digested(
    application: Application,
    story: tuple[Made, list[logging.LogRecord]],
    fast_hasher: Argon2Hasher,
) -> None:
    made, _ = story

    cells = every_stored_value(application)

    assert_leak_finder_finds_every_kind_of_secret(made)
    assert leaks_in(cells, made) == []
    # The secrets are where we think, in their protected form. R5.7: sealed under the
    # configured key, each bound to its own row.
    key = parse_key(str(TEST_SECRET_KEY))
    box = AesGcmSecretBox(key)
    with application.engine.connect() as connection:
        rows = connection.execute(
            select(devices.c.device_id, devices.c.secret_sealed, devices.c.pin_sealed)
        ).all()
        card_sealed = connection.execute(select(online_cards.c.values_sealed)).scalar_one()
    sealed = {device_id: (secret, pin) for device_id, secret, pin in rows}
    challenge_id = made.challenge_card["device_id"]
    code_card_id = made.code_card["device_id"]
    assert box.open(sealed[made.totp_device][0], made.totp_device) == made.totp_secret
    assert box.open(sealed[challenge_id][0], challenge_id) == made.ocra_key
    assert box.open(sealed[challenge_id][1], challenge_id) == ocra.pin_hash(PIN)
    code_card = json.loads(box.open(sealed[code_card_id][0], code_card_id))
    assert code_card == made.code_card["provisioning"]["values"]
    assert json.loads(box.open(card_sealed, made.online_card_id)) == made.online_values
    for value in [s for pair in sealed.values() for s in pair if s is not None] + [card_sealed]:
        assert value.startswith(f"v1.{key_id(key)}.")
    with pytest.raises(ValueError, match="does not open"):
        box.open(sealed[made.totp_device][0], challenge_id)
    # R2.1, R6, R8: argon2id hashes of exactly the values given out.
    (password_hash,) = values_of(cells, "users", "password_hash")
    (passcode_hash,) = values_of(cells, "temporary_passcodes", "code_hash")
    (reset_hash,) = values_of(cells, "reset_codes", "code_hash")
    answer_hashes = values_of(cells, "security_answers", "answer_hash")
    for stored, given in [
        (password_hash, NEW_PASSWORD),
        (passcode_hash, made.passcode),
        (reset_hash, made.reset_code),
        *zip(answer_hashes, ANSWERS, strict=True),
    ]:
        assert stored.startswith("$argon2id$")
        assert fast_hasher.verify(stored, given)
    # R4.5: session and staff tokens only as SHA-256 digests.
    digests = values_of(cells, "sessions", "token_digest") + values_of(
        cells, "staff", "token_digest"
    )
    assert sorted(digests) == sorted(token_digest(token) for token in made.tokens)


def test_no_secret_and_no_capability_sent_in_a_path_is_written_to_any_log(
    story: tuple[Made, list[logging.LogRecord]],
) -> None:
    made, records = story
    text = logged_text(records)
    names = {record.name for record in records}
    # The capture works: the access log and the SQL with its parameters were recorded.
    assert "securelogin.access" in names
    assert "the capture takes DEBUG records" in text
    assert "POST /api/v1/logins/{login_id}/response 200" in text
    assert any(name.startswith("sqlalchemy.engine") for name in names)
    assert made.login_ids[0] in text  # the SQL parameters are logged...
    assert made.verification_ids[0] in text
    server_log = logged_text(r for r in records if not r.name.startswith("sqlalchemy"))
    short = made.short_secrets()

    # ...yet no secret is sent to the database in the clear, nor written to any log,
    leaks = [needle for needle in made.needles() if needle in text]
    short_leaks = [code for code in short if repr(code) in text or f'"{code}"' in text]
    # and no capability sent in a path (login id, verification id) reaches the server's logs.
    in_paths = made.login_ids + made.verification_ids
    capability_leaks = [ident for ident in in_paths if ident in server_log]

    assert leaks == []
    assert short_leaks == []
    assert capability_leaks == []
