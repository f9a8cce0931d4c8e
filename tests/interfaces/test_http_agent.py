"""Client Services over HTTP (R8, R6.1, R6.4, R6.5, R5.6): the agent token, identity
verification, and what a passed verification allows.

Every test runs through the ASGI app (TestClient) on SQLite and on PostgreSQL, with the
application's clock (``clock``) moved by the tests. The helpers at the top are shared with
test_http_recovery.py and test_mail_delivery.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from securelogin.bootstrap import Application
from securelogin.cli.main import cli
from securelogin.domain.accounts import StaffRole
from securelogin.domain.security_questions import QuestionAnswer
from securelogin.services import admin
from securelogin.services.context import Caller
from securelogin.web.portal.pages import CSRF_COOKIE, CSRF_FIELD, STAFF_COOKIE
from tests.clock import FakeClock
from tests.conftest import PASSWORD, QUESTIONS, TEST_SECRET_KEY, make_user

USERNAME = "abcde123"
OTHER = "fghij456"
ANSWERS = {q["question"]: q["answer"] for q in QUESTIONS}
AGENT = "/api/v1/agent"
LOGINS = "/api/v1/logins"
SESSION = "/api/v1/session"
DEVICES = "/api/v1/devices"
PASSCODE_PATTERN = re.compile(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}")
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# ---- helpers shared with the other recovery test files -----------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """The refusal's error object, after checking its status, code and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, error
    assert error["message"], error
    return error


def parse_time(text: str) -> datetime:
    assert text.endswith(("Z", "+00:00")), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_agent_token(application: Application, name: str = "amy") -> str:
    return admin.create_staff_token(
        application.context, name=name, role=StaffRole.AGENT, caller=Caller("test")
    )


def card_response(values: dict[str, str], indices: list[int]) -> str:
    return values[str(indices[0])] + values[str(indices[1])]


def wrong_card_response(values: dict[str, str], indices: list[int]) -> str:
    """A well-formed response that is not the right one."""
    right = card_response(values, indices)
    return "".join("2" if ch != "2" else "3" for ch in right)


class Agent:
    """One agent's side of the telephone conversation, over HTTP."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = bearer(token)

    def start(self, **who: str) -> Any:
        return self.client.post(f"{AGENT}/verifications", headers=self.headers, json=who)

    def answer(self, verification_id: str, answer: str) -> Any:
        return self.client.post(
            f"{AGENT}/verifications/{verification_id}/answer",
            headers=self.headers,
            json={"answer": answer},
        )

    def verify(self, username: str = USERNAME) -> str:
        """A passed verification of ``username``: its id."""
        started = self.start(username=username)
        assert started.status_code == 201, started.text
        body = started.json()
        passed = self.answer(body["verification_id"], ANSWERS[body["question"]])
        assert passed.status_code == 200, passed.text
        return str(body["verification_id"])

    def fail(self, username: str = USERNAME) -> Any:
        """One failed verification of ``username`` (a wrong answer): the reply."""
        started = self.start(username=username)
        assert started.status_code == 201, started.text
        return self.answer(started.json()["verification_id"], "certainly wrong")

    def summary(self, verification_id: str | None, username: str = USERNAME) -> Any:
        params = {"verification_id": verification_id} if verification_id else {}
        return self.client.get(f"{AGENT}/users/{username}", headers=self.headers, params=params)

    def issue_passcode(self, verification_id: str | None, username: str = USERNAME) -> Any:
        return self.client.post(
            f"{AGENT}/users/{username}/temporary-passcode",
            headers=self.headers,
            json={"verification_id": verification_id},
        )

    def passcode(self, username: str = USERNAME) -> str:
        """Verify the caller and issue a temporary passcode: the passcode."""
        issued = self.issue_passcode(self.verify(username), username)
        assert issued.status_code == 201, issued.text
        return str(issued.json()["passcode"])

    def reset_code(self, verification_id: str | None, username: str = USERNAME) -> Any:
        return self.client.post(
            f"{AGENT}/users/{username}/password-reset-code",
            headers=self.headers,
            json={"verification_id": verification_id},
        )

    def mark(self, verification_id: str | None, device_id: str, reason: str = "lost") -> Any:
        return self.client.post(
            f"{AGENT}/devices/{device_id}/loss",
            headers=self.headers,
            json={"verification_id": verification_id, "reason": reason},
        )

    def order(
        self,
        verification_id: str | None,
        username: str = USERNAME,
        kind: str = "code_card",
        country: str = "US",
    ) -> Any:
        return self.client.post(
            f"{AGENT}/users/{username}/device-orders",
            headers=self.headers,
            json={"verification_id": verification_id, "kind": kind, "country": country},
        )


def first_step(
    client: TestClient, platform: str = "portal", username: str = USERNAME, password: str = PASSWORD
) -> Any:
    return client.post(
        LOGINS, json={"username": username, "password": password, "platform": platform}
    )


def offered_kinds(client: TestClient, platform: str = "portal", username: str = USERNAME) -> Any:
    """The kinds of second factor offered now, or the refusal's error code."""
    first = first_step(client, platform, username)
    if first.status_code != 200:
        return first.json()["error"]["code"]
    if "session" in first.json():
        return "password_only"
    return sorted(f["kind"] for f in first.json()["factors"])


def log_in(
    client: TestClient,
    kind: str,
    answer: str | Callable[[dict[str, Any]], str],
    platform: str = "portal",
    username: str = USERNAME,
) -> Any:
    """Both steps with the factor of ``kind``; ``answer`` is the response or makes it from
    the offered factor. The reply of the step that ended the login."""
    first = first_step(client, platform, username)
    if first.status_code != 200 or "session" in first.json():
        return first
    factors = [f for f in first.json()["factors"] if f["kind"] == kind]
    assert factors, f"{kind} not offered: {first.json()['factors']}"
    response = answer(factors[0]) if callable(answer) else answer
    return client.post(
        f"{LOGINS}/{first.json()['login_id']}/response",
        json={"factor_id": factors[0]["factor_id"], "response": response},
    )


def session_of(reply: Any) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    session: dict[str, Any] = reply.json()["session"]
    return session


def password_only_token(client: TestClient, username: str = USERNAME) -> str:
    """A session for a user who needs no second factor (never enrolled, R4.3)."""
    return str(session_of(first_step(client, username=username))["token"])


def activate_code_card(client: TestClient, token: str, device: dict[str, Any]) -> Any:
    """Activate a code card by its serial and the values of the fresh challenge."""
    challenge = client.get(f"{DEVICES}/{device['device_id']}/activation", headers=bearer(token))
    assert challenge.status_code == 200, challenge.text
    indices = challenge.json()["challenge"]["indices"]
    return client.post(
        f"{DEVICES}/{device['device_id']}/activation",
        headers=bearer(token),
        json={
            "serial": device["serial"],
            "response": card_response(device["provisioning"]["values"], indices),
        },
    )


