"""Hostile and malformed input at the HTTP edge: always a JSON refusal, never a 500.

No reply may hold a stack trace or the password that was sent, and input refused as
malformed is never a login attempt (nothing counted, nothing audited as one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from securelogin.bootstrap import Application
from securelogin.web.portal.pages import SECURITY_HEADERS
from tests.conftest import PASSWORD, make_user

LOGINS = "/api/v1/logins"
JSON_HEADERS = {"content-type": "application/json"}
MAX_BODY_BYTES = 64 * 1024
SECRET_PASSWORD = "Sekr1tPassw0rdThatMustNeverEcho"


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, "abcde123", PASSWORD)


def post_raw(client: TestClient, body: bytes | Iterator[bytes]) -> Any:
    return client.post(LOGINS, content=body, headers=JSON_HEADERS)


def assert_clean_refusal(response: Any, status: int, code: str, *secrets: str) -> dict[str, Any]:
    """A JSON error body of the contract's form, no traceback, none of ``secrets``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    for secret in secrets:
        assert secret not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def audit_records(client: TestClient, admin_token: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def assert_nothing_counted(
    client: TestClient, admin_token: str, user: str, records_before: list[dict[str, Any]]
) -> None:
    """Nothing was audited, and the user still has all 10 attempts before a lock (R3.2)."""
    assert audit_records(client, admin_token) == records_before
    for _ in range(9):
        wrong = {"username": user, "password": "Wrong4horse", "platform": "portal"}
        assert client.post(LOGINS, json=wrong).status_code == 401
    right = {"username": user, "password": PASSWORD, "platform": "portal"}
    assert client.post(LOGINS, json=right).status_code == 200


# Size


def test_body_over_64_kib_is_refused_with_413_json(client: TestClient, user: str) -> None:
    padding = "x" * MAX_BODY_BYTES
    body = json.dumps({"username": user, "password": SECRET_PASSWORD, "platform": "portal"})
    oversized = (body[:-1] + f', "padding": "{padding}"}}').encode()

    response = post_raw(client, oversized)

    assert_clean_refusal(response, 413, "payload_too_large", SECRET_PASSWORD)


def test_a_refused_body_gets_the_security_headers_and_an_access_line(
    client: TestClient, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securelogin.access")
    oversized = json.dumps(
        {"username": user, "password": SECRET_PASSWORD, "padding": "x" * MAX_BODY_BYTES}
    ).encode()

    response = post_raw(client, oversized)

    assert_clean_refusal(response, 413, "payload_too_large", SECRET_PASSWORD)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == ["POST (no route) 413"]
    assert all(SECRET_PASSWORD not in r.getMessage() for r in caplog.records)


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of one HTTP request from 127.0.0.1, for driving the app directly."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class UnexpectedBugError(Exception):
    """A bug of ours, as unexpected as any: it carries what it was given."""


@pytest.mark.parametrize(
    ("method", "path", "content_type", "broken"),
    [
        ("POST", LOGINS, "application/json", "securelogin.services.login.start_login"),
        ("GET", "/login", "text/html", "securelogin.web.portal.login.render"),
    ],
)
def test_an_unexpected_error_is_a_500_with_the_security_headers_and_an_access_line(
    settings: Any,
    application: Application,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    content_type: str,
    broken: str,
) -> None:
    from securelogin.web.app import create_app

    def bug(*_: object, **__: object) -> None:
        raise UnexpectedBugError(SECRET_PASSWORD)

    monkeypatch.setattr(broken, bug)
    caplog.set_level(logging.INFO, logger="securelogin")
    body = {"username": "abcde123", "password": SECRET_PASSWORD, "platform": "portal"}
    # The test client raises what the app lets out, as uvicorn would log it whole: nothing.
    with TestClient(create_app(settings, application)) as raw:
        response = raw.request(method, path, json=body if method == "POST" else None)

    assert response.status_code == 500
    assert response.headers["content-type"].startswith(content_type)
    assert "Traceback" not in response.text and SECRET_PASSWORD not in response.text
    if content_type == "application/json":
        assert response.json()["error"]["code"] == "internal_error"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [f"{method} {path} 500"]
    (bug_line,) = [r.getMessage() for r in caplog.records if r.name == "securelogin.web"]
    assert bug_line.startswith(f"internal error on {method} {path}: UnexpectedBugError at ")
    assert bug_line.endswith(" in bug")  # where it was raised, for whoever mends it
    assert "\n" not in bug_line  # one record, one line
    assert all(SECRET_PASSWORD not in r.getMessage() for r in caplog.records)


def test_a_bug_at_the_edge_itself_is_a_500_with_the_security_headers_and_an_access_line(
    settings: Any,
    application: Application,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug before any handler could answer (here: reading the body): answered by the edge
    itself, not left to uvicorn, whose own 500 carries none of the security headers."""
    from securelogin.web import app as web_app

    async def bug(*_: object, **__: object) -> None:
        raise UnexpectedBugError(SECRET_PASSWORD)

    monkeypatch.setattr(web_app, "read_whole_body", bug)
    caplog.set_level(logging.INFO, logger="securelogin")
    body = {"username": "abcde123", "password": SECRET_PASSWORD, "platform": "portal"}
    with TestClient(web_app.create_app(settings, application)) as raw:
        response = raw.post(LOGINS, json=body)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert SECRET_PASSWORD not in response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == ["POST (no route) 500"]
    (bug_line,) = [r.getMessage() for r in caplog.records if r.name == "securelogin.web"]
    assert bug_line.startswith("internal error on POST (no route): UnexpectedBugError at ")
    assert "\n" not in bug_line
    assert all(SECRET_PASSWORD not in r.getMessage() for r in caplog.records)


def test_a_bug_at_the_edge_that_cannot_even_be_answered_does_not_leave_the_app(
    settings: Any,
    application: Application,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing raised reaches uvicorn, which would log it whole: not the bug, and not a
    failure to send its 500 either (both are logged with their type and frames only)."""
    from securelogin.web import app as web_app

    async def bug(*_: object, **__: object) -> None:
        raise UnexpectedBugError(SECRET_PASSWORD)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def broken_send(_message: MutableMapping[str, Any]) -> None:
        raise UnexpectedBugError(SECRET_PASSWORD)

    monkeypatch.setattr(web_app, "read_whole_body", bug)
    caplog.set_level(logging.INFO, logger="securelogin")
    scope = http_scope("POST", LOGINS, [(b"content-type", b"application/json")])

    asyncio.run(web_app.create_app(settings, application)(scope, receive, broken_send))

    bug_lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.web"]
    assert [line.split(" at ", 1)[0] for line in bug_lines] == [
        "internal error on POST (no route): UnexpectedBugError"
    ] * 2
    assert not any("\n" in line for line in bug_lines)
    lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == ["POST (no route) 500"]
    assert all(SECRET_PASSWORD not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("cut_after", [1, 2])
def test_a_body_cut_short_by_the_client_leaving_is_not_acted_on(
    settings: Any,
    application: Application,
    client: TestClient,
    admin_token: str,
    user: str,
    caplog: pytest.LogCaptureFixture,
    cut_after: int,
) -> None:
    """A portal login form whose client left halfway through its password: had the server
    acted on what arrived, half a password would have been a counted failure."""
    from securelogin.web.app import create_app
    from securelogin.web.portal.pages import CSRF_COOKIE, CSRF_FIELD

    records_before = audit_records(client, admin_token)
    caplog.set_level(logging.INFO, logger="securelogin.access")
    form = urlencode({CSRF_FIELD: "t0ken", "username": user, "password": PASSWORD}).encode()
    arrived = [form[: len(form) - 4], form[len(form) - 4 : len(form) - 2]][:cut_after]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in arrived
    ] + [{"type": "http.disconnect"}]
    scope = http_scope(
        "POST",
        "/login",
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(form)).encode()),
            (b"cookie", f"{CSRF_COOKIE}=t0ken".encode()),
        ],
    )
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(create_app(settings, application)(scope, receive, send))

    assert sent == []  # nobody to answer
    lines = [r.getMessage() for r in caplog.records if r.name == "securelogin.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == ["POST (no route) 499"]
    assert_nothing_counted(client, admin_token, user, records_before)


def test_body_over_64_kib_sent_in_chunks_without_a_length_is_refused_with_413_json(
    client: TestClient,
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "abcde123", "password": "'
        for _ in range(20):
            yield b"A1" * 2048
        yield b'", "platform": "portal"}'

    response = post_raw(client, chunks())

    assert_clean_refusal(response, 413, "payload_too_large")


def test_body_of_exactly_64_kib_is_read(client: TestClient, user: str) -> None:
    prefix = json.dumps({"username": user, "password": PASSWORD, "platform": "portal"})[:-1]
    filler = ', "padding": "'
    room = MAX_BODY_BYTES - len(prefix) - len(filler) - len('"}')
    body = (prefix + filler + "y" * room + '"}').encode()
    assert len(body) == MAX_BODY_BYTES

    assert post_raw(client, body).status_code == 200


@pytest.mark.parametrize("field", ["username", "password"])
def test_ten_thousand_character_field_is_invalid_request_and_not_counted(
    client: TestClient, user: str, admin_token: str, field: str
) -> None:
    body = {"username": user, "password": PASSWORD, "platform": "portal", field: "a1" * 5000}
    before = audit_records(client, admin_token)

    response = client.post(LOGINS, json=body)

    error = assert_clean_refusal(response, 422, "invalid_request", "a1" * 100)
    assert error["field"] == field
    assert_nothing_counted(client, admin_token, user, before)


def test_ten_thousand_character_passwords_never_lock_the_user(
    client: TestClient, user: str
) -> None:
    for _ in range(11):
        body = {"username": user, "password": "Z9" * 5000, "platform": "portal"}
        assert client.post(LOGINS, json=body).status_code == 422

    assert (
        client.post(
            LOGINS, json={"username": user, "password": PASSWORD, "platform": "portal"}
        ).status_code
        == 200
    )


# Malformed bodies


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{", b'{"username": "abcde123",}', b"username=abcde123&platform=portal", b""],
    ids=["words", "open-brace", "trailing-comma", "form-encoded", "empty"],
)
def test_body_that_is_not_json_is_invalid_request(client: TestClient, raw: bytes) -> None:
    assert_clean_refusal(post_raw(client, raw), 422, "invalid_request")


def test_body_that_is_not_utf8_is_invalid_request(client: TestClient) -> None:
    response = post_raw(client, b'{"username": "abcde123", "password": "\xff\xfe"}')

    assert_clean_refusal(response, 422, "invalid_request")


@pytest.mark.parametrize("path", [LOGINS, f"{LOGINS}/some-login-id/response"])
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"username": "abcde123", "password": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"a":' * 8_000 + b"1" + b"}" * 8_000,
    ],
    ids=["arrays", "in-a-field", "objects"],
)
def test_json_nested_past_the_recursion_limit_is_invalid_request(
    client: TestClient, user: str, admin_token: str, path: str, raw: bytes
) -> None:
    assert len(raw) <= MAX_BODY_BYTES  # within the body limit: the parser sees it all
    before = audit_records(client, admin_token)

    response = client.post(path, content=raw, headers=JSON_HEADERS)

    assert_clean_refusal(response, 422, "invalid_request")
    assert_nothing_counted(client, admin_token, user, before)


