"""Two-step logins over HTTP with every kind of permanent device (R3, R4, R5; issue 3).

Every test runs through the ASGI app (TestClient) on SQLite and on PostgreSQL. Time moves
only with the ``clock`` fixture. Responses are computed the way the devices compute them:
TOTP codes with ``securelogin.domain.otp`` at the fake clock's time, challenge-card
responses with ``securelogin.domain.ocra`` from the provisioned key and the PIN, code-card
responses from the provisioned values.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from securelogin.bootstrap import Application
from securelogin.domain import ocra, otp
from securelogin.services import helpdesk
from securelogin.services.context import Caller
from securelogin.storage.tables import lockout_failures
from tests.clock import FakeClock
from tests.conftest import PASSWORD, make_user, readable

LOGINS = "/api/v1/logins"
DEVICES = "/api/v1/devices"
ORDERS = "/api/v1/devices/orders"
SUITE = ocra.parse_ocra_suite(ocra.CHALLENGE_CARD_SUITE)
PIN = "2468"
USER = "abcde123"
STEP = timedelta(seconds=30)
DAY = timedelta(days=1)


# Helpers: the client's side of the conversation


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(reply: Any) -> dict[str, Any]:
    body = reply.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def parse_time(value: str) -> datetime:
    assert value.endswith(("Z", "+00:00")), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def step_one(client: TestClient, platform: str = "portal", username: str = USER) -> Any:
    return client.post(
        LOGINS, json={"username": username, "password": PASSWORD, "platform": platform}
    )


def factors_of(client: TestClient, platform: str = "portal", username: str = USER) -> Any:
    reply = step_one(client, platform, username)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "factors" in body, body
    return body


def respond(client: TestClient, login_id: str, factor_id: str, response: str) -> Any:
    return client.post(
        f"{LOGINS}/{login_id}/response", json={"factor_id": factor_id, "response": response}
    )


def password_session(
    client: TestClient, platform: str = "portal", username: str = USER
) -> dict[str, str]:
    reply = step_one(client, platform, username)
    assert reply.status_code == 200, reply.text
    session = reply.json()["session"]
    assert session["factor_kind"] is None
    return bearer(session["token"])


def factor_of(first: dict[str, Any], kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in first["factors"] if f["kind"] == kind]
    assert len(found) == 1, first
    return found[0]


def totp_code(secret: bytes, when: datetime) -> str:
    return otp.totp(secret, int(when.timestamp()))


def ocra_answer(key: bytes, code: str, pin: str = PIN) -> str:
    return ocra.ocra_response(SUITE, key, question=code, password_hash=ocra.pin_hash(pin))


def card_answer(values: dict[str, str], indices: list[int]) -> str:
    return "".join(values[str(index)] for index in indices)


def different_digits(right: str) -> str:
    """A well-formed but wrong response: the last digit changed."""
    return right[:-1] + str((int(right[-1]) + 1) % 10)


def different_card_response(right: str) -> str:
    """A well-formed but wrong code-card response: the last character changed."""
    return right[:-1] + ("2" if right[-1] != "2" else "3")


def counted_failures(application: Application, username: str = USER) -> int:
    query = (
        select(func.count())
        .select_from(lockout_failures)
        .where(lockout_failures.c.subject == username)
    )
    with application.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def list_devices(client: TestClient, session: dict[str, str]) -> dict[str, dict[str, Any]]:
    reply = client.get(DEVICES, headers=session)
    assert reply.status_code == 200, reply.text
    return {d["device_id"]: d for d in reply.json()["devices"]}


def enrol_totp(client: TestClient, session: dict[str, str]) -> tuple[str, bytes, dict[str, Any]]:
    reply = client.post(f"{DEVICES}/totp", headers=session)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    secret = body["secret"]
    return body["device_id"], base32_bytes(secret), body


def base32_bytes(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def activate_totp(
    client: TestClient, session: dict[str, str], device_id: str, code: str
) -> dict[str, Any]:
    reply = client.post(
        f"{DEVICES}/{device_id}/activation", headers=session, json={"response": code}
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def order(
    client: TestClient,
    session: dict[str, str],
    kind: str,
    country: str = "US",
    pin: str | None = PIN,
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "country": country}
    if kind == "challenge_card" and pin is not None:
        body["pin"] = pin
    reply = client.post(ORDERS, headers=session, json=body)
    assert reply.status_code == 201, reply.text
    placed: dict[str, Any] = reply.json()
    return placed


def activation_challenge(
    client: TestClient, session: dict[str, str], device_id: str
) -> dict[str, Any] | None:
    reply = client.get(f"{DEVICES}/{device_id}/activation", headers=session)
    assert reply.status_code == 200, reply.text
    challenge: dict[str, Any] | None = reply.json()["challenge"]
    return challenge


def activate_physical(client: TestClient, session: dict[str, str], placed: dict[str, Any]) -> Any:
    challenge = activation_challenge(client, session, placed["device_id"])
    assert challenge is not None
    return client.post(
        f"{DEVICES}/{placed['device_id']}/activation",
        headers=session,
        json={"serial": placed["serial"], "response": physical_answer(placed, challenge)},
    )


def physical_answer(placed: dict[str, Any], challenge: dict[str, Any]) -> str:
    provisioning = placed["provisioning"]
    if placed["kind"] == "challenge_card":
        return ocra_answer(bytes.fromhex(provisioning["key_hex"]), challenge["code"])
    return card_answer(provisioning["values"], challenge["indices"])


@dataclass
class Enrolled:
    """A user with an active authenticator app, challenge card (US) and code card (DE)."""

    totp_id: str
    totp_secret: bytes
    challenge_card: dict[str, Any]
    code_card: dict[str, Any]
    activated_at: datetime
    kinds: dict[str, str] = field(default_factory=dict)  # device_id -> kind

    def answer(self, factor: dict[str, Any], clock: FakeClock) -> str:
        """The right response to an offered factor at the clock's time."""
        if factor["kind"] == "totp":
            assert factor["challenge"] is None
            return totp_code(self.totp_secret, clock.now())
        if factor["kind"] == "challenge_card":
            key = bytes.fromhex(self.challenge_card["provisioning"]["key_hex"])
            return ocra_answer(key, factor["challenge"]["code"])
        values = self.code_card["provisioning"]["values"]
        return card_answer(values, factor["challenge"]["indices"])


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USER, PASSWORD)


