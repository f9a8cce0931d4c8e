"""Operators over HTTP: creating users, reading the audit log, and who may do either.

Also the public endpoints: the security question pools, health and the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql_text

from securelogin.bootstrap import Application
from securelogin.domain.accounts import StaffRole
from securelogin.services import admin
from securelogin.services.context import Caller
from tests.conftest import PASSWORD, QUESTIONS, make_user, user_body

USERS = "/api/v1/admin/users"
AUDIT = "/api/v1/admin/audit"
WRONG_PASSWORD = "Wrong4horse"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def login(client: TestClient, username: str, password: str) -> Any:
    return client.post(
        "/api/v1/logins", json={"username": username, "password": password, "platform": "portal"}
    )


@pytest.fixture
def agent_token(application: Application) -> str:
    return admin.create_staff_token(
        application.context, name="desk", role=StaffRole.AGENT, caller=Caller("test")
    )


@pytest.fixture
def session_token(client: TestClient, application: Application) -> str:
    make_user(application, "sessionuser1")
    token: str = login(client, "sessionuser1", PASSWORD).json()["session"]["token"]
    return token


# Creating users


def test_admin_creates_a_user_with_a_full_username_who_can_then_log_in(
    client: TestClient, admin_token: str
) -> None:
    response = client.post(USERS, json=user_body("abcde123"), headers=bearer(admin_token))

    assert response.status_code == 201
    assert response.json() == {"username": "abcde123"}
    assert login(client, "abcde123", PASSWORD).status_code == 200


def test_admin_creates_a_user_from_a_prefix_with_three_digits_appended(
    client: TestClient, admin_token: str
) -> None:
    body = user_body()
    del body["username"]
    body["prefix"] = "abc"

    first = client.post(USERS, json=body, headers=bearer(admin_token))
    second = client.post(USERS, json=body, headers=bearer(admin_token))

    assert first.status_code == second.status_code == 201
    names = [first.json()["username"], second.json()["username"]]
    assert all(re.fullmatch(r"abc[0-9]{3}", name) for name in names), names
    assert names[0] != names[1]
    assert login(client, names[0], PASSWORD).status_code == 200


def test_creating_a_user_whose_username_is_taken_is_conflict(
    client: TestClient, admin_token: str
) -> None:
    assert client.post(USERS, json=user_body(), headers=bearer(admin_token)).status_code == 201

    response = client.post(
        USERS, json=user_body(password="Other5password"), headers=bearer(admin_token)
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert login(client, "abcde123", PASSWORD).status_code == 200


def _pool_one_only() -> list[dict[str, str]]:
    return [
        {"question": "What was the name of your first pet?", "answer": "Rex"},
        {"question": "In what city or town did your parents meet?", "answer": "Leeds"},
        {"question": "What was the name of the street you grew up on?", "answer": "Elm"},
    ]


INVALID_USERS = [
    (user_body("Abcde123"), "username"),
    (user_body("abc12"), "username"),
    (user_body("1abcdef"), "username"),
    (user_body("abc_def1"), "username"),
    (user_body("a" * 33), "username"),
    ({**user_body(), "prefix": "abc"}, "username"),
    ({key: value for key, value in user_body().items() if key != "username"}, "username"),
    ({**{k: v for k, v in user_body().items() if k != "username"}, "prefix": "ab"}, "prefix"),
    ({**{k: v for k, v in user_body().items() if k != "username"}, "prefix": "abcdefg"}, "prefix"),
    ({**{k: v for k, v in user_body().items() if k != "username"}, "prefix": "ab1"}, "prefix"),
    (user_body(password="Short1"), "password"),
    (user_body(password="onlyletters"), "password"),
    (user_body(password="1234567890"), "password"),
    (user_body(password="x" * 60 + "1234A"), "password"),
    (user_body(password="my1abcde123pw"), "password"),
    (user_body(security_questions=_pool_one_only()), "security_questions"),
    (user_body(security_questions=QUESTIONS[:2]), "security_questions"),
    (user_body(security_questions=[*QUESTIONS[:2], QUESTIONS[0]]), "security_questions"),
    (
        user_body(security_questions=[*QUESTIONS[:2], {"question": "Why?", "answer": "x"}]),
        "security_questions",
    ),
    (user_body(email="not-an-email"), "email"),
    (user_body(email="a@b@example.com"), "email"),
    (user_body(email="a b@example.com"), "email"),
    (user_body(email="@example.com"), "email"),
    (user_body(email="ada@"), "email"),
    (user_body(email="a@[b"), "email"),
    (user_body(email="ada@[192.0.2.1]"), "email"),
    (user_body(email="a,b@example.com"), "email"),
    (user_body(email='"ada"@example.com'), "email"),
    (user_body(email="ada@localhost"), "email"),
    (user_body(email="ada.@example.com"), "email"),
    (user_body(email="ada@example..com"), "email"),
    (user_body(email="ada@-example.com"), "email"),
    (user_body(email="ada@192.0.2.1"), "email"),
    (user_body(email="adä@example.com"), "email"),
    (user_body(email="a" * 65 + "@example.com"), "email"),
    (user_body(country="us"), "country"),
    (user_body(country="USA"), "country"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    INVALID_USERS,
    ids=[
        "username-upper-case",
        "username-too-short",
        "username-starts-with-digit",
        "username-underscore",
        "username-too-long",
        "username-and-prefix",
        "neither-username-nor-prefix",
        "prefix-too-short",
        "prefix-too-long",
        "prefix-with-digit",
        "password-too-short",
        "password-without-digit",
        "password-without-letter",
        "password-too-long",
        "password-contains-username",
        "questions-one-pool",
        "questions-two-only",
        "questions-repeated",
        "questions-unknown",
        "email-no-at",
        "email-two-ats",
        "email-space",
        "email-no-local-part",
        "email-no-domain",
        "email-unclosed-domain-literal",
        "email-domain-literal",
        "email-two-in-one",
        "email-quoted-local-part",
        "email-bare-host-name",
        "email-dot-before-at",
        "email-empty-label",
        "email-label-starts-with-hyphen",
        "email-ip-address",
        "email-non-ascii",
        "email-local-part-too-long",
        "country-lower-case",
        "country-three-letters",
    ],
)
def test_invalid_new_user_is_invalid_request_naming_the_field(
    client: TestClient, admin_token: str, body: dict[str, Any], field: str
) -> None:
    response = client.post(USERS, json=body, headers=bearer(admin_token))

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert "Traceback" not in response.text


def test_answer_that_is_empty_is_invalid_request_naming_the_questions(
    client: TestClient, admin_token: str
) -> None:
    questions = [dict(item) for item in QUESTIONS]
    questions[1]["answer"] = ""

    response = client.post(
        USERS, json=user_body(security_questions=questions), headers=bearer(admin_token)
    )

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"
    assert error_of(response)["field"].startswith("security_questions")


# Who may call the operators' endpoints


@pytest.mark.parametrize(("method", "path"), [("POST", USERS), ("GET", AUDIT)])
def test_operator_endpoint_without_a_token_is_unauthenticated(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json=user_body() if method == "POST" else None)

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize("token", ["garbage", "slst_notarealtoken", "sls_notarealtoken", "x" * 500])
@pytest.mark.parametrize(("method", "path"), [("POST", USERS), ("GET", AUDIT)])
def test_operator_endpoint_with_an_unknown_token_is_unauthenticated(
    client: TestClient, method: str, path: str, token: str
) -> None:
    body = user_body() if method == "POST" else None
    response = client.request(method, path, json=body, headers=bearer(token))

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path"), [("POST", USERS), ("GET", AUDIT)])
def test_operator_endpoint_with_a_user_session_token_is_forbidden(
    client: TestClient, session_token: str, method: str, path: str
) -> None:
    body = user_body() if method == "POST" else None
    response = client.request(method, path, json=body, headers=bearer(session_token))

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), [("POST", USERS), ("GET", AUDIT)])
def test_operator_endpoint_with_an_agent_token_is_forbidden(
    client: TestClient, agent_token: str, method: str, path: str
) -> None:
    body = user_body() if method == "POST" else None
    response = client.request(method, path, json=body, headers=bearer(agent_token))

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_forbidden_user_creation_creates_no_user(
    client: TestClient, agent_token: str, admin_token: str
) -> None:
    client.post(USERS, json=user_body(), headers=bearer(agent_token))

    assert client.post(USERS, json=user_body(), headers=bearer(admin_token)).status_code == 201


# The audit log


def _user_history(client: TestClient, application: Application) -> str:
    """A user logs in and out, then fails ten times and is locked. Returns the token."""
    make_user(application, "abcde123")
    token: str = login(client, "abcde123", PASSWORD).json()["session"]["token"]
    assert client.get("/api/v1/session", headers=bearer(token)).status_code == 200
    assert client.delete("/api/v1/session", headers=bearer(token)).status_code == 204
    for _ in range(10):
        assert login(client, "abcde123", WRONG_PASSWORD).status_code == 401
    assert login(client, "abcde123", PASSWORD).status_code == 423
    return token


def test_audit_for_a_user_holds_attempts_lock_and_sessions_oldest_first(
    client: TestClient, application: Application, admin_token: str
) -> None:
    _user_history(client, application)

    response = client.get(AUDIT, params={"username": "abcde123"}, headers=bearer(admin_token))

    assert response.status_code == 200
    records = response.json()["records"]
    assert all(record["subject"] == "abcde123" for record in records)
    seqs = [record["seq"] for record in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    times = [record["at"] for record in records]
    assert times == sorted(times)
    actions = [record["action"] for record in records]
    assert actions[0] == "user.created"
    for action in ("login.password", "session.created", "session.ended", "account.locked"):
        assert action in actions
    assert actions.count("account.locked") == 1
    assert actions.index("session.created") < actions.index("session.ended")
    assert actions.index("session.ended") < actions.index("account.locked")
    attempts = [r["outcome"] for r in records if r["action"] == "login.password"]
    assert attempts == ["ok"] + ["invalid_credentials"] * 10 + ["account_locked"]
    assert {"seq", "at", "actor", "action", "subject", "outcome", "source", "details"} <= set(
        records[0]
    )


def test_audit_holds_no_password_token_or_answer(
    client: TestClient, application: Application, admin_token: str
) -> None:
    session_token = _user_history(client, application)
    agent = admin.create_staff_token(
        application.context, name="desk", role=StaffRole.AGENT, caller=Caller("test")
    )

    texts = [
        client.get(AUDIT, params=params, headers=bearer(admin_token)).text
        for params in ({"username": "abcde123"}, {})
    ]

    for text in texts:
        for secret in (PASSWORD, WRONG_PASSWORD, session_token, admin_token, agent):
            assert secret not in text
        for secret in ("Hillside", "Volvo 240"):
            assert secret not in text
        assert session_token.removeprefix("sls_") not in text


def test_audit_for_an_unknown_username_is_empty(client: TestClient, admin_token: str) -> None:
    response = client.get(AUDIT, params={"username": "nobody999"}, headers=bearer(admin_token))

    assert response.status_code == 200
    assert response.json()["records"] == []


@pytest.mark.parametrize("username", ["abc\u0000def", "\u0000"], ids=["inner-nul", "nul"])
def test_audit_query_for_a_username_with_a_nul_byte_is_not_a_server_error(
    client: TestClient,
    admin_token: str,
    database_url: str,
    username: str,
    request: pytest.FixtureRequest,
) -> None:
    response = client.get(AUDIT, params={"username": username}, headers=bearer(admin_token))

    assert response.status_code in (200, 422), response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "details",
    ["not json", '{"password":"Correct4horse"}', "[1,2]"],
    ids=["not-json", "a-secret-key", "a-list"],
)
def test_audit_lists_a_record_that_cannot_be_read_as_unreadable_in_its_place(
    client: TestClient, application: Application, admin_token: str, details: str
) -> None:
    """A row changed behind the service's back so that it is no record at all: listed as
    its seq and why, never what it holds, and the rest as ever (not a 500)."""
    _user_history(client, application)
    before = client.get(AUDIT, headers=bearer(admin_token)).json()["records"]
    changed = next(r["seq"] for r in before if r["action"] == "login.password")
    with application.engine.begin() as connection:
        connection.execute(
            sql_text("UPDATE audit_records SET details = :details WHERE seq = :seq"),
            {"details": details, "seq": changed},
        )

    for params in ({}, {"username": "abcde123"}):
        response = client.get(AUDIT, params=params, headers=bearer(admin_token))

        assert response.status_code == 200, response.text
        assert PASSWORD not in response.text
        listed = {record["seq"]: record for record in response.json()["records"]}
        assert set(listed[changed]) == {"seq", "unreadable"}
        assert "details" in listed[changed]["unreadable"]
        for record in before:
            if record["seq"] != changed and record["seq"] in listed:
                assert listed[record["seq"]] == record


# Public endpoints


def test_security_questions_come_in_three_distinct_pools(client: TestClient) -> None:
    response = client.get("/api/v1/security-questions")

    assert response.status_code == 200
    pools = response.json()["pools"]
    assert len(pools) == 3
    assert all(pool and all(isinstance(q, str) and q for q in pool) for pool in pools)
    flat = [question for pool in pools for question in pool]
    assert len(flat) == len(set(flat))
    for item, pool in zip(QUESTIONS, pools, strict=True):
        assert item["question"] in pool


def test_healthz_is_200_when_the_database_is_reachable(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


def test_openapi_document_lists_the_login_endpoint(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/v1/logins"]
    assert "/api/v1/session" in paths
    assert "/api/v1/admin/users" in paths