def enrol_code_card(client: TestClient, username: str = USERNAME) -> dict[str, Any]:
    """The user orders a code card and activates it: enrolled (R4.3). The order's body."""
    token = password_only_token(client, username)
    ordered = client.post(
        f"{DEVICES}/orders", headers=bearer(token), json={"kind": "code_card", "country": "US"}
    )
    assert ordered.status_code == 201, ordered.text
    activated = activate_code_card(client, token, ordered.json())
    assert activated.status_code == 200, activated.text
    assert client.delete(SESSION, headers=bearer(token)).status_code == 204
    device: dict[str, Any] = ordered.json()
    return device


def is_live(client: TestClient, token: str) -> bool:
    """Whether the session works (an ended one is ``unauthenticated``)."""
    reply = client.get(SESSION, headers=bearer(token))
    if reply.status_code == 401:
        error_of(reply, 401, "unauthenticated")
        return False
    assert reply.status_code == 200, reply.text
    return True


def last_audit_details(client: TestClient, admin_token: str, action: str) -> dict[str, Any]:
    audit = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    )
    assert audit.status_code == 200, audit.text
    found = [r for r in audit.json()["records"] if r["action"] == action]
    assert found, action
    details: dict[str, Any] = found[-1]["details"]
    return details


def code_card_answer(device: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    values = device["provisioning"]["values"]
    return lambda factor: card_response(values, factor["challenge"]["indices"])


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USERNAME)


@pytest.fixture
def agent(client: TestClient, application: Application, user: str) -> Agent:
    return Agent(client, new_agent_token(application, "amy"))


@pytest.fixture
def other_agent(client: TestClient, application: Application) -> Agent:
    return Agent(client, new_agent_token(application, "bob"))


# ---- who may call the agent endpoints ----------------------------------------------------

AGENT_CALLS = [
    pytest.param("POST", f"{AGENT}/verifications", {"username": USERNAME}, id="start"),
    pytest.param("POST", f"{AGENT}/verifications/ver_x/answer", {"answer": "Rex"}, id="answer"),
    pytest.param("GET", f"{AGENT}/users/{USERNAME}?verification_id=ver_x", None, id="summary"),
    pytest.param(
        "POST",
        f"{AGENT}/users/{USERNAME}/temporary-passcode",
        {"verification_id": "ver_x"},
        id="passcode",
    ),
    pytest.param(
        "POST",
        f"{AGENT}/users/{USERNAME}/password-reset-code",
        {"verification_id": "ver_x"},
        id="reset-code",
    ),
    pytest.param(
        "POST",
        f"{AGENT}/devices/dev_x/loss",
        {"verification_id": "ver_x", "reason": "lost"},
        id="loss",
    ),
    pytest.param(
        "POST",
        f"{AGENT}/users/{USERNAME}/device-orders",
        {"verification_id": "ver_x", "kind": "code_card", "country": "US"},
        id="order",
    ),
]


