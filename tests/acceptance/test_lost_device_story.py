"""The whole lost-device story, end to end (issue 4), against a real server over HTTP.

The server's clock is moved by libfaketime (tests/acceptance/server.py); the steps:
a client with a challenge card loses it; an agent verifies them and issues a temporary
passcode; day 1: both doors work; day 3: the trading door refuses and the portal gives
card_print_only; the client prints and activates an online card; trading works again;
the client orders a replacement; it arrives and is activated; the temporary passcode and
the online card no longer work; a second temporary passcode is refused only while no
permanent device has been active since the last one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from securelogin.domain import ocra
from tests.acceptance.server import MovableClockServer, movable_clock_server, run_cli
from tests.conftest import PASSWORD, QUESTIONS, TEST_SECRET_KEY, user_body
from tests.databases import postgres_schema_url

ANSWERS = {q["question"]: q["answer"] for q in QUESTIONS}
SUITE = ocra.parse_ocra_suite(ocra.CHALLENGE_CARD_SUITE)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURELOGIN_")}
    env["SECURELOGIN_SECRET_KEY"] = str(TEST_SECRET_KEY)
    if request.param == "sqlite":
        yield {**env, "SECURELOGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'story.db'}"}
        return
    with postgres_schema_url() as url:
        yield {**env, "SECURELOGIN_DATABASE_URL": url}


class Story:
    """The client's and the agent's side of the conversation, over HTTP."""

    def __init__(self, server: MovableClockServer, agent_token: str) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.agent = {"authorization": f"Bearer {agent_token}"}

    def login(self, platform: str, answer: Any = None, kind: str | None = None) -> httpx.Response:
        """Both steps; ``answer(factor) -> response`` for the factor of ``kind``."""
        first = self.http.post(
            "/api/v1/logins",
            json={"username": "story123", "password": PASSWORD, "platform": platform},
        )
        if first.status_code != 200 or "session" in first.json():
            return first
        factor = next(f for f in first.json()["factors"] if f["kind"] == kind)
        return self.http.post(
            f"/api/v1/logins/{first.json()['login_id']}/response",
            json={"factor_id": factor["factor_id"], "response": answer(factor)},
        )

    def verify_caller(self) -> str:
        started = self.http.post(
            "/api/v1/agent/verifications", headers=self.agent, json={"username": "story123"}
        ).json()
        answered = self.http.post(
            f"/api/v1/agent/verifications/{started['verification_id']}/answer",
            headers=self.agent,
            json={"answer": ANSWERS[started["question"]]},
        )
        assert answered.status_code == 200, answered.text
        return str(started["verification_id"])

    def issue_passcode(self) -> httpx.Response:
        return self.http.post(
            "/api/v1/agent/users/story123/temporary-passcode",
            headers=self.agent,
            json={"verification_id": self.verify_caller()},
        )


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['session']['token']}"}


def card_answer(values: dict[str, str]) -> Any:
    return lambda factor: "".join(values[str(i)] for i in factor["challenge"]["indices"])


def activate(story: Story, session: dict[str, str], device: dict[str, Any], answer: str) -> int:
    reply = story.http.post(
        f"/api/v1/devices/{device['device_id']}/activation",
        headers=session,
        json={"serial": device["serial"], "response": answer},
    )
    return reply.status_code


@pytest.mark.slow
def test_client_who_lost_a_challenge_card_gets_back_in_and_back_to_a_permanent_device(
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    run_cli(["db", "upgrade"], server_env, tmp_path)
    run_cli(
        ["users", "create"],
        server_env,
        tmp_path,
        stdin=json.dumps(user_body("story123", country="DE")),
    )
    agent_token = (
        run_cli(["tokens", "create", "--role", "agent", "--name", "amy"], server_env, tmp_path)
        .strip()
        .splitlines()[-1]
    )
    with movable_clock_server(tmp_path, server_env) as server:
        story = Story(server, agent_token)

        # The client has an active challenge card...
        portal = bearer(story.login("portal"))
        card = story.http.post(
            "/api/v1/devices/orders",
            headers=portal,
            json={"kind": "challenge_card", "pin": "2468", "country": "DE"},
        ).json()
        key = bytes.fromhex(card["provisioning"]["key_hex"])

        def card_response(code: str) -> str:
            return ocra.ocra_response(
                SUITE, key, question=code, password_hash=ocra.pin_hash("2468")
            )

        code = story.http.get(
            f"/api/v1/devices/{card['device_id']}/activation", headers=portal
        ).json()["challenge"]["code"]
        assert activate(story, portal, card, card_response(code)) == 200
        assert (
            story.login(
                "trading", lambda f: card_response(f["challenge"]["code"]), "challenge_card"
            ).status_code
            == 200
        )

        # ...and loses it: the agent verifies the caller, marks it lost, issues a passcode.
        lost = story.http.post(
            f"/api/v1/agent/devices/{card['device_id']}/loss",
            headers=story.agent,
            json={"verification_id": story.verify_caller(), "reason": "lost"},
        )
        assert lost.json()["state"] == "lost"
        issued = story.issue_passcode()
        assert issued.status_code == 201
        passcode = issued.json()["passcode"]

        # Day 1: both doors work with the passcode, with full access.
        server.move_to(days=1)
        for platform in ("portal", "trading"):
            session = story.login(platform, lambda f: passcode, "temporary_passcode")
            assert session.json()["session"]["access"] == "full"

        # Day 3: the trading door refuses it; the portal gives card_print_only.
        server.move_to(days=3)
        refused = story.login("trading", lambda f: passcode, "temporary_passcode")
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            403,
            "platform_not_permitted",
        )
        restricted = story.login("portal", lambda f: passcode, "temporary_passcode")
        assert restricted.json()["session"]["access"] == "card_print_only"
        restricted_session = bearer(restricted)
        assert (
            story.http.post(
                "/api/v1/devices/orders",
                headers=restricted_session,
                json={"kind": "code_card", "country": "DE"},
            ).status_code
            == 403
        )

        # The client prints and activates an online card; trading works again.
        online = story.http.post("/api/v1/online-card", headers=restricted_session).json()
        pdf = story.http.get(
            f"/api/v1/online-card/{online['card_id']}.pdf", headers=restricted_session
        )
        assert pdf.content.startswith(b"%PDF")
        values = online["values"]
        shown = online["activation_challenge"]["indices"]
        activated = story.http.post(
            f"/api/v1/online-card/{online['card_id']}/activation",
            headers=restricted_session,
            json={"response": "".join(values[str(i)] for i in shown)},
        )
        assert activated.status_code == 200
        trading = story.login("trading", card_answer(values), "online_card")
        assert trading.json()["session"]["access"] == "full"
        assert story.issue_passcode().json()["error"]["code"] == "consecutive_temporary_passcode"

        # The client orders a replacement code card; it arrives (DE: 14 days) and is activated.
        with_card = bearer(story.login("portal", card_answer(values), "online_card"))
        replacement = story.http.post(
            "/api/v1/devices/orders", headers=with_card, json={"kind": "code_card", "country": "DE"}
        ).json()
        assert replacement["expected_arrival"] > replacement["mailed_at"]
        server.move_to(days=10)
        with_card = bearer(story.login("portal", card_answer(values), "online_card"))
        challenge = story.http.get(
            f"/api/v1/devices/{replacement['device_id']}/activation", headers=with_card
        ).json()["challenge"]["indices"]
        printed = replacement["provisioning"]["values"]
        assert (
            activate(story, with_card, replacement, "".join(printed[str(i)] for i in challenge))
            == 200
        )

        # The temporary credentials, and the session made with one, no longer work.
        assert story.http.get("/api/v1/session", headers=with_card).status_code == 401
        first = story.http.post(
            "/api/v1/logins",
            json={"username": "story123", "password": PASSWORD, "platform": "portal"},
        ).json()
        assert [f["kind"] for f in first["factors"]] == ["code_card"]
        assert story.login("trading", card_answer(printed), "code_card").status_code == 200

        # A permanent device has been active since the last passcode: a new one is allowed.
        assert story.issue_passcode().status_code == 201
        assert story.issue_passcode().json()["error"]["code"] == "consecutive_temporary_passcode"
