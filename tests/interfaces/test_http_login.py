"""The login door over HTTP (R1.3, R2.3, R3.3, R4.5-R4.7): the contract's exact errors.

Every test runs through the ASGI app (TestClient) on SQLite and on PostgreSQL, with the
application's clock injected (``clock``) so that lock and session windows can be crossed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.web.app import create_app
from tests.clock import FakeClock
from tests.conftest import PASSWORD, make_user

LOGINS = "/api/v1/logins"
SESSION = "/api/v1/session"
WRONG_PASSWORD = "Wrong4horse"
INVALID_CREDENTIALS_MESSAGE = "Invalid user name password combination"
SESSION_FIELDS = {
    "token",
    "username",
    "platform",
    "access",
    "factor_kind",
    "expires_at",
    "replaced_trading_session",
}


def login(client: TestClient, username: str, password: str, platform: str = "portal") -> Any:
    return client.post(
        LOGINS, json={"username": username, "password": password, "platform": platform}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def parse_time(text: str) -> datetime:
    assert text.endswith(("Z", "+00:00")), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def comparable_headers(response: Any) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "date"}


def audit_records(client: TestClient, admin_token: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/admin/audit", headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, "abcde123", PASSWORD)


# R1.3: bad characters


@pytest.mark.parametrize(
    "username",
    [
        "abc de123",
        " abcde123",
        "abcde123 ",
        "abc\u0000de123",
        "abcdé123",
        "abc😀123",
        "abc-de123",
    ],
    ids=["inner-space", "leading-space", "trailing-space", "nul", "e-acute", "emoji", "hyphen"],
)
def test_username_with_a_character_outside_letters_and_digits_is_bad_character(
    client: TestClient, user: str, admin_token: str, username: str
) -> None:
    before = audit_records(client, admin_token)

    response = login(client, username, PASSWORD)

    assert response.status_code == 400
    assert error_of(response) == {"code": "bad_character", "message": "BAD CHARACTER"}
    assert audit_records(client, admin_token) == before  # R1.3: not a login attempt


def test_bad_character_attempts_are_not_counted_toward_a_lock(
    client: TestClient, user: str
) -> None:
    for _ in range(12):
        assert login(client, "abcde123 ", PASSWORD).status_code == 400

    assert login(client, user, PASSWORD).status_code == 200


# R2.3: one reply for an unknown username and a wrong password


def test_unknown_username_and_wrong_password_get_the_same_status_body_and_headers(
    client: TestClient, user: str
) -> None:
    wrong_password = login(client, user, WRONG_PASSWORD)
    unknown_user = login(client, "zzzzz999", WRONG_PASSWORD)

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert error_of(wrong_password) == {
        "code": "invalid_credentials",
        "message": INVALID_CREDENTIALS_MESSAGE,
    }
    assert comparable_headers(wrong_password) == comparable_headers(unknown_user)


def test_caps_lock_hint_depends_only_on_upper_case_letters_in_the_username(
    client: TestClient, user: str
) -> None:
    upper_known_spelling = login(client, "ABCDE123", PASSWORD)
    upper_unknown = login(client, "Zzzzz999", WRONG_PASSWORD)
    lower_unknown = login(client, "zzzzz999", PASSWORD)

    for response in (upper_known_spelling, upper_unknown):
        assert response.status_code == 401
        error = error_of(response)
        assert error["code"] == "invalid_credentials"
        assert error["message"] == INVALID_CREDENTIALS_MESSAGE
        assert "Caps Lock" in error["hint"]
    assert upper_known_spelling.json() == upper_unknown.json()
    assert "hint" not in error_of(lower_unknown)


# R3.3: the lock


def test_tenth_wrong_password_locks_and_the_eleventh_attempt_is_account_locked(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    for _ in range(10):
        response = login(client, user, WRONG_PASSWORD)
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_credentials"

    response = login(client, user, WRONG_PASSWORD)

    assert response.status_code == 423
    error = error_of(response)
    assert error["code"] == "account_locked"
    assert parse_time(error["locked_until"]) == clock.now() + timedelta(hours=24)


def test_correct_password_is_account_locked_while_locked_and_the_lock_is_not_extended(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    for _ in range(10):
        login(client, user, WRONG_PASSWORD)
    unlock_at = clock.now() + timedelta(hours=24)
    clock.advance(timedelta(hours=23))

    for platform in ("portal", "trading"):
        response = login(client, user, PASSWORD, platform)
        assert response.status_code == 423
        assert error_of(response)["code"] == "account_locked"
        assert parse_time(error_of(response)["locked_until"]) == unlock_at
    assert "token" not in response.text

    clock.advance(timedelta(hours=1))
    assert login(client, user, PASSWORD).status_code == 200


def test_unknown_username_is_locked_after_ten_attempts_like_an_existing_one(
    client: TestClient,
) -> None:
    statuses = [login(client, "nobody999", WRONG_PASSWORD).status_code for _ in range(11)]

    assert statuses == [401] * 10 + [423]


def test_successful_login_resets_the_count_of_failed_attempts(
    client: TestClient, user: str
) -> None:
    for _ in range(9):
        assert login(client, user, WRONG_PASSWORD).status_code == 401
    assert login(client, user, PASSWORD).status_code == 200

    statuses = [login(client, user, WRONG_PASSWORD).status_code for _ in range(11)]

    assert statuses == [401] * 10 + [423]


def test_failures_more_than_twenty_four_hours_before_the_last_do_not_lock(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    for _ in range(9):
        assert login(client, user, WRONG_PASSWORD).status_code == 401
    clock.advance(timedelta(hours=24, minutes=1))

    assert login(client, user, WRONG_PASSWORD).status_code == 401
    assert login(client, user, PASSWORD).status_code == 200


class HeldHasher:
    """The fast hasher, except that the first ``hold`` verifies wait until released.

    It makes "ten correct logins are between admission and settlement" a fact rather
    than a race, so the test below is deterministic.
    """

    def __init__(self, inner: Argon2Hasher, hold: int) -> None:
        self._inner = inner
        self._hold = hold
        self._held = 0
        self._lock = threading.Lock()
        self._all_held = threading.Event()
        self._released = threading.Event()

    def hash(self, secret: str) -> str:
        return self._inner.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        with self._lock:
            hold = self._held < self._hold
            self._held += hold
            if self._held == self._hold:
                self._all_held.set()
        if hold:
            self._released.wait(timeout=30)
        return self._inner.verify(stored_hash, secret)

    def verify_dummy(self, secret: str) -> bool:
        return self._inner.verify_dummy(secret)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._inner.needs_rehash(stored_hash)

    def wait_until_all_held(self) -> bool:
        return self._all_held.wait(timeout=30)

    def release(self) -> None:
        self._released.set()


def test_ten_correct_logins_in_flight_neither_lock_the_account_nor_refuse_an_eleventh(
    settings: Settings, clock: FakeClock, fast_hasher: Argon2Hasher, admin_token: str
) -> None:
    # Ten logins held in the hasher at once, in one process: room for ten hashes at once
    # (the login endpoints' threads follow the hashes a process may run, web/offload.py).
    settings = replace(settings, hash_concurrency=10)
    hasher = HeldHasher(fast_hasher, hold=10)
    held_app = build(settings, clock=clock, hasher=hasher)
    make_user(held_app, "abcde123", PASSWORD)
    try:
        with (
            TestClient(create_app(settings, held_app)) as client,
            ThreadPoolExecutor(max_workers=10) as pool,
        ):
            try:
                in_flight = [pool.submit(login, client, "abcde123", PASSWORD) for _ in range(10)]
                assert hasher.wait_until_all_held()
                eleventh = login(client, "abcde123", PASSWORD)
            finally:
                hasher.release()
            settled = [future.result(timeout=30) for future in in_flight]
            actions = [record["action"] for record in audit_records(client, admin_token)]
    finally:
        held_app.dispose()

    assert [response.status_code for response in settled] == [200] * 10
    assert "account.locked" not in actions  # not one password was wrong (R3.2)
    assert eleventh.status_code in (200, 429), eleventh.text  # perhaps "wait", never locked


# R4.5: the session


def test_password_only_login_returns_a_session_with_the_contract_fields(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    response = login(client, user, PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"session"}
    session = body["session"]
    assert set(session) == SESSION_FIELDS
    assert session["token"] and isinstance(session["token"], str)
    assert session["username"] == user
    assert session["platform"] == "portal"
    assert session["access"] == "full"
    assert session["factor_kind"] is None
    assert session["replaced_trading_session"] is False
    assert parse_time(session["expires_at"]) == clock.now() + timedelta(minutes=30)


def test_get_session_shows_the_session_without_its_token(client: TestClient, user: str) -> None:
    token = login(client, user, PASSWORD).json()["session"]["token"]

    response = client.get(SESSION, headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == SESSION_FIELDS - {"token"}
    assert body["username"] == user
    assert body["platform"] == "portal"
    assert body["access"] == "full"
    assert token not in response.text


def test_logout_answers_204_and_the_token_is_then_unauthenticated(
    client: TestClient, user: str
) -> None:
    token = login(client, user, PASSWORD).json()["session"]["token"]

    logout = client.delete(SESSION, headers=bearer(token))

    assert logout.status_code == 204
    assert logout.content == b""
    for method in ("GET", "DELETE"):
        response = client.request(method, SESSION, headers=bearer(token))
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, bearer("sls_nonsense")],
    ids=["none", "empty-bearer", "basic", "unknown-token"],
)
def test_session_without_a_valid_token_is_unauthenticated(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get(SESSION, headers=headers)

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_second_trading_login_replaces_the_first_and_the_first_token_is_dead(
    client: TestClient, user: str
) -> None:
    first = login(client, user, PASSWORD, "trading").json()["session"]
    portal = login(client, user, PASSWORD, "portal").json()["session"]

    second = login(client, user, PASSWORD, "trading").json()["session"]

    assert first["replaced_trading_session"] is False
    assert second["replaced_trading_session"] is True
    assert second["platform"] == "trading"
    assert client.get(SESSION, headers=bearer(first["token"])).status_code == 401
    assert client.get(SESSION, headers=bearer(second["token"])).status_code == 200
    assert client.get(SESSION, headers=bearer(portal["token"])).status_code == 200


def test_trading_login_after_logout_replaces_nothing(client: TestClient, user: str) -> None:
    first = login(client, user, PASSWORD, "trading").json()["session"]
    assert client.delete(SESSION, headers=bearer(first["token"])).status_code == 204

    second = login(client, user, PASSWORD, "trading").json()["session"]

    assert second["replaced_trading_session"] is False


def test_simultaneous_trading_logins_leave_exactly_one_live_trading_session(
    client: TestClient, user: str
) -> None:
    logins = 8  # fewer than 10: see the in-flight lockout test below
    barrier = threading.Barrier(logins, timeout=30)

    def trading_login(_index: int) -> dict[str, Any]:
        barrier.wait()
        response = login(client, user, PASSWORD, "trading")
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()["session"]
        return session

    with ThreadPoolExecutor(max_workers=logins) as pool:
        sessions = list(pool.map(trading_login, range(logins), timeout=60))

    live = [
        s for s in sessions if client.get(SESSION, headers=bearer(s["token"])).status_code == 200
    ]
    assert len(live) == 1
    assert sum(s["replaced_trading_session"] for s in sessions) == logins - 1


def test_trading_session_lasts_twenty_four_hours(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    session = login(client, user, PASSWORD, "trading").json()["session"]
    assert parse_time(session["expires_at"]) == clock.now() + timedelta(hours=24)

    clock.advance(timedelta(hours=23, minutes=59))
    assert client.get(SESSION, headers=bearer(session["token"])).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert client.get(SESSION, headers=bearer(session["token"])).status_code == 401


def test_portal_session_expires_after_thirty_idle_minutes_and_use_restarts_the_idle_clock(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    token = login(client, user, PASSWORD).json()["session"]["token"]

    clock.advance(timedelta(minutes=29))
    used = client.get(SESSION, headers=bearer(token))
    assert used.status_code == 200
    assert parse_time(used.json()["expires_at"]) == clock.now() + timedelta(minutes=30)
    clock.advance(timedelta(minutes=29))
    assert client.get(SESSION, headers=bearer(token)).status_code == 200

    clock.advance(timedelta(minutes=30))
    response = client.get(SESSION, headers=bearer(token))

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"