def call(
    client: TestClient, method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> Any:
    return client.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_without_a_token_is_unauthenticated(
    client: TestClient, user: str, method: str, path: str, body: Any
) -> None:
    error_of(call(client, method, path, body), 401, "unauthenticated")
    error_of(call(client, method, path, body, {"Authorization": "Basic x"}), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_with_an_unknown_token_is_unauthenticated(
    client: TestClient, user: str, method: str, path: str, body: Any
) -> None:
    for token in ("stf_not-a-real-token", "ses_not-a-real-token", "nonsense"):
        error_of(call(client, method, path, body, bearer(token)), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_with_a_user_session_token_is_forbidden(
    client: TestClient, user: str, method: str, path: str, body: Any
) -> None:
    token = password_only_token(client)
    error_of(call(client, method, path, body, bearer(token)), 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_with_an_ended_user_session_token_is_unauthenticated(
    client: TestClient, user: str, method: str, path: str, body: Any
) -> None:
    token = password_only_token(client)
    assert client.delete(SESSION, headers=bearer(token)).status_code == 204
    error_of(call(client, method, path, body, bearer(token)), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_with_an_admin_token_is_forbidden(
    client: TestClient, user: str, admin_token: str, method: str, path: str, body: Any
) -> None:
    error_of(call(client, method, path, body, bearer(admin_token)), 403, "forbidden")


def test_a_refused_token_starts_no_verification(
    client: TestClient, agent: Agent, admin_token: str
) -> None:
    for headers in ({}, bearer(admin_token), bearer(password_only_token(client))):
        client.post(f"{AGENT}/verifications", headers=headers, json={"username": USERNAME})
    audit = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    ).json()
    assert "verification.started" not in json.dumps(audit)


# ---- revoked tokens (securelogin tokens revoke) -------------------------------------------


def revoke(database_url: str, *options: str) -> Result:
    """``securelogin tokens revoke``, as the operator runs it, on the test's database."""
    return CliRunner().invoke(
        cli,
        ["tokens", "revoke", *options],
        env={"SECURELOGIN_DATABASE_URL": database_url, "SECURELOGIN_SECRET_KEY": TEST_SECRET_KEY},
        catch_exceptions=False,
    )


@pytest.mark.parametrize(("method", "path", "body"), AGENT_CALLS)
def test_an_agent_endpoint_with_a_revoked_token_is_unauthenticated_at_once(
    client: TestClient,
    agent: Agent,
    other_agent: Agent,
    database_url: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    """A departed agent's token, or one that leaked (the console's cookie holds it), is
    refused from the request after the operator revoked it; other agents' tokens work on."""
    agent.verify()  # the token worked
    revoked = revoke(database_url, "--name", "amy")
    assert revoked.exit_code == 0, revoked.output

    error_of(call(client, method, path, body, agent.headers), 401, "unauthenticated")
    assert other_agent.start(username=USERNAME).status_code == 201


def test_a_revoked_agent_token_is_refused_by_the_console_and_the_revocation_is_audited(
    client: TestClient, application: Application, admin_token: str, database_url: str
) -> None:
    token = new_agent_token(application, "amy")
    signed_in = {"Cookie": f"{STAFF_COOKIE}={token}"}
    assert client.get("/console", headers=signed_in, follow_redirects=False).status_code == 200

    revoked = revoke(database_url, "--name", "amy")

    assert revoked.exit_code == 0, revoked.output
    assert "Revoked the agent token of amy" in revoked.stdout
    page = client.get("/console", headers=signed_in, follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/console/login")
    csrf = "c" * 43
    sign_in = client.post(
        "/console/login",
        data={CSRF_FIELD: csrf, "token": token},
        headers={"Cookie": f"{CSRF_COOKIE}={csrf}"},
        follow_redirects=False,
    )
    assert sign_in.status_code == 401
    assert "This is not a valid agent token." in sign_in.text
    records = client.get("/api/v1/admin/audit", headers=bearer(admin_token)).json()["records"]
    (record,) = [r for r in records if r["action"] == "staff_token.revoked"]
    assert (record["actor"], record["subject"], record["outcome"]) == ("operator:cli", None, "ok")
    assert record["details"] == {"name": "amy", "role": "agent"}
    assert token not in json.dumps(records)


# ---- identity verification (R8.2) --------------------------------------------------------


def test_a_verification_asks_one_of_the_users_three_questions_at_random(agent: Agent) -> None:
    asked = set()
    for _ in range(24):
        started = agent.start(username=USERNAME)
        assert started.status_code == 201, started.text
        body = started.json()
        assert set(body) == {"verification_id", "question"}
        asked.add(body["question"])
        # Answered, so that the next one draws again (an unanswered one keeps its question).
        assert agent.answer(body["verification_id"], ANSWERS[body["question"]]).status_code == 200
    assert asked == set(ANSWERS)  # 3 * (2/3)**24 < 0.0002: each question comes up


def test_hanging_up_and_calling_back_is_asked_the_same_question_by_any_agent(
    agent: Agent, other_agent: Agent, clock: FakeClock
) -> None:
    """An impostor who knows one answer cannot re-draw until it is their question: an
    unanswered verification's question is asked again (docs/recovery.md)."""
    first = agent.start(username=USERNAME).json()
    for call in range(24):
        clock.advance(20 * MINUTE)  # the earlier ones have expired, unanswered
        who = other_agent if call % 2 else agent
        by = {"email": f"{USERNAME}@example.com"} if call % 3 else {"username": USERNAME}
        again = who.start(**by)
        assert again.status_code == 201, again.text
        assert again.json()["question"] == first["question"]  # 3 * (1/3)**24 were it random


def test_each_verification_has_its_own_id(agent: Agent) -> None:
    ids = {agent.start(username=USERNAME).json()["verification_id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(len(i) >= 20 for i in ids)


def test_the_right_answer_passes_for_15_minutes_for_that_user(
    agent: Agent, clock: FakeClock
) -> None:
    started = agent.start(username=USERNAME).json()
    clock.advance(2 * MINUTE)
    passed = agent.answer(started["verification_id"], ANSWERS[started["question"]])
    assert passed.status_code == 200, passed.text
    body = passed.json()
    assert body["verified"] is True
    assert body["username"] == USERNAME
    assert parse_time(body["expires_at"]) == clock.now() + 15 * MINUTE


def test_a_verification_started_by_email_tells_the_agent_the_username(agent: Agent) -> None:
    """The username reminder (R8.3): the caller knows their e-mail address, not the name."""
    started = agent.start(email=f"{USERNAME}@example.com")
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["question"] in ANSWERS
    assert USERNAME not in started.text  # told only once the caller has answered
    passed = agent.answer(body["verification_id"], ANSWERS[body["question"]])
    assert passed.status_code == 200, passed.text
    assert passed.json()["username"] == USERNAME
    assert agent.summary(body["verification_id"]).status_code == 200


def test_a_verification_by_an_unknown_username_or_email_is_not_found(agent: Agent) -> None:
    error_of(agent.start(username="zzzzz999"), 404, "not_found")
    error_of(agent.start(email="nobody@example.com"), 404, "not_found")


def test_a_verification_needs_exactly_one_of_username_and_email(agent: Agent) -> None:
    error_of(agent.start(), 422, "invalid_request")
    error_of(
        agent.start(username=USERNAME, email=f"{USERNAME}@example.com"), 422, "invalid_request"
    )


def test_an_email_shared_by_two_users_is_refused_without_naming_them(
    client: TestClient, application: Application, agent: Agent
) -> None:
    details = admin.UserDetails(
        username="twin12345",
        password=PASSWORD,
        email=f"{USERNAME}@example.com",
        country="US",
        full_name="Ada Twin",
        security_questions=[QuestionAnswer(q["question"], q["answer"]) for q in QUESTIONS],
    )
    admin.create_user(application.context, details, Caller("test"))
    refused = agent.start(email=f"{USERNAME}@example.com")
    error_of(refused, 409, "conflict")
    assert USERNAME not in refused.text
    assert "twin12345" not in refused.text


ALMOST_RIGHT: list[Any] = [
    pytest.param(str.lower, id="lower-case"),
    pytest.param(str.upper, id="upper-case"),
    pytest.param(str.swapcase, id="swapped-case"),
    pytest.param(lambda a: a + " ", id="trailing-space"),
    pytest.param(lambda a: " " + a, id="leading-space"),
    pytest.param(lambda a: a + "  ", id="two-trailing-spaces"),
    pytest.param(lambda a: a + ".", id="trailing-full-stop"),
    pytest.param(lambda a: a[:-1], id="one-character-short"),
    pytest.param(lambda a: "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in a), id="fw"),
]


@pytest.mark.parametrize("change", ALMOST_RIGHT)
def test_an_almost_right_answer_fails_because_it_must_match_exactly(
    agent: Agent, change: Callable[[str], str]
) -> None:
    started = agent.start(username=USERNAME).json()
    right = ANSWERS[started["question"]]
    assert change(right) != right
    failed = agent.answer(started["verification_id"], change(right))
    error_of(failed, 403, "verification_failed")
    # One answer per verification: the right one now is too late for this one.
    error_of(agent.answer(started["verification_id"], right), 403, "verification_required")
    # A new verification may still pass (one failure locks nothing).
    agent.verify()


ODD_ANSWERS: list[Any] = [
    pytest.param("", 422, "invalid_request", id="empty"),
    pytest.param("x" * 201, 422, "invalid_request", id="too-long"),
    pytest.param("x" * 200, 403, "verification_failed", id="longest"),
    pytest.param("Rex\n", 422, "invalid_request", id="newline"),
    pytest.param("Re\tx", 422, "invalid_request", id="tab"),
    pytest.param("Re\x00x", 422, "invalid_request", id="nul"),
    pytest.param("\u202eRex", 422, "invalid_request", id="bidi-control"),
    pytest.param("Rëx ☃ 🐶 中文", 403, "verification_failed", id="unicode"),
    pytest.param("' OR '1'='1", 403, "verification_failed", id="sql"),
    pytest.param("%s%n{0}", 403, "verification_failed", id="format"),
    pytest.param(" ", 403, "verification_failed", id="one-space"),
]


@pytest.mark.parametrize(("answer", "status", "code"), ODD_ANSWERS)
def test_an_odd_answer_is_refused_cleanly_and_never_crashes(
    agent: Agent, answer: str, status: int, code: str
) -> None:
    started = agent.start(username=USERNAME).json()
    error_of(agent.answer(started["verification_id"], answer), status, code)


def test_an_answer_that_is_not_a_string_is_an_invalid_request(agent: Agent) -> None:
    started = agent.start(username=USERNAME).json()
    path = f"{AGENT}/verifications/{started['verification_id']}/answer"
    bodies: tuple[object, ...] = ({"answer": 42}, {"answer": None}, {"answer": ["Rex"]}, {}, [])
    for body in bodies:
        error_of(agent.client.post(path, headers=agent.headers, json=body), 422, "invalid_request")
    # A malformed answer settles nothing: the verification can still pass.
    assert agent.answer(started["verification_id"], ANSWERS[started["question"]]).status_code == 200


def test_an_answer_with_a_lone_surrogate_is_an_invalid_request(agent: Agent) -> None:
    started = agent.start(username=USERNAME).json()
    raw = json.dumps({"answer": "Re\ud800x"})  # a JSON escape no UTF-8 text can hold
    refused = agent.client.post(
        f"{AGENT}/verifications/{started['verification_id']}/answer",
        headers={**agent.headers, "Content-Type": "application/json"},
        content=raw,
    )
    error_of(refused, 422, "invalid_request")


def test_a_passed_verification_cannot_be_answered_again(agent: Agent) -> None:
    started = agent.start(username=USERNAME).json()
    right = ANSWERS[started["question"]]
    assert agent.answer(started["verification_id"], right).status_code == 200
    error_of(agent.answer(started["verification_id"], right), 403, "verification_required")
    error_of(agent.answer(started["verification_id"], "wrong"), 403, "verification_required")


def test_only_the_agent_who_started_a_verification_may_answer_it(
    agent: Agent, other_agent: Agent
) -> None:
    started = agent.start(username=USERNAME).json()
    right = ANSWERS[started["question"]]
    error_of(other_agent.answer(started["verification_id"], right), 403, "verification_required")
    assert agent.answer(started["verification_id"], right).status_code == 200


def test_an_unknown_verification_cannot_be_answered(agent: Agent) -> None:
    for verification_id in ("ver_unknown", "x" * 300):
        error_of(agent.answer(verification_id, "Rex"), 403, "verification_required")


def test_a_verification_must_be_answered_within_15_minutes_of_its_start(
    agent: Agent, clock: FakeClock
) -> None:
    late = agent.start(username=USERNAME).json()
    in_time = agent.start(username=USERNAME).json()
    clock.advance(15 * MINUTE - SECOND)
    assert agent.answer(in_time["verification_id"], ANSWERS[in_time["question"]]).status_code == 200
    clock.advance(2 * SECOND)
    error_of(
        agent.answer(late["verification_id"], ANSWERS[late["question"]]),
        403,
        "verification_required",
    )


# ---- the phone-support lock (R8.2) -------------------------------------------------------


def test_3_failed_verifications_lock_phone_support_for_24_hours(
    agent: Agent, other_agent: Agent, clock: FakeClock
) -> None:
    error_of(agent.fail(), 403, "verification_failed")
    clock.advance(HOUR)
    error_of(other_agent.fail(), 403, "verification_failed")
    clock.advance(HOUR)
    third_at = clock.now()
    error_of(agent.fail(), 403, "verification_failed")
    locked_until = third_at + 24 * HOUR

    for who in (agent, other_agent):  # the lock is the user's, not the agent's
        for started in (who.start(username=USERNAME), who.start(email=f"{USERNAME}@example.com")):
            error = error_of(started, 423, "verification_locked")
            assert parse_time(error["locked_until"]) == locked_until

    clock.set(locked_until - SECOND)
    error_of(agent.start(username=USERNAME), 423, "verification_locked")
    clock.set(locked_until)
    agent.verify()


def test_a_verification_started_before_the_lock_cannot_pass_while_it_lasts(
    agent: Agent, clock: FakeClock
) -> None:
    pending = agent.start(username=USERNAME).json()
    for _ in range(3):
        error_of(agent.fail(), 403, "verification_failed")
    error = error_of(
        agent.answer(pending["verification_id"], ANSWERS[pending["question"]]),
        423,
        "verification_locked",
    )
    assert parse_time(error["locked_until"]) == clock.now() + 24 * HOUR


def test_two_failures_and_a_pass_lock_nothing(agent: Agent) -> None:
    error_of(agent.fail(), 403, "verification_failed")
    error_of(agent.fail(), 403, "verification_failed")
    verification_id = agent.verify()
    assert agent.summary(verification_id).status_code == 200


def test_a_pass_does_not_wipe_out_earlier_failures(agent: Agent) -> None:
    """Failures count within 24 hours whatever came between (R8.2 has no reset)."""
    error_of(agent.fail(), 403, "verification_failed")
    error_of(agent.fail(), 403, "verification_failed")
    agent.verify()
    error_of(agent.fail(), 403, "verification_failed")
    error_of(agent.start(username=USERNAME), 423, "verification_locked")


def test_3_failures_spread_over_more_than_24_hours_lock_nothing(
    agent: Agent, clock: FakeClock
) -> None:
    error_of(agent.fail(), 403, "verification_failed")
    clock.advance(12 * HOUR)
    error_of(agent.fail(), 403, "verification_failed")
    clock.advance(12 * HOUR + SECOND)
    error_of(agent.fail(), 403, "verification_failed")
    agent.verify()


def test_the_phone_lock_of_one_user_leaves_other_users_alone(
    agent: Agent, application: Application
) -> None:
    make_user(application, OTHER)
    for _ in range(3):
        error_of(agent.fail(), 403, "verification_failed")
    verification_id = agent.verify(OTHER)
    assert agent.summary(verification_id, OTHER).status_code == 200


def test_the_phone_lock_does_not_lock_the_users_own_login(client: TestClient, agent: Agent) -> None:
    for _ in range(3):
        error_of(agent.fail(), 403, "verification_failed")
    assert first_step(client).status_code == 200


# ---- every action needs a passed, unexpired verification of this user by this agent -------


def _device_of_user(client: TestClient) -> str:
    return str(enrol_code_card(client)["device_id"])


ACTIONS: dict[str, Callable[[Agent, str | None, str], Any]] = {
    "summary": lambda a, vid, dev: a.summary(vid),
    "passcode": lambda a, vid, dev: a.issue_passcode(vid),
    "reset-code": lambda a, vid, dev: a.reset_code(vid),
    "loss": lambda a, vid, dev: a.mark(vid, dev),
    "order": lambda a, vid, dev: a.order(vid),
}
SUCCESS = {"summary": 200, "passcode": 201, "reset-code": 201, "loss": 200, "order": 201}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_an_agent_action_refuses_without_a_passed_verification_of_this_user_by_this_agent(
    client: TestClient,
    application: Application,
    agent: Agent,
    other_agent: Agent,
    clock: FakeClock,
    action: str,
) -> None:
    act = ACTIONS[action]
    device_id = _device_of_user(client)
    make_user(application, OTHER)
    unanswered = agent.start(username=USERNAME).json()["verification_id"]
    failed = agent.start(username=USERNAME).json()["verification_id"]
    error_of(agent.answer(failed, "wrong"), 403, "verification_failed")
    other_agents = other_agent.verify()
    other_users = agent.verify(OTHER)

    refusals = {
        "none": None,
        "empty": "",
        "unknown": "ver_unknown",
        "too long": "v" * 128,
        "not answered": unanswered,
        "failed": failed,
        "another agent's": other_agents,
        "for another user": other_users,
    }
    for case, verification_id in refusals.items():
        refused = act(agent, verification_id, device_id)
        assert refused.status_code == 403, (case, refused.text)
        assert refused.json()["error"]["code"] == "verification_required", case

    own = agent.verify()
    clock.advance(15 * MINUTE + SECOND)
    error_of(act(agent, own, device_id), 403, "verification_required")

    # Nothing of what was refused happened.
    check = agent.verify()
    summary = agent.summary(check).json()
    assert summary["temporary_passcode"] is None
    assert [d["state"] for d in summary["devices"]] == ["active"]

    # And the same call with a fresh verification succeeds.
    assert act(agent, check, device_id).status_code == SUCCESS[action]


def test_a_passed_verification_still_authorises_one_second_before_15_minutes(
    agent: Agent, clock: FakeClock
) -> None:
    verification_id = agent.verify()
    clock.advance(15 * MINUTE - SECOND)
    assert agent.summary(verification_id).status_code == 200
    clock.advance(2 * SECOND)
    error_of(agent.summary(verification_id), 403, "verification_required")


def test_a_verification_authorises_many_actions_within_its_15_minutes(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    device = enrol_code_card(client)
    verification_id = agent.verify()
    assert agent.mark(verification_id, device["device_id"]).status_code == 200
    clock.advance(5 * MINUTE)
    assert agent.order(verification_id).status_code == 201
    clock.advance(5 * MINUTE)
    assert agent.issue_passcode(verification_id).status_code == 201
    clock.advance(5 * MINUTE - SECOND)
    assert agent.reset_code(verification_id).status_code == 201


def test_an_unknown_user_or_device_is_not_revealed_before_a_verification(agent: Agent) -> None:
    error_of(agent.summary("ver_unknown", "zzzzz999"), 403, "verification_required")
    error_of(agent.issue_passcode(None, "zzzzz999"), 403, "verification_required")
    error_of(agent.mark(None, "dev_unknown"), 403, "verification_required")


def test_a_verification_does_not_reach_a_device_of_another_user(
    client: TestClient, application: Application, agent: Agent
) -> None:
    make_user(application, OTHER)
    others_device = enrol_code_card(client, OTHER)
    verification_id = agent.verify(USERNAME)
    error_of(agent.mark(verification_id, others_device["device_id"]), 403, "verification_required")


def test_a_nul_character_in_what_an_agent_sends_is_an_invalid_request_naming_the_field(
    settings: Any, application: Application, agent: Agent
) -> None:
    from securelogin.web.app import create_app

    with TestClient(create_app(settings, application), raise_server_exceptions=False) as raw:
        desk = Agent(raw, agent.headers["Authorization"].removeprefix("Bearer "))
        replies = [
            desk.start(username="abc\x00de123"),
            desk.start(email="abc\x00@example.com"),
            desk.answer("ver_%00", "Rex"),
            desk.summary("ver_\x00"),
            desk.summary("ver_x", "abc%00de"),
            desk.issue_passcode("ver_\x00"),
            desk.mark("ver_x", "dev_%00"),
        ]
    assert [r.status_code for r in replies] == [422] * len(replies), [r.text for r in replies]
    assert {r.json()["error"]["code"] for r in replies} == {"invalid_request"}
    assert all(r.json()["error"]["field"] for r in replies)


# ---- the summary an agent sees -----------------------------------------------------------


def test_the_summary_shows_devices_lock_end_passcode_windows_and_online_card(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    device = enrol_code_card(client)
    verification_id = agent.verify()
    summary = agent.summary(verification_id).json()
    assert set(summary) == {
        "username",
        "locked_until",
        "devices",
        "temporary_passcode",
        "online_card",
    }
    assert summary["username"] == USERNAME
    assert summary["locked_until"] is None
    assert summary["temporary_passcode"] is None
    assert summary["online_card"] is None
    (shown,) = summary["devices"]
    assert shown["device_id"] == device["device_id"]
    assert shown["state"] == "active"
    assert "provisioning" not in shown

    issued = agent.issue_passcode(verification_id).json()
    for _ in range(10):
        first_step(client, password="Wrong4horse")
    locked_at = clock.now()
    summary = agent.summary(verification_id).json()
    assert parse_time(summary["locked_until"]) == locked_at + 24 * HOUR
    assert summary["temporary_passcode"] == {
        "issued_at": issued["issued_at"],
        "full_access_until": issued["full_access_until"],
        "portal_access_until": issued["portal_access_until"],
    }
    assert issued["passcode"] not in json.dumps(summary)


def test_the_summary_stops_showing_a_passcode_after_its_12_days(
    agent: Agent, clock: FakeClock
) -> None:
    agent.passcode()
    clock.advance(12 * DAY - SECOND)
    assert agent.summary(agent.verify()).json()["temporary_passcode"] is not None
    clock.advance(SECOND)
    assert agent.summary(agent.verify()).json()["temporary_passcode"] is None


def test_looking_a_caller_up_is_audited_with_the_agents_identity(
    client: TestClient, agent: Agent, admin_token: str, database_url: str
) -> None:
    """R8.1: everything an agent does, reading a caller's summary too; no secret in it."""
    verification_id = agent.verify()
    passcode = agent.issue_passcode(verification_id).json()["passcode"]
    assert agent.summary(verification_id).status_code == 200
    error_of(agent.summary("ver_unknown"), 403, "verification_required")  # nothing shown

    records = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    ).json()["records"]
    (viewed,) = [r for r in records if r["action"] == "agent.caller_viewed"]
    assert (viewed["actor"], viewed["subject"], viewed["outcome"]) == ("agent:amy", USERNAME, "ok")
    assert viewed["details"] == {"devices": 0, "locked": False}
    assert passcode not in json.dumps(records)
    verified = CliRunner().invoke(
        cli,
        ["audit", "verify"],
        env={"SECURELOGIN_DATABASE_URL": database_url, "SECURELOGIN_SECRET_KEY": TEST_SECRET_KEY},
    )
    assert verified.exit_code == 0, verified.output
    assert "audit chain intact" in verified.output


# ---- refusals are agent actions too (R8.1, R9.1) -----------------------------------------

Refused = Callable[[], Any]  # the refused request, made once its case is set up


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    action: str
    subject: str | None
    details: dict[str, Any]  # these must be among the record's details


def _view_unknown_verification(
    a: Agent, _b: Agent, _app: Application, _clock: FakeClock
) -> Refused:
    return lambda: a.summary("ver_unknown")


def _view_without_verification(
    a: Agent, _b: Agent, _app: Application, _clock: FakeClock
) -> Refused:
    return lambda: a.summary(None)


def _view_unknown_user(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    verification_id = a.verify()
    return lambda: a.summary(verification_id, "zzzzz999")


def _passcode_with_another_agents(a: Agent, b: Agent, _app: Application, _k: FakeClock) -> Refused:
    verification_id = b.verify()
    return lambda: a.issue_passcode(verification_id)


def _reset_code_for_another_user(a: Agent, _b: Agent, app: Application, _k: FakeClock) -> Refused:
    make_user(app, OTHER)
    verification_id = a.verify(OTHER)
    return lambda: a.reset_code(verification_id)


def _order_expired(a: Agent, _b: Agent, _app: Application, clock: FakeClock) -> Refused:
    verification_id = a.verify()
    clock.advance(15 * MINUTE + SECOND)
    return lambda: a.order(verification_id)


def _order_failed(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    started = a.start(username=USERNAME).json()
    error_of(a.answer(started["verification_id"], "certainly wrong"), 403, "verification_failed")
    return lambda: a.order(started["verification_id"])


def _loss_unknown_device(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    verification_id = a.verify()
    return lambda: a.mark(verification_id, "dev_unknown")


def _start_unknown_username(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    return lambda: a.start(username="zzzzz999")


def _start_unknown_email(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    return lambda: a.start(email="nobody@example.com")


def _start_locked(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    for _ in range(3):
        error_of(a.fail(), 403, "verification_failed")
    return lambda: a.start(username=USERNAME)


def _answer_unknown(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    return lambda: a.answer("ver_unknown", ANSWERS[QUESTIONS[0]["question"]])


def _answer_another_agents(a: Agent, b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    started = b.start(username=USERNAME).json()
    return lambda: a.answer(started["verification_id"], ANSWERS[started["question"]])


def _answer_expired(a: Agent, _b: Agent, _app: Application, clock: FakeClock) -> Refused:
    started = a.start(username=USERNAME).json()
    clock.advance(15 * MINUTE)
    return lambda: a.answer(started["verification_id"], ANSWERS[started["question"]])


def _answer_again(a: Agent, _b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    started = a.start(username=USERNAME).json()
    assert a.answer(started["verification_id"], ANSWERS[started["question"]]).status_code == 200
    return lambda: a.answer(started["verification_id"], ANSWERS[started["question"]])


def _answer_once_locked(a: Agent, b: Agent, _app: Application, _clock: FakeClock) -> Refused:
    started = a.start(username=USERNAME).json()  # open while three others fail
    for _ in range(3):
        error_of(b.fail(), 403, "verification_failed")
    return lambda: a.answer(started["verification_id"], ANSWERS[started["question"]])


REQUIRED = (403, "verification_required")
REFUSALS = [
    pytest.param(
        _view_unknown_verification,
        Refusal(*REQUIRED, "agent.caller_view", USERNAME, {"reason": "unknown"}),
        id="view-unknown-verification",
    ),
    pytest.param(
        _view_without_verification,
        Refusal(*REQUIRED, "agent.caller_view", USERNAME, {"reason": "missing"}),
        id="view-without-verification",
    ),
    pytest.param(
        _view_unknown_user,
        Refusal(*REQUIRED, "agent.caller_view", None, {"username": "zzzzz999"}),
        id="view-unknown-user",
    ),
    pytest.param(
        _passcode_with_another_agents,
        Refusal(*REQUIRED, "temporary_passcode.issue", USERNAME, {"reason": "another_agent"}),
        id="passcode-another-agents-verification",
    ),
    pytest.param(
        _reset_code_for_another_user,
        Refusal(*REQUIRED, "password_reset_code.issue", USERNAME, {"reason": "another_user"}),
        id="reset-code-another-users-verification",
    ),
    pytest.param(
        _order_expired,
        Refusal(*REQUIRED, "device.order", USERNAME, {"reason": "expired"}),
        id="order-expired-verification",
    ),
    pytest.param(
        _order_failed,
        Refusal(*REQUIRED, "device.order", USERNAME, {"reason": "not_passed"}),
        id="order-failed-verification",
    ),
    pytest.param(
        _loss_unknown_device,
        Refusal(*REQUIRED, "device.deactivation", None, {"device_id": "dev_unknown"}),
        id="loss-unknown-device",
    ),
    pytest.param(
        _start_unknown_username,
        Refusal(
            404, "not_found", "verification.start", None, {"by": "username", "username": "zzzzz999"}
        ),
        id="start-unknown-username",
    ),
    pytest.param(
        _start_unknown_email,
        Refusal(
            404,
            "not_found",
            "verification.start",
            None,
            {"by": "email", "email": "nobody@example.com"},
        ),
        id="start-unknown-email",
    ),
    pytest.param(
        _start_locked,
        Refusal(423, "verification_locked", "verification.start", USERNAME, {"by": "username"}),
        id="start-phone-support-locked",
    ),
    pytest.param(
        _answer_unknown,
        Refusal(*REQUIRED, "verification.answer", None, {"reason": "unknown"}),
        id="answer-unknown-verification",
    ),
    pytest.param(
        _answer_another_agents,
        Refusal(*REQUIRED, "verification.answer", USERNAME, {"reason": "another_agent"}),
        id="answer-another-agents-verification",
    ),
    pytest.param(
        _answer_expired,
        Refusal(*REQUIRED, "verification.answer", USERNAME, {"reason": "expired"}),
        id="answer-expired-verification",
    ),
    pytest.param(
        _answer_again,
        Refusal(*REQUIRED, "verification.answer", USERNAME, {"reason": "answered"}),
        id="answer-answered-verification",
    ),
    pytest.param(
        _answer_once_locked,
        Refusal(423, "verification_locked", "verification.answer", USERNAME, {}),
        id="answer-once-phone-support-locked",
    ),
]


def all_records(client: TestClient, admin_token: str) -> list[dict[str, Any]]:
    reply = client.get("/api/v1/admin/audit", headers=bearer(admin_token))
    assert reply.status_code == 200, reply.text
    records: list[dict[str, Any]] = reply.json()["records"]
    return records


@pytest.mark.parametrize(("case", "expected"), REFUSALS)
def test_a_refused_agent_action_is_audited_once_with_the_agents_identity(
    client: TestClient,
    application: Application,
    agent: Agent,
    other_agent: Agent,
    admin_token: str,
    clock: FakeClock,
    case: Callable[[Agent, Agent, Application, FakeClock], Refused],
    expected: Refusal,
) -> None:
    """R8.1: an agent probing accounts, or acting without a verification, leaves a trace
    (the outcome the error code), committed though the request is refused; never the
    answer typed."""
    refused = case(agent, other_agent, application, clock)
    before = all_records(client, admin_token)

    error = error_of(refused(), expected.status, expected.code)

    (record,) = all_records(client, admin_token)[len(before) :]
    assert (record["actor"], record["action"], record["subject"], record["outcome"]) == (
        "agent:amy",
        expected.action,
        expected.subject,
        expected.code,
    )
    assert expected.details.items() <= record["details"].items(), record["details"]
    if "locked_until" in error:
        assert record["details"]["locked_until"] == error["locked_until"]
    for answer in ANSWERS.values():
        assert answer not in json.dumps(record)


# ---- temporary passcodes (R6.1, R6.2, R6.4, R6.5) ----------------------------------------


def test_a_temporary_passcode_is_8_characters_from_the_alphabet_with_its_windows(
    agent: Agent, clock: FakeClock
) -> None:
    issued = agent.issue_passcode(agent.verify())
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"passcode", "issued_at", "full_access_until", "portal_access_until"}
    assert PASSCODE_PATTERN.fullmatch(body["passcode"]), body["passcode"]
    assert parse_time(body["issued_at"]) == clock.now()
    assert parse_time(body["full_access_until"]) == clock.now() + 2 * DAY
    assert parse_time(body["portal_access_until"]) == clock.now() + 12 * DAY
    assert "no-store" in issued.headers["cache-control"]


def test_a_temporary_passcode_is_shown_only_once(
    client: TestClient, agent: Agent, admin_token: str
) -> None:
    verification_id = agent.verify()
    passcode = agent.issue_passcode(verification_id).json()["passcode"]
    assert passcode not in agent.summary(verification_id).text
    audit = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    )
    assert audit.status_code == 200
    assert "temporary_passcode.issued" in audit.text
    assert passcode not in audit.text


def test_passcodes_differ_from_user_to_user(
    client: TestClient, application: Application, agent: Agent
) -> None:
    codes = {agent.passcode()}
    for n in range(4):
        username = f"user{n}abcd"
        make_user(application, username)
        codes.add(agent.passcode(username))
    assert len(codes) == 5


def test_issuing_a_passcode_suspends_the_users_active_devices(
    client: TestClient, agent: Agent
) -> None:
    device = enrol_code_card(client)
    assert offered_kinds(client) == ["code_card"]
    verification_id = agent.verify()
    assert agent.issue_passcode(verification_id).status_code == 201
    (shown,) = agent.summary(verification_id).json()["devices"]
    assert shown["device_id"] == device["device_id"]
    assert shown["state"] == "suspended"
    assert offered_kinds(client) == ["temporary_passcode"]
    assert offered_kinds(client, "trading") == ["temporary_passcode"]


def test_issuing_a_passcode_ends_the_sessions_opened_with_the_devices_it_suspends(
    client: TestClient, agent: Agent, admin_token: str
) -> None:
    device = enrol_code_card(client)
    portal = session_of(log_in(client, "code_card", code_card_answer(device)))["token"]
    trading = session_of(log_in(client, "code_card", code_card_answer(device), "trading"))
    assert is_live(client, portal) and is_live(client, trading["token"])

    assert agent.issue_passcode(agent.verify()).status_code == 201

    assert not is_live(client, portal)
    assert not is_live(client, trading["token"])
    assert (
        last_audit_details(client, admin_token, "temporary_passcode.issued")["sessions_ended"] == 2
    )


def test_issuing_a_passcode_leaves_a_device_still_in_the_mail_as_it_is(
    client: TestClient, agent: Agent
) -> None:
    enrol_code_card(client)
    verification_id = agent.verify()
    ordered = agent.order(verification_id).json()
    agent.issue_passcode(verification_id)
    states = {d["device_id"]: d["state"] for d in agent.summary(verification_id).json()["devices"]}
    assert states[ordered["device_id"]] == "mailed"


def test_a_second_passcode_is_refused_until_a_permanent_device_is_active_again(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    device = enrol_code_card(client)
    first = agent.passcode()
    clock.advance(HOUR)
    refused = agent.issue_passcode(agent.verify())
    error = error_of(refused, 409, "consecutive_temporary_passcode")
    assert "replacement" in error["message"]

    # The refusal changed nothing: the first passcode still works.
    session = session_of(log_in(client, "temporary_passcode", first))
    assert session["access"] == "full"

    # Reactivating the suspended device allows one more passcode, and only one.
    assert activate_code_card(client, session["token"], device).status_code == 200
    clock.advance(HOUR)
    verification_id = agent.verify()
    assert agent.issue_passcode(verification_id).status_code == 201
    error_of(agent.issue_passcode(verification_id), 409, "consecutive_temporary_passcode")


def test_a_second_passcode_is_refused_even_after_the_first_has_expired(
    agent: Agent, clock: FakeClock
) -> None:
    agent.passcode()
    clock.advance(30 * DAY)
    error_of(agent.issue_passcode(agent.verify()), 409, "consecutive_temporary_passcode")


def test_a_second_passcode_is_allowed_once_a_replacement_activated_by_itself(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    enrol_code_card(client)
    verification_id = agent.verify()
    assert agent.issue_passcode(verification_id).status_code == 201
    assert agent.order(verification_id).status_code == 201
    clock.advance(14 * DAY - SECOND)
    error_of(agent.issue_passcode(agent.verify()), 409, "consecutive_temporary_passcode")
    clock.advance(SECOND)  # the replacement activates by itself (R5.4)
    assert agent.issue_passcode(agent.verify()).status_code == 201


def test_a_replacement_lost_after_it_activated_by_itself_still_allows_a_passcode(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    """R5.4 then R6.5: the replacement was active from its 14th day even though no one
    looked until it was marked lost; that activation allows the next passcode."""
    enrol_code_card(client)
    verification_id = agent.verify()
    assert agent.issue_passcode(verification_id).status_code == 201  # P1, day 0
    replacement = agent.order(verification_id).json()  # D2, mailed on day 0
    clock.advance(20 * DAY)  # nothing happens on day 14: no one reads the devices
    verification_id = agent.verify()
    marked = agent.mark(verification_id, replacement["device_id"])
    assert marked.status_code == 200, marked.text
    assert marked.json()["state"] == "lost"
    issued = agent.issue_passcode(verification_id)
    assert issued.status_code == 201, issued.text  # not consecutive: D2 was active since
    activated_at = parse_time(marked.json()["activated_at"])
    assert activated_at == parse_time(replacement["mailed_at"]) + 14 * DAY


# ---- reset codes (R8.3) ------------------------------------------------------------------


def test_a_reset_code_is_issued_for_24_hours_and_shown_only_once(
    client: TestClient, agent: Agent, clock: FakeClock, admin_token: str
) -> None:
    issued = agent.reset_code(agent.verify())
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) == {"reset_code", "expires_at"}
    assert len(body["reset_code"]) >= 10
    assert parse_time(body["expires_at"]) == clock.now() + 24 * HOUR
    assert "no-store" in issued.headers["cache-control"]
    audit = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    )
    assert "password_reset_code.issued" in audit.text
    assert body["reset_code"] not in audit.text


# ---- loss, damage and replacement (R5.6, R8.3) -------------------------------------------


@pytest.mark.parametrize("reason", ["lost", "damaged"])
def test_a_device_marked_lost_or_damaged_is_never_offered_again(
    client: TestClient, agent: Agent, reason: str
) -> None:
    device = enrol_code_card(client)
    verification_id = agent.verify()
    marked = agent.mark(verification_id, device["device_id"], reason)
    assert marked.status_code == 200, marked.text
    assert marked.json()["device_id"] == device["device_id"]
    assert marked.json()["state"] == reason
    assert offered_kinds(client) == "no_usable_second_factor"
    assert offered_kinds(client, "trading") == "no_usable_second_factor"
    error_of(first_step(client), 403, "no_usable_second_factor")


@pytest.mark.parametrize("reason", ["lost", "damaged"])
def test_a_device_marked_lost_or_damaged_ends_the_sessions_opened_with_it_and_no_other(
    client: TestClient, agent: Agent, admin_token: str, reason: str
) -> None:
    device = enrol_code_card(client)
    portal = session_of(log_in(client, "code_card", code_card_answer(device)))["token"]
    trading = session_of(log_in(client, "code_card", code_card_answer(device), "trading"))
    other = client.post(
        f"{DEVICES}/orders", headers=bearer(portal), json={"kind": "code_card", "country": "US"}
    ).json()
    assert activate_code_card(client, portal, other).status_code == 200
    first = first_step(client).json()
    (factor,) = [f for f in first["factors"] if f["label"] == f"code card {other['serial'][-5:]}"]
    kept = client.post(
        f"{LOGINS}/{first['login_id']}/response",
        json={"factor_id": factor["factor_id"], "response": code_card_answer(other)(factor)},
    )
    kept_token = session_of(kept)["token"]
    assert is_live(client, portal) and is_live(client, trading["token"])

    marked = agent.mark(agent.verify(), device["device_id"], reason)
    assert marked.status_code == 200, marked.text

    assert not is_live(client, portal)
    assert not is_live(client, trading["token"])
    assert is_live(client, kept_token)  # opened with the other device
    details = last_audit_details(client, admin_token, "device.deactivated")
    assert (details["device_id"], details["sessions_ended"]) == (device["device_id"], 2)


@pytest.mark.parametrize("reason", ["lost", "damaged"])
def test_a_device_marked_lost_or_damaged_cannot_be_reactivated_or_marked_again(
    client: TestClient, agent: Agent, reason: str
) -> None:
    device = enrol_code_card(client)
    verification_id = agent.verify()
    agent.mark(verification_id, device["device_id"], reason)
    error_of(agent.mark(verification_id, device["device_id"], "lost"), 409, "conflict")
    error_of(agent.mark(verification_id, device["device_id"], "damaged"), 409, "conflict")
    token = session_of(log_in(client, "temporary_passcode", agent.passcode()))["token"]
    challenge = client.get(f"{DEVICES}/{device['device_id']}/activation", headers=bearer(token))
    error_of(challenge, 409, "conflict")
    refused = client.post(
        f"{DEVICES}/{device['device_id']}/activation",
        headers=bearer(token),
        json={"serial": device["serial"], "response": "ABCDEF"},
    )
    error_of(refused, 409, "conflict")
    devices = client.get(DEVICES, headers=bearer(token)).json()["devices"]
    assert [d["state"] for d in devices] == [reason]


def test_a_loss_reason_other_than_lost_or_damaged_is_an_invalid_request(
    client: TestClient, agent: Agent
) -> None:
    device = enrol_code_card(client)
    verification_id = agent.verify()
    for reason in ("stolen", "active", "", "LOST"):
        error_of(agent.mark(verification_id, device["device_id"], reason), 422, "invalid_request")
    assert agent.summary(verification_id).json()["devices"][0]["state"] == "active"


def test_an_agent_orders_a_replacement_that_is_mailed_with_its_provisioning(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    enrol_code_card(client)
    verification_id = agent.verify()
    ordered = agent.order(verification_id, country="US")
    assert ordered.status_code == 201, ordered.text
    body = ordered.json()
    assert body["kind"] == "code_card"
    assert body["state"] == "mailed"
    assert parse_time(body["mailed_at"]) == clock.now()
    assert parse_time(body["expected_arrival"]) == clock.now() + 2 * DAY
    values = body["provisioning"]["values"]
    assert sorted(int(k) for k in values) == list(range(1, 101))
    assert "no-store" in ordered.headers["cache-control"]
    # Provisioning is shown only at the order.
    assert values["1"] + values["2"] + values["3"] not in agent.summary(verification_id).text


def test_a_replacement_mailed_abroad_is_expected_after_14_days(
    client: TestClient, agent: Agent, clock: FakeClock
) -> None:
    enrol_code_card(client)
    body = agent.order(agent.verify(), country="DE").json()
    assert parse_time(body["expected_arrival"]) == clock.now() + 14 * DAY


def test_an_agent_orders_a_challenge_card_with_the_callers_pin(
    client: TestClient, agent: Agent
) -> None:
    enrol_code_card(client)
    verification_id = agent.verify()
    ordered = agent.client.post(
        f"{AGENT}/users/{USERNAME}/device-orders",
        headers=agent.headers,
        json={
            "verification_id": verification_id,
            "kind": "challenge_card",
            "pin": "4321",
            "country": "US",
        },
    )
    assert ordered.status_code == 201, ordered.text
    assert set(ordered.json()["provisioning"]) == {"ocra_suite", "key_hex"}
    assert "4321" not in agent.summary(verification_id).text
