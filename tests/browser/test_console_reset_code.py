"""The console gives a password-reset code (R8.3): shown once, with its end, never cached;
it changes the caller's password exactly once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from tests.browser.conftest import Served
from tests.browser.pages import Visitor
from tests.browser.test_lost_device_story import USER, verify_caller
from tests.conftest import PASSWORD, make_user

NEW_PASSWORD = "Fresh7start"


def test_an_agent_gives_a_reset_code_that_changes_the_password_once(
    served: Served, visitors: Callable[[], Visitor]
) -> None:
    make_user(served.application, USER)
    agent = visitors()
    console = agent.page
    agent.goto("/console/login", "console-sign-in")
    console.get_by_label("Agent token").fill(served.agent_token())
    agent.click(console.get_by_role("button", name="Sign in"), "console-find-caller")
    verify_caller(agent, USER, "console-caller")

    given = agent.click(
        console.get_by_role("button", name="Give a password-reset code"), "console-reset-code"
    )
    assert given.headers["cache-control"] == "no-store"
    code = console.locator("p.big").inner_text().strip()
    assert code
    ends = console.locator("main time").get_attribute("datetime")
    assert ends == (served.clock.now() + timedelta(hours=24)).isoformat()  # R8.3: 24 hours

    # Shown only once: back on the caller's page, the code is nowhere.
    agent.click(console.get_by_role("link", name="Back to the caller"), "console-after-code")
    assert code not in console.content()

    body = {"username": USER, "reset_code": code, "new_password": NEW_PASSWORD}
    with httpx.Client(base_url=served.base_url) as api:
        assert api.post("/api/v1/password-resets", json=body).status_code == 204
        again = api.post("/api/v1/password-resets", json=body)
        assert again.status_code == 401  # single use
        assert again.json()["error"]["code"] == "invalid_credentials"
        login = {"username": USER, "platform": "portal"}
        assert api.post("/api/v1/logins", json={**login, "password": NEW_PASSWORD}).is_success
        old = api.post("/api/v1/logins", json={**login, "password": PASSWORD})
        assert old.json()["error"]["code"] == "invalid_credentials"