@pytest.fixture
def enrolled(client: TestClient, user: str, clock: FakeClock) -> Enrolled:
    session = password_session(client)
    totp_id, secret, _ = enrol_totp(client, session)
    activated = activate_totp(client, session, totp_id, totp_code(secret, clock.now()))
    challenge_card = order(client, session, "challenge_card", "US")
    code_card = order(client, session, "code_card", "DE")
    for placed in (challenge_card, code_card):
        assert activate_physical(client, session, placed).status_code == 200
    clock.advance(STEP)  # the activation code's step is used: the next login needs a new one
    return Enrolled(
        totp_id,
        secret,
        challenge_card,
        code_card,
        parse_time(activated["activated_at"]),
        {
            totp_id: "totp",
            challenge_card["device_id"]: "challenge_card",
            code_card["device_id"]: "code_card",
        },
    )


# R5.1: enrolling an authenticator app


def test_enrolling_an_authenticator_app_shows_the_secret_as_base32_uri_and_qr_code(
    client: TestClient, user: str
) -> None:
    session = password_session(client)

    device_id, secret, body = enrol_totp(client, session)

    assert len(secret) == 20  # R5.1: 160 bits
    assert len(body["secret"]) == 32
    assert set(body["secret"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert USER in body["otpauth_uri"]
    assert body["qr_svg"].startswith("data:image/svg+xml")
    assert device_id.startswith("dev_")
    listed = list_devices(client, session)[device_id]
    assert listed["kind"] == "totp"
    assert listed["state"] == "pending"
    assert listed["activated_at"] is None
    assert "secret" not in listed


def test_an_authenticator_app_is_activated_by_a_valid_code_and_has_no_activation_challenge(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)
    device_id, secret, _ = enrol_totp(client, session)

    assert activation_challenge(client, session, device_id) is None
    activated = activate_totp(client, session, device_id, totp_code(secret, clock.now()))

    assert activated["state"] == "active"
    assert parse_time(activated["activated_at"]) == clock.now()
    assert list_devices(client, session)[device_id]["state"] == "active"


def test_a_wrong_code_does_not_activate_an_authenticator_app(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)
    device_id, secret, _ = enrol_totp(client, session)

    reply = client.post(
        f"{DEVICES}/{device_id}/activation",
        headers=session,
        json={"response": different_digits(totp_code(secret, clock.now()))},
    )

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert list_devices(client, session)[device_id]["state"] == "pending"
    assert step_one(client).json()["session"]["factor_kind"] is None  # still not enrolled


# R5.2, R5.3: ordering and shipping


def test_ordered_devices_are_mailed_and_expected_two_days_later_in_the_us_fourteen_abroad(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)

    challenge_card = order(client, session, "challenge_card", "US")
    code_card = order(client, session, "code_card", "DE")

    assert challenge_card["provisioning"]["ocra_suite"] == "OCRA-1:HOTP-SHA256-8:QN06-PSHA1"
    assert len(bytes.fromhex(challenge_card["provisioning"]["key_hex"])) >= 20
    assert sorted(map(int, code_card["provisioning"]["values"])) == list(range(1, 101))
    listed = list_devices(client, session)
    for placed, days in ((challenge_card, 2), (code_card, 14)):
        device = listed[placed["device_id"]]
        assert device["kind"] == placed["kind"]
        assert device["state"] == "mailed"
        assert device["serial"] == placed["serial"]
        assert parse_time(device["mailed_at"]) == clock.now()
        assert parse_time(device["expected_arrival"]) == clock.now() + timedelta(days=days)
        assert device["activated_at"] is None
        assert "provisioning" not in device


def test_each_physical_device_is_activated_with_its_serial_and_a_response_to_its_challenge(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)
    challenge_card = order(client, session, "challenge_card", "US")
    code_card = order(client, session, "code_card", "DE")

    card_challenge = activation_challenge(client, session, challenge_card["device_id"])
    code_challenge = activation_challenge(client, session, code_card["device_id"])
    assert card_challenge is not None
    assert code_challenge is not None
    assert set(card_challenge) == {"code"}
    assert len(card_challenge["code"]) == 6
    assert card_challenge["code"].isdigit()
    assert set(code_challenge) == {"indices"}
    first, second = code_challenge["indices"]
    assert first != second
    assert 1 <= first <= 100
    assert 1 <= second <= 100

    clock.advance(timedelta(hours=1))
    session = password_session(client)  # the first device is still travelling (R4.3)
    for placed, challenge in ((challenge_card, card_challenge), (code_card, code_challenge)):
        reply = client.post(
            f"{DEVICES}/{placed['device_id']}/activation",
            headers=session,
            json={"serial": placed["serial"], "response": physical_answer(placed, challenge)},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["state"] == "active"
        assert parse_time(reply.json()["activated_at"]) == clock.now()


def test_a_physical_device_is_not_activated_with_a_wrong_serial(
    client: TestClient, user: str, application: Application
) -> None:
    session = password_session(client)
    placed = order(client, session, "code_card", "US")
    challenge = activation_challenge(client, session, placed["device_id"])
    assert challenge is not None

    serial = placed["serial"]
    wrong = ("1" if serial[0] == "9" else "9") + serial[1:]  # one digit off, never the same
    reply = client.post(
        f"{DEVICES}/{placed['device_id']}/activation",
        headers=session,
        json={"serial": wrong, "response": physical_answer(placed, challenge)},
    )

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert list_devices(client, session)[placed["device_id"]]["state"] == "mailed"
    assert counted_failures(application) == 1


def test_the_activation_challenge_of_a_code_card_cannot_be_answered_twice(
    client: TestClient, user: str, application: Application
) -> None:
    session = password_session(client)
    placed = order(client, session, "code_card", "US")
    url = f"{DEVICES}/{placed['device_id']}/activation"
    first = activation_challenge(client, session, placed["device_id"])
    assert first is not None
    right = physical_answer(placed, first)

    wrong = client.post(
        url,
        headers=session,
        json={"serial": placed["serial"], "response": different_card_response(right)},
    )
    again = client.post(url, headers=session, json={"serial": placed["serial"], "response": right})

    assert wrong.status_code == 401
    assert again.status_code == 401  # the challenge was used by the wrong answer
    assert error_of(again)["code"] == "login_failed"
    assert counted_failures(application) == 2
    second = activation_challenge(client, session, placed["device_id"])
    assert second is not None
    answer = physical_answer(placed, second)
    activated = client.post(
        url, headers=session, json={"serial": placed["serial"], "response": answer}
    )
    assert activated.status_code == 200, activated.text
    replay = client.post(
        url, headers=session, json={"serial": placed["serial"], "response": answer}
    )
    assert replay.status_code == 409
    assert error_of(replay)["code"] == "conflict"


def test_a_malformed_activation_response_is_refused_with_a_hint_and_not_counted(
    client: TestClient, user: str, application: Application
) -> None:
    session = password_session(client)
    placed = order(client, session, "code_card", "US")
    challenge = activation_challenge(client, session, placed["device_id"])
    assert challenge is not None
    right = physical_answer(placed, challenge)

    reply = client.post(
        f"{DEVICES}/{placed['device_id']}/activation",
        headers=session,
        json={"serial": placed["serial"], "response": right.lower()},
    )

    assert reply.status_code == 401
    assert "upper case" in error_of(reply)["hint"]
    assert counted_failures(application) == 0
    assert activate_physical(client, session, placed).status_code == 200


# R4.1, R4.2: logging in with each device


def test_login_offers_every_active_device_each_with_its_own_challenge(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)

    assert {f["kind"] for f in first["factors"]} == {"totp", "challenge_card", "code_card"}
    assert len({f["factor_id"] for f in first["factors"]}) == 3
    assert all(f["factor_id"] not in enrolled.kinds for f in first["factors"])
    assert factor_of(first, "totp")["challenge"] is None
    code = factor_of(first, "challenge_card")["challenge"]
    assert set(code) == {"code"}
    assert len(code["code"]) == 6
    assert code["code"].isdigit()
    indices = factor_of(first, "code_card")["challenge"]["indices"]
    assert len(indices) == 2
    assert indices[0] != indices[1]
    assert all(1 <= index <= 100 for index in indices)
    assert factor_of(first, "challenge_card")["label"] == (
        f"card {enrolled.challenge_card['serial'][-5:]}"
    )
    assert parse_time(first["expires_at"]) == clock.now() + timedelta(minutes=5)


@pytest.mark.parametrize("platform", ["portal", "trading"])
@pytest.mark.parametrize("kind", ["totp", "challenge_card", "code_card"])
def test_each_permanent_device_logs_in_through_both_doors(
    client: TestClient, enrolled: Enrolled, clock: FakeClock, kind: str, platform: str
) -> None:
    first = factors_of(client, platform)
    factor = factor_of(first, kind)

    reply = respond(client, first["login_id"], factor["factor_id"], enrolled.answer(factor, clock))

    assert reply.status_code == 200, reply.text
    session = reply.json()["session"]
    assert session["factor_kind"] == kind
    assert session["platform"] == platform
    assert session["access"] == "full"
    assert session["username"] == USER
    shown = client.get("/api/v1/session", headers=bearer(session["token"]))
    assert shown.status_code == 200
    assert shown.json()["factor_kind"] == kind
    assert shown.json()["platform"] == platform


def test_a_user_picks_each_device_in_turn(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    for kind, platform in (
        ("code_card", "trading"),
        ("totp", "portal"),
        ("challenge_card", "trading"),
        ("totp", "trading"),
    ):
        clock.advance(STEP)
        first = factors_of(client, platform)
        factor = factor_of(first, kind)
        reply = respond(
            client, first["login_id"], factor["factor_id"], enrolled.answer(factor, clock)
        )
        assert reply.status_code == 200, (kind, reply.text)
        assert reply.json()["session"]["factor_kind"] == kind
        assert reply.json()["session"]["platform"] == platform


def test_devices_are_listed_active_after_activation(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)
    factor = factor_of(first, "code_card")
    reply = respond(client, first["login_id"], factor["factor_id"], enrolled.answer(factor, clock))
    listed = list_devices(client, bearer(reply.json()["session"]["token"]))

    assert {device_id: d["kind"] for device_id, d in listed.items()} == enrolled.kinds
    assert {d["state"] for d in listed.values()} == {"active"}
    assert parse_time(listed[enrolled.totp_id]["activated_at"]) == enrolled.activated_at
    assert listed[enrolled.totp_id]["mailed_at"] is None


# R3.6: malformed responses: login_failed with a hint, not counted, the attempt stays open


MALFORMED = [
    ("totp", lambda right: right[:5], "exactly 6"),
    ("totp", lambda right: right + "0", "exactly 6"),
    ("totp", lambda right: right[:3] + " " + right[3:], "space"),
    ("totp", lambda right: right[:2] + "a" + right[3:], "digits"),
    ("totp", lambda right: "", "exactly 6"),  # empty: a wrong length like any other
    ("totp", lambda right: right * 11, "exactly 6"),  # 66 digits
    ("challenge_card", lambda right: right[:7], "exactly 8"),
    ("challenge_card", lambda right: right[:4] + " " + right[4:], "space"),
    ("challenge_card", lambda right: "O" + right[1:], "digits"),
    ("code_card", lambda right: right.lower(), "upper case"),
    ("code_card", lambda right: right[:3], "exactly 6"),
    ("code_card", lambda right: right[:3] + " " + right[3:], "space"),
    ("code_card", lambda right: right[:5] + "0", "cannot appear"),
    ("code_card", lambda right: right[:5] + "O", "cannot appear"),
    ("code_card", lambda right: right[:5] + "1", "cannot appear"),
    ("code_card", lambda right: right[:5] + "I", "cannot appear"),
]


@pytest.mark.parametrize(
    ("kind", "spoil", "named"),
    MALFORMED,
    ids=[f"{kind}-{named.replace(' ', '-')}-{i}" for i, (kind, _, named) in enumerate(MALFORMED)],
)
def test_malformed_response_is_login_failed_with_a_hint_and_not_counted(
    client: TestClient,
    enrolled: Enrolled,
    application: Application,
    clock: FakeClock,
    kind: str,
    spoil: Any,
    named: str,
) -> None:
    first = factors_of(client)
    factor = factor_of(first, kind)
    right = enrolled.answer(factor, clock)

    reply = respond(client, first["login_id"], factor["factor_id"], spoil(right))

    assert reply.status_code == 401
    error = error_of(reply)
    assert error["code"] == "login_failed"
    assert error["message"] == "Login failed"
    assert named in error["hint"]
    assert counted_failures(application) == 0
    with application.context.uow() as uow:  # not counted, but audited (R9.1)
        last = readable(uow.audit.records())[-1].event
    assert (last.action, last.outcome, dict(last.details)) == (
        "login.second_factor",
        "login_failed",
        {"malformed": True},
    )
    # It can never be right, so the attempt stays open for the right response.
    fixed = respond(client, first["login_id"], factor["factor_id"], right)
    assert fixed.status_code == 200, fixed.text


def test_nine_failures_and_a_malformed_response_do_not_lock_and_the_tenth_failure_does(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    for _ in range(9):
        first = factors_of(client, "trading")
        factor = factor_of(first, "challenge_card")
        wrong = different_digits(enrolled.answer(factor, clock))
        reply = respond(client, first["login_id"], factor["factor_id"], wrong)
        assert reply.status_code == 401
        assert error_of(reply) == {"code": "login_failed", "message": "Login failed"}
    assert counted_failures(application) == 9

    first = factors_of(client)  # nine failures: not locked
    factor = factor_of(first, "challenge_card")
    right = enrolled.answer(factor, clock)
    malformed = respond(client, first["login_id"], factor["factor_id"], right[:7])
    assert malformed.status_code == 401
    assert "hint" in error_of(malformed)
    assert counted_failures(application) == 9
    tenth = respond(client, first["login_id"], factor["factor_id"], different_digits(right))
    assert tenth.status_code == 401
    assert error_of(tenth)["code"] == "login_failed"

    locked = step_one(client)  # the right password, refused while locked (R3.3)
    assert locked.status_code == 423
    assert error_of(locked)["code"] == "account_locked"
    assert parse_time(error_of(locked)["locked_until"]) == clock.now() + DAY


def test_a_malformed_response_while_locked_is_refused_account_locked_not_given_a_hint(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    pending = factors_of(client)  # step one passed before the lock
    factor = factor_of(pending, "challenge_card")
    for _ in range(10):
        first = factors_of(client, "trading")
        wrong = different_digits(enrolled.answer(factor_of(first, "challenge_card"), clock))
        respond(client, first["login_id"], factor_of(first, "challenge_card")["factor_id"], wrong)
    assert step_one(client).status_code == 423

    reply = respond(
        client, pending["login_id"], factor["factor_id"], enrolled.answer(factor, clock)[:7]
    )

    assert reply.status_code == 423, reply.text
    assert error_of(reply)["code"] == "account_locked"
    assert parse_time(error_of(reply)["locked_until"]) == clock.now() + DAY
    assert counted_failures(application) == 10


def test_a_success_after_nine_failures_resets_the_count(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    for _ in range(9):
        first = factors_of(client)
        factor = factor_of(first, "code_card")
        wrong = different_card_response(enrolled.answer(factor, clock))
        assert respond(client, first["login_id"], factor["factor_id"], wrong).status_code == 401
    first = factors_of(client)
    factor = factor_of(first, "code_card")
    right = enrolled.answer(factor, clock)
    assert respond(client, first["login_id"], factor["factor_id"], right).status_code == 200

    assert counted_failures(application) == 0
    first = factors_of(client)
    factor = factor_of(first, "code_card")
    wrong = different_card_response(enrolled.answer(factor, clock))
    assert respond(client, first["login_id"], factor["factor_id"], wrong).status_code == 401
    assert step_one(client).status_code == 200


def test_unknown_factor_id_is_login_failed_and_counted(
    client: TestClient, enrolled: Enrolled, application: Application
) -> None:
    first = factors_of(client)

    reply = respond(client, first["login_id"], "fct_" + "A" * 43, "123456")

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert counted_failures(application) == 1
    assert respond(client, first["login_id"], "fct_x", "123456").status_code == 410


def test_a_device_id_given_as_factor_id_is_login_failed_and_counted(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    first = factors_of(client)

    reply = respond(
        client, first["login_id"], enrolled.totp_id, totp_code(enrolled.totp_secret, clock.now())
    )

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert counted_failures(application) == 1


def test_factor_id_of_another_login_attempt_is_login_failed_and_counted(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    other = factors_of(client, "trading")
    first = factors_of(client)
    foreign = factor_of(other, "challenge_card")

    reply = respond(
        client, first["login_id"], foreign["factor_id"], enrolled.answer(foreign, clock)
    )

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert counted_failures(application) == 1
    # The other attempt was not touched: its own factor still logs in.
    own = respond(client, other["login_id"], foreign["factor_id"], enrolled.answer(foreign, clock))
    assert own.status_code == 200, own.text
    assert own.json()["session"]["platform"] == "trading"


def test_factor_id_of_another_users_login_is_login_failed_and_counted_for_this_user(
    client: TestClient, enrolled: Enrolled, application: Application, clock: FakeClock
) -> None:
    make_user(application, "other123", PASSWORD)
    session = password_session(client, username="other123")
    placed = order(client, session, "code_card", "US")
    assert activate_physical(client, session, placed).status_code == 200
    theirs = factors_of(client, username="other123")
    mine = factors_of(client)
    foreign = factor_of(theirs, "code_card")
    answer = card_answer(placed["provisioning"]["values"], foreign["challenge"]["indices"])

    reply = respond(client, mine["login_id"], foreign["factor_id"], answer)

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert counted_failures(application) == 1
    assert counted_failures(application, "other123") == 0


# R4.2: one response per login attempt, within 5 minutes


def test_a_wrong_response_ends_the_login_attempt(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)
    factor = factor_of(first, "code_card")
    right = enrolled.answer(factor, clock)

    wrong = respond(client, first["login_id"], factor["factor_id"], different_card_response(right))
    second = respond(client, first["login_id"], factor["factor_id"], right)

    assert wrong.status_code == 401
    assert error_of(wrong) == {"code": "login_failed", "message": "Login failed"}
    assert second.status_code == 410
    assert error_of(second)["code"] == "login_expired"


def test_a_wrong_response_to_one_factor_ends_the_attempt_for_every_factor(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)
    card = factor_of(first, "challenge_card")
    code_card = factor_of(first, "code_card")
    wrong = different_digits(enrolled.answer(card, clock))

    assert respond(client, first["login_id"], card["factor_id"], wrong).status_code == 401
    other = respond(
        client, first["login_id"], code_card["factor_id"], enrolled.answer(code_card, clock)
    )
    assert other.status_code == 410


def test_replaying_a_response_to_a_used_login_is_login_expired(
    client: TestClient, enrolled: Enrolled, clock: FakeClock, application: Application
) -> None:
    first = factors_of(client)
    factor = factor_of(first, "challenge_card")
    right = enrolled.answer(factor, clock)
    assert respond(client, first["login_id"], factor["factor_id"], right).status_code == 200

    replay = respond(client, first["login_id"], factor["factor_id"], right)

    assert replay.status_code == 410
    assert error_of(replay)["code"] == "login_expired"
    assert counted_failures(application) == 0


def test_unknown_login_id_is_login_expired(client: TestClient, enrolled: Enrolled) -> None:
    reply = respond(client, "lgn_" + "A" * 43, "fct_" + "A" * 43, "123456")

    assert reply.status_code == 410
    assert error_of(reply)["code"] == "login_expired"


def test_a_login_attempt_is_answered_up_to_five_minutes_after_step_one(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)
    assert parse_time(first["expires_at"]) == clock.now() + timedelta(minutes=5)
    factor = factor_of(first, "code_card")
    clock.advance(timedelta(minutes=5) - timedelta(seconds=1))

    reply = respond(client, first["login_id"], factor["factor_id"], enrolled.answer(factor, clock))

    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("kind", ["totp", "challenge_card", "code_card"])
def test_a_login_attempt_is_expired_five_minutes_after_step_one_and_not_counted(
    client: TestClient, enrolled: Enrolled, clock: FakeClock, application: Application, kind: str
) -> None:
    first = factors_of(client)
    factor = factor_of(first, kind)
    clock.advance(timedelta(minutes=5))

    right = respond(client, first["login_id"], factor["factor_id"], enrolled.answer(factor, clock))
    malformed = respond(client, first["login_id"], factor["factor_id"], "x")

    assert right.status_code == 410
    assert error_of(right)["code"] == "login_expired"
    assert malformed.status_code == 410
    assert counted_failures(application) == 0
    again = factors_of(client)
    factor = factor_of(again, kind)
    reply = respond(client, again["login_id"], factor["factor_id"], enrolled.answer(factor, clock))
    assert reply.status_code == 200, reply.text


# R5 totp: a used step is never accepted again; the step before the current one is


def test_the_code_that_activated_an_authenticator_app_cannot_log_in(
    client: TestClient, user: str, clock: FakeClock, application: Application
) -> None:
    session = password_session(client)
    device_id, secret, _ = enrol_totp(client, session)
    code = totp_code(secret, clock.now())
    activate_totp(client, session, device_id, code)

    first = factors_of(client)
    factor = factor_of(first, "totp")
    reply = respond(client, first["login_id"], factor["factor_id"], code)

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"
    assert counted_failures(application) == 1
    clock.advance(STEP)
    first = factors_of(client)
    factor = factor_of(first, "totp")
    fresh = respond(client, first["login_id"], factor["factor_id"], totp_code(secret, clock.now()))
    assert fresh.status_code == 200, fresh.text


def test_the_same_code_logs_in_once_and_is_refused_the_second_time(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    code = totp_code(enrolled.totp_secret, clock.now())
    first = factors_of(client, "trading")
    factor = factor_of(first, "totp")
    assert respond(client, first["login_id"], factor["factor_id"], code).status_code == 200

    clock.advance(timedelta(seconds=10))  # still the same step
    again = factors_of(client)
    factor = factor_of(again, "totp")
    reply = respond(client, again["login_id"], factor["factor_id"], code)

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"


def test_once_a_step_is_used_the_code_of_the_step_before_it_is_refused(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    clock.advance(STEP)
    first = factors_of(client)
    factor = factor_of(first, "totp")
    current = totp_code(enrolled.totp_secret, clock.now())
    assert respond(client, first["login_id"], factor["factor_id"], current).status_code == 200

    again = factors_of(client)
    factor = factor_of(again, "totp")
    previous = totp_code(enrolled.totp_secret, clock.now() - STEP)
    reply = respond(client, again["login_id"], factor["factor_id"], previous)

    assert reply.status_code == 401


def test_the_code_of_the_previous_step_is_accepted_and_two_steps_back_refused(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    clock.advance(2 * STEP)  # nothing used since the activation, three steps ago

    first = factors_of(client)
    factor = factor_of(first, "totp")
    two_back = totp_code(enrolled.totp_secret, clock.now() - 2 * STEP)
    refused = respond(client, first["login_id"], factor["factor_id"], two_back)

    second = factors_of(client)
    factor = factor_of(second, "totp")
    one_back = totp_code(enrolled.totp_secret, clock.now() - STEP)
    accepted = respond(client, second["login_id"], factor["factor_id"], one_back)

    assert refused.status_code == 401
    assert error_of(refused)["code"] == "login_failed"
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["session"]["factor_kind"] == "totp"


def test_a_code_of_the_next_step_is_refused(
    client: TestClient, enrolled: Enrolled, clock: FakeClock
) -> None:
    first = factors_of(client)
    factor = factor_of(first, "totp")
    ahead = totp_code(enrolled.totp_secret, clock.now() + STEP)

    assert respond(client, first["login_id"], factor["factor_id"], ahead).status_code == 401


def test_a_challenge_card_response_made_with_another_pin_is_refused(
    client: TestClient, enrolled: Enrolled
) -> None:
    first = factors_of(client)
    factor = factor_of(first, "challenge_card")
    key = bytes.fromhex(enrolled.challenge_card["provisioning"]["key_hex"])
    wrong_pin = ocra_answer(key, factor["challenge"]["code"], pin="1357")

    reply = respond(client, first["login_id"], factor["factor_id"], wrong_pin)

    assert reply.status_code == 401
    assert error_of(reply)["code"] == "login_failed"


# R4.3, R5.4: the first device's grace and auto-activation


def test_a_user_whose_first_device_is_mailed_logs_in_with_the_password_alone_for_14_days(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)
    placed = order(client, session, "code_card", "DE")
    mailed_at = clock.now()

    clock.advance(timedelta(days=14) - timedelta(seconds=1))
    for platform in ("portal", "trading"):
        reply = step_one(client, platform)
        assert reply.status_code == 200, reply.text
        assert reply.json()["session"]["factor_kind"] is None
        assert reply.json()["session"]["platform"] == platform
    still = list_devices(client, password_session(client))[placed["device_id"]]
    assert still["state"] == "mailed"
    assert still["activated_at"] is None

    clock.advance(timedelta(seconds=1))
    first = factors_of(client)  # 14 days after mailing: active by itself, and required
    assert [f["kind"] for f in first["factors"]] == ["code_card"]
    factor = first["factors"][0]
    answer = card_answer(placed["provisioning"]["values"], factor["challenge"]["indices"])
    reply = respond(client, first["login_id"], factor["factor_id"], answer)
    assert reply.status_code == 200, reply.text
    device = list_devices(client, bearer(reply.json()["session"]["token"]))[placed["device_id"]]
    assert device["state"] == "active"
    assert parse_time(device["activated_at"]) == mailed_at + timedelta(days=14)


def test_auto_activation_noticed_by_a_listing_is_dated_fourteen_days_after_mailing(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    portal = password_session(client)
    totp_id, secret, _ = enrol_totp(client, portal)
    activate_totp(client, portal, totp_id, totp_code(secret, clock.now()))
    placed = order(client, portal, "challenge_card", "US")  # a second device, in the mail
    mailed_at = clock.now()
    clock.advance(timedelta(days=13, hours=12))
    first = factors_of(client, "trading")
    reply = respond(
        client, first["login_id"], first["factors"][0]["factor_id"], totp_code(secret, clock.now())
    )
    assert reply.status_code == 200, reply.text
    trading = bearer(reply.json()["session"]["token"])  # a trading session lasts 24 hours

    clock.advance(timedelta(hours=20))
    device = list_devices(client, trading)[placed["device_id"]]

    assert device["state"] == "active"
    assert parse_time(device["activated_at"]) == mailed_at + timedelta(days=14)


def test_a_password_only_session_of_the_grace_does_not_outlive_the_auto_activation(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    order(client, password_session(client), "challenge_card", "US")
    clock.advance(timedelta(days=13, hours=12))
    trading = password_session(client, "trading")

    clock.advance(timedelta(hours=20))

    assert client.get(DEVICES, headers=trading).status_code == 401
    assert "factors" in step_one(client).json()  # the device is active, and required


def test_a_password_only_session_opened_in_the_grace_ends_when_the_device_activates_by_itself(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = password_session(client)
    order(client, session, "code_card", "DE")
    grace_ends = clock.now() + timedelta(days=14)

    clock.advance(timedelta(days=14) - timedelta(minutes=10))
    trading = step_one(client, "trading").json()["session"]
    portal = step_one(client, "portal").json()["session"]
    # a day's trading session and half an hour idle in the portal: both end with the grace
    assert parse_time(trading["expires_at"]) == grace_ends
    assert parse_time(portal["expires_at"]) == grace_ends
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    for opened in (trading, portal):
        assert client.get("/api/v1/session", headers=bearer(opened["token"])).status_code == 200

    clock.advance(timedelta(seconds=1))

    for opened in (trading, portal):
        reply = client.get("/api/v1/session", headers=bearer(opened["token"]))
        assert reply.status_code == 401, reply.text


def test_a_password_only_session_of_a_user_never_enrolled_keeps_the_doors_own_limits(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    trading = step_one(client, "trading").json()["session"]

    assert parse_time(trading["expires_at"]) == clock.now() + DAY


def test_an_activated_first_device_ends_the_password_only_grace_at_once(
    client: TestClient, user: str
) -> None:
    session = password_session(client)
    placed = order(client, session, "code_card", "US")
    assert activate_physical(client, session, placed).status_code == 200

    first = factors_of(client)

    assert [f["kind"] for f in first["factors"]] == ["code_card"]


def test_a_user_never_enrolled_logs_in_with_the_password_alone(
    client: TestClient, user: str
) -> None:
    session = step_one(client, "trading").json()["session"]

    assert session["factor_kind"] is None
    assert session["platform"] == "trading"
    assert session["access"] == "full"


# Ordering: a full session, and a PIN of 4 digits


def test_ordering_or_enrolling_without_a_session_is_unauthenticated(client: TestClient) -> None:
    ordered = client.post(ORDERS, json={"kind": "code_card", "country": "US"})
    enrolled = client.post(f"{DEVICES}/totp")
    listed = client.get(DEVICES)

    for reply in (ordered, enrolled, listed):
        assert reply.status_code == 401
        assert error_of(reply)["code"] == "unauthenticated"


def test_ordering_or_enrolling_from_a_temporary_passcode_session_is_forbidden(
    client: TestClient, enrolled: Enrolled, application: Application
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        account = uow.users.get(USER)
    assert account is not None
    passcode = helpdesk.issue_temporary_passcode(ctx, account, Caller("agent:amy")).passcode
    first = factors_of(client)
    factor = factor_of(first, "temporary_passcode")
    reply = respond(client, first["login_id"], factor["factor_id"], passcode)
    assert reply.status_code == 200, reply.text
    assert reply.json()["session"]["access"] == "full"
    session = bearer(reply.json()["session"]["token"])

    ordered = client.post(
        ORDERS, headers=session, json={"kind": "challenge_card", "pin": PIN, "country": "US"}
    )
    app = client.post(f"{DEVICES}/totp", headers=session)

    for refused in (ordered, app):
        assert refused.status_code == 403
        assert error_of(refused)["code"] == "forbidden"


def test_enrolling_or_ordering_from_a_trading_session_is_forbidden(
    client: TestClient, user: str
) -> None:
    """R5.1: an authenticator app from a full-access *portal* session; an order likewise
    (docs/devices.md). The same code as the online card at the wrong door (R7.1)."""
    trading = password_session(client, "trading")
    portal = password_session(client, "portal")

    ordered = client.post(ORDERS, headers=trading, json={"kind": "code_card", "country": "US"})
    app = client.post(f"{DEVICES}/totp", headers=trading)

    for refused in (ordered, app):
        assert refused.status_code == 403
        assert error_of(refused)["code"] == "forbidden"
    assert list_devices(client, trading) == {}
    assert client.post(f"{DEVICES}/totp", headers=portal).status_code == 201


@pytest.mark.parametrize(
    "pin",
    ["12a4", "12345", "123", "", "12 4", " 1234", "١٢٣٤", "１２３４", None],
    ids=["letter", "five", "three", "empty", "space", "leading-space", "arabic", "wide", "none"],
)
def test_ordering_a_challenge_card_without_a_four_digit_pin_is_invalid_request(
    client: TestClient, user: str, pin: str | None
) -> None:
    session = password_session(client)
    body: dict[str, Any] = {"kind": "challenge_card", "country": "US"}
    if pin is not None:
        body["pin"] = pin

    reply = client.post(ORDERS, headers=session, json=body)

    assert reply.status_code == 422
    error = error_of(reply)
    assert error["code"] == "invalid_request"
    assert error["field"] == "pin"
    assert list_devices(client, session) == {}


@pytest.mark.parametrize("country", ["us", "USA", "U", "1A", ""])
def test_ordering_to_a_country_that_is_not_two_upper_case_letters_is_invalid_request(
    client: TestClient, user: str, country: str
) -> None:
    session = password_session(client)

    reply = client.post(ORDERS, headers=session, json={"kind": "code_card", "country": country})

    assert reply.status_code == 422
    assert error_of(reply)["field"] == "country"


# Other users' devices, and devices that no longer work


def test_another_users_device_is_not_found(
    client: TestClient, application: Application, user: str
) -> None:
    mine = password_session(client)
    placed = order(client, mine, "code_card", "US")
    make_user(application, "other123", PASSWORD)
    theirs = password_session(client, username="other123")
    url = f"{DEVICES}/{placed['device_id']}/activation"

    challenge = client.get(url, headers=theirs)
    answered = client.post(
        url, headers=theirs, json={"serial": placed["serial"], "response": "ABCDEF"}
    )
    unknown = client.get(f"{DEVICES}/dev_nosuchdevice/activation", headers=theirs)

    for reply in (challenge, answered, unknown):
        assert reply.status_code == 404
        assert error_of(reply)["code"] == "not_found"
    assert list_devices(client, theirs) == {}
    assert counted_failures(application, "other123") == 0
    assert list_devices(client, mine)[placed["device_id"]]["state"] == "mailed"


def test_an_enrolled_user_whose_every_device_is_lost_has_no_usable_second_factor(
    client: TestClient, enrolled: Enrolled, application: Application
) -> None:
    with application.engine.begin() as connection:
        connection.execute(text("UPDATE devices SET state = 'lost'"))

    for platform in ("portal", "trading"):
        reply = step_one(client, platform)
        assert reply.status_code == 403
        error = error_of(reply)
        assert error["code"] == "no_usable_second_factor"
        assert "Client Services" in error["message"]


def test_a_lost_device_is_no_longer_offered_but_the_others_are(
    client: TestClient, enrolled: Enrolled, application: Application
) -> None:
    with application.engine.begin() as connection:
        connection.execute(
            text("UPDATE devices SET state = 'lost' WHERE device_id = :d"),
            {"d": enrolled.code_card["device_id"]},
        )

    first = factors_of(client)

    assert {f["kind"] for f in first["factors"]} == {"totp", "challenge_card"}