def test_json_array_body_is_invalid_request(client: TestClient) -> None:
    response = post_raw(client, b'["abcde123", "Correct4horse", "portal"]')

    assert_clean_refusal(response, 422, "invalid_request", PASSWORD)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": SECRET_PASSWORD, "platform": "portal"}, "username"),
        ({"username": "abcde123", "platform": "portal"}, "password"),
        ({"username": "abcde123", "password": SECRET_PASSWORD}, "platform"),
        ({"username": 12345678, "password": SECRET_PASSWORD, "platform": "portal"}, "username"),
        ({"username": "abcde123", "password": 12345678, "platform": "portal"}, "password"),
        ({"username": ["abcde123"], "password": SECRET_PASSWORD, "platform": "portal"}, "username"),
        ({"username": "abcde123", "password": None, "platform": "portal"}, "password"),
        ({"username": "abcde123", "password": SECRET_PASSWORD, "platform": "web"}, "platform"),
        ({"username": "abcde123", "password": SECRET_PASSWORD, "platform": "Portal"}, "platform"),
        ({"username": "abcde123", "password": SECRET_PASSWORD, "platform": 1}, "platform"),
        ({"username": "abcde123", "password": "", "platform": "portal"}, "password"),
        ({"username": "", "password": SECRET_PASSWORD, "platform": "portal"}, "username"),
    ],
    ids=[
        "missing-username",
        "missing-password",
        "missing-platform",
        "username-number",
        "password-number",
        "username-list",
        "password-null",
        "platform-unknown",
        "platform-capitalised",
        "platform-number",
        "password-empty",
        "username-empty",
    ],
)
def test_malformed_login_body_is_invalid_request_naming_the_field(
    client: TestClient, user: str, admin_token: str, body: dict[str, Any], field: str
) -> None:
    before = audit_records(client, admin_token)

    response = client.post(LOGINS, json=body)

    error = assert_clean_refusal(response, 422, "invalid_request", SECRET_PASSWORD)
    assert error["field"] == field
    assert_nothing_counted(client, admin_token, user, before)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"username": "abcde123", "password": "ab\\ud800cd12", "platform": "portal"}',
        b'{"username": "abcde123", "password": "\\udfff", "platform": "portal"}',
        b'{"username": "abc\\ud800de12", "password": "Correct4horse", "platform": "portal"}',
    ],
    ids=["password-high-surrogate", "password-low-surrogate", "username-surrogate"],
)
def test_lone_surrogate_escape_is_refused_never_a_server_error(
    client: TestClient, user: str, raw: bytes
) -> None:
    response = post_raw(client, raw)

    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text
    assert response.json()["error"]["code"] in {"invalid_request", "bad_character"}


def test_surrogate_in_the_password_is_not_a_counted_attempt(
    client: TestClient, user: str, admin_token: str
) -> None:
    raw = b'{"username": "abcde123", "password": "ab\\ud800cd12", "platform": "portal"}'
    before = audit_records(client, admin_token)

    error = assert_clean_refusal(post_raw(client, raw), 422, "invalid_request")

    assert error["field"] == "password"
    assert_nothing_counted(client, admin_token, user, before)


def test_wrong_password_is_never_echoed_in_the_reply(client: TestClient, user: str) -> None:
    response = client.post(
        LOGINS, json={"username": user, "password": SECRET_PASSWORD, "platform": "portal"}
    )

    assert_clean_refusal(response, 401, "invalid_credentials", SECRET_PASSWORD)


# Routing


def test_unknown_path_is_404_json(client: TestClient) -> None:
    assert_clean_refusal(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_clean_refusal(client.post("/api/v2/logins", json={}), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", LOGINS), ("PUT", LOGINS), ("POST", "/api/v1/session"), ("POST", "/healthz")],
)
def test_wrong_method_is_405_json(client: TestClient, method: str, path: str) -> None:
    assert_clean_refusal(client.request(method, path), 405, "method_not_allowed")


def test_wrong_method_reply_names_the_allowed_methods(client: TestClient) -> None:
    response = client.get(LOGINS)

    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"


# Random input


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
login_shaped = st.fixed_dictionaries(
    {},
    optional={
        "username": st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
        | st.sampled_from(["abcde123", "ABCDE123"])
        | st.text(max_size=70)
        | json_values,
        "password": st.text(max_size=70) | json_values,
        "platform": st.sampled_from(["portal", "trading", "", "PORTAL"]) | json_values,
    },
)
plausible_logins = st.fixed_dictionaries(
    {
        "username": st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
        | st.sampled_from(["abcde123", "ABCDE123"]),
        "password": st.text(min_size=1, max_size=40),
        "platform": st.sampled_from(["portal", "trading"]),
    },
    optional={"extra": json_values},
)
raw_bodies = st.one_of(
    plausible_logins.map(lambda body: json.dumps(body).encode()),
    login_shaped.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=raw_bodies)
def test_random_json_ish_bodies_never_cause_a_server_error(client: TestClient, body: bytes) -> None:
    response = post_raw(client, body)
    event(f"status {response.status_code}")

    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "POST",
            "/api/v1/logins/lgn_%00/response",
            {"factor_id": "f", "response": "1"},
            "login_id",
        ),
        (
            "POST",
            "/api/v1/logins/lgn_x/response",
            {"factor_id": "f\x00", "response": "1"},
            "factor_id",
        ),
        (
            "POST",
            "/api/v1/password-resets",
            {"username": "abc\x00de123", "reset_code": "X", "new_password": PASSWORD},
            "username",
        ),
        ("POST", "/api/v1/admin/users", {"email": "a\x00@example.com"}, "email"),
        ("GET", "/api/v1/admin/audit?after=%00", None, "after"),
    ],
    ids=["login-id-in-path", "factor-id", "reset-username", "admin-email", "query"],
)
def test_a_nul_character_anywhere_but_a_login_username_is_an_invalid_request_naming_it(
    client: TestClient, admin_token: str, method: str, path: str, body: Any, field: str
) -> None:
    """No column can hold a NUL (PostgreSQL refuses it): refused at the edge, never a 500."""
    if body is not None and path.endswith("/users"):
        body = {**json.loads(json.dumps({"username": "abcde123", "password": PASSWORD})), **body}
        body.update(
            country="US",
            full_name="Ada",
            security_questions=[{"question": f"q{i}", "answer": "a"} for i in range(3)],
        )
    response = client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )

    error = assert_clean_refusal(response, 422, "invalid_request", PASSWORD)
    assert error["field"] == field
