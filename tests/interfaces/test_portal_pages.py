"""The Client Portal's pages over HTTP (TestClient): which session they take, and the CSRF
check of their forms. How the pages look and work in a browser is tests/browser/'s part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from securelogin.bootstrap import Application
from securelogin.config import Settings
from securelogin.web.app import create_app
from securelogin.web.portal.pages import (
    CSRF_COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    STAFF_COOKIE,
)
from securelogin.web.transport import is_loopback_name
from tests.conftest import PASSWORD, make_user
from tests.interfaces.test_http_agent import (
    DEVICES,
    USERNAME,
    bearer,
    first_step,
    new_agent_token,
    password_only_token,
    session_of,
)


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USERNAME)


def audit_of(client: TestClient, admin_token: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token)
    ).json()["records"]
    return records


def csrf_of(client: TestClient) -> str:
    """The CSRF token the login page hands this client (its cookie, echoed in forms)."""
    assert client.get("/login").status_code == 200
    return str(client.cookies[CSRF_COOKIE])


# ---- which session is signed in (R4.5, R5.1) ---------------------------------------------


def test_a_trading_session_in_the_portal_cookie_is_not_signed_in(
    client: TestClient, user: str
) -> None:
    """Its token would otherwise escape the portal's 30-minute idle limit (R4.5), and enrol
    an authenticator app from a trading session (R5.1)."""
    trading = str(session_of(first_step(client, "trading"))["token"])
    csrf = csrf_of(client)
    client.cookies.set(SESSION_COOKIE, trading)

    for page in ("/security", "/online-card"):
        shown = client.get(page, follow_redirects=False)
        assert (shown.status_code, shown.headers["location"]) == (303, "/login"), page
    enrol = client.post("/security/totp", data={"csrf": csrf}, follow_redirects=False)
    assert (enrol.status_code, enrol.headers["location"]) == (303, "/login")
    listed = client.get(DEVICES, headers=bearer(trading))
    assert listed.json()["devices"] == []  # nothing was enrolled

    client.cookies.set(SESSION_COOKIE, password_only_token(client))  # a portal session
    assert client.get("/security", follow_redirects=False).status_code == 200


# ---- the CSRF check of every form (web/portal/pages.py) ----------------------------------

CSRF_PAIRS = [
    pytest.param(b"sl_csrf=x", "csrf=%C3%A9", id="non-ascii-submitted"),
    pytest.param("sl_csrf=é".encode(), "csrf=x", id="non-ascii-cookie"),
    pytest.param("sl_csrf=é".encode(), "csrf=%C3%83%C2%A9", id="non-ascii-both-alike"),
    pytest.param(b"sl_csrf=" + b"A" * 43, "csrf=" + "A" * 42 + "%C3%A9", id="non-ascii-last"),
    pytest.param(b"sl_csrf=x", "csrf=y", id="ascii-wrong"),
]


@pytest.mark.parametrize(("cookie", "body"), CSRF_PAIRS)
def test_a_csrf_token_that_is_not_the_cookies_ascii_value_is_forbidden_not_a_500(
    client: TestClient, user: str, cookie: bytes, body: str
) -> None:
    """``hmac.compare_digest`` raises TypeError on non-ASCII str: that was a 500."""
    refused = client.post(
        "/login",
        content=f"{body}&username={USERNAME}&password=x".encode(),
        headers={b"Cookie": cookie, b"Content-Type": b"application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert refused.status_code == 403, refused.text
    assert "This form has expired or did not come from us." in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


# ---- Secure cookies and HSTS (SECURELOGIN_COOKIE_SECURE, web/transport.py) ---------------

PUBLIC_HTTP = "http://broker.example"  # TLS ended at the load balancer: plain http here
HSTS = "max-age=31536000"


def portal_and_console_cookies(
    settings: Settings, application: Application, base_url: str, headers: dict[str, str]
) -> tuple[dict[str, list[str]], list[Any]]:
    """The attributes of every cookie the portal and the console set (a login's, a session's,
    the console's), each by name, and every reply, as a browser at ``base_url`` gets them."""
    set_by: dict[str, list[str]] = {}
    replies: list[Any] = []

    def keep(reply: Any) -> Any:
        replies.append(reply)
        for line in reply.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            set_by.setdefault(name, [a.strip().lower() for a in rest.split(";")[1:]])
        return reply

    token = new_agent_token(application, "amy")
    with TestClient(create_app(settings, application), base_url=base_url) as browser:
        keep(browser.get("/login", headers=headers))
        csrf = "c" * 43
        sent = {**headers, "Cookie": f"{CSRF_COOKIE}={csrf}"}
        forms = [
            ("/login", {"username": USERNAME, "password": PASSWORD}),
            ("/console/login", {"token": token}),
            ("/console/logout", {}),
            ("/logout", {}),
        ]
        for path, form in forms:
            posted = {CSRF_FIELD: csrf, **form}
            reply = keep(browser.post(path, data=posted, headers=sent, follow_redirects=False))
            assert reply.status_code == 303, (path, reply.text)
        keep(browser.get("/api/v1/security-questions", headers=headers))
    return set_by, replies


SECURE_CASES = [
    pytest.param(None, PUBLIC_HTTP, {}, True, id="default-behind-a-load-balancer"),
    pytest.param(None, "http://localhost", {}, False, id="default-localhost"),
    pytest.param(None, "http://127.0.0.1:8000", {}, False, id="default-loopback-address"),
    pytest.param(
        None,
        "http://127.0.0.1:8000",
        {"X-Forwarded-For": "203.0.113.9"},
        True,
        id="default-local-proxy",
    ),
    pytest.param(True, "http://localhost", {}, True, id="forced-on-localhost"),
    pytest.param(False, PUBLIC_HTTP, {}, False, id="off-plain-http"),
    pytest.param(False, "https://broker.example", {}, True, id="off-but-https"),
]


@pytest.mark.parametrize(("cookie_secure", "base_url", "headers", "secure"), SECURE_CASES)
def test_portal_and_console_cookies_are_secure_but_on_plain_http_to_a_loopback_name(
    settings: Settings,
    application: Application,
    user: str,
    cookie_secure: bool | None,
    base_url: str,
    headers: dict[str, str],
    secure: bool,
) -> None:
    """TLS ends at the load balancer (docs/operations.md), so the service sees plain http:
    ``sl_session`` and ``sl_staff`` (an agent's token, for hours) went out without Secure."""
    chosen = dataclasses.replace(settings, cookie_secure=cookie_secure)

    set_by, replies = portal_and_console_cookies(chosen, application, base_url, headers)

    assert {CSRF_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, STAFF_COOKIE} <= set(set_by)
    for name, attributes in set_by.items():
        assert "httponly" in attributes, name
        assert "samesite=strict" in attributes, name
        assert ("secure" in attributes) is secure, (name, attributes)
    for reply in replies:
        assert reply.headers.get("strict-transport-security") == (HSTS if secure else None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.:8000", True),
        ("console.localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10:8000", True),
        ("[::1]:8000", True),
        ("::1", True),
        ("localhost.example.com", False),
        ("broker.example:80", False),
        ("10.0.0.5:8000", False),
        ("[2001:db8::1]", False),
        ("", False),
    ],
)
def test_a_loopback_name_is_localhost_a_name_under_it_or_a_loopback_address(
    host: str, loopback: bool
) -> None:
    assert is_loopback_name(host) is loopback


# ---- a NUL character in a form (web/portal/forms.py) -------------------------------------


def portal_login(client: TestClient, username: str, password: str) -> Any:
    return client.post(
        "/login",
        data={"csrf": csrf_of(client), "username": username, "password": password},
        follow_redirects=False,
    )


def test_a_nul_in_the_portal_username_is_a_bad_character_as_in_the_api(
    client: TestClient, application: Application, admin_token: str
) -> None:
    """R1.3: it was removed, so ``abc\\x00def123`` logged in as ``abcdef123``."""
    make_user(application, "abcdef123")
    before = audit_of(client, admin_token)

    refused = portal_login(client, "abc\x00def123", PASSWORD)

    assert refused.status_code == 400, refused.text
    assert "BAD CHARACTER" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    api = client.post(
        "/api/v1/logins",
        json={"username": "abc\x00def123", "password": PASSWORD, "platform": "portal"},
    )
    assert (api.status_code, api.json()["error"]["code"]) == (400, "bad_character")
    assert audit_of(client, admin_token) == before  # not a login attempt: nothing counted


def test_a_nul_in_the_portal_password_is_a_wrong_password_not_removed(
    client: TestClient, user: str
) -> None:
    refused = portal_login(client, USERNAME, PASSWORD[:3] + "\x00" + PASSWORD[3:])

    assert refused.status_code == 401, refused.text
    assert "Invalid user name password combination" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/login/verify", "factor_id"),
        ("/login/verify", "response"),
        ("/console/login", "token"),
        ("/console/verifications", "lookup"),
        ("/logout", "anything"),
    ],
)
def test_a_nul_in_any_other_form_field_is_refused_naming_it_never_removed(
    client: TestClient, application: Application, user: str, path: str, field: str
) -> None:
    """As the API refuses it (schemas.Body): no column can hold a NUL, and removing it made
    another value of what was typed."""
    client.cookies.set(STAFF_COOKIE, new_agent_token(application))
    refused = client.post(
        path,
        data={"csrf": csrf_of(client), field: "abc\x00de123"},
        follow_redirects=False,
    )

    assert refused.status_code == 422, refused.text
    assert f"The field {field} holds a NUL character." in refused.text


def test_a_forged_form_with_a_nul_is_still_forbidden(client: TestClient, user: str) -> None:
    """The CSRF check comes first: a NUL tells a forger nothing more."""
    csrf_of(client)
    refused = client.post(
        "/login", data={"csrf": "forged", "username": "abc\x00de123"}, follow_redirects=False
    )
    assert refused.status_code == 403, refused.text


# ---- the console audits what it refuses an agent, as the agent API does (R8.1) -----------


def test_the_console_audits_each_refusal_once_with_the_agents_identity(
    client: TestClient, application: Application, user: str, admin_token: str
) -> None:
    client.cookies.set(STAFF_COOKIE, new_agent_token(application))
    csrf = csrf_of(client)
    refusals: list[tuple[Callable[[], httpx2.Response], str]] = [
        (lambda: client.get(f"/console/callers/{USERNAME}?v=ver_unknown"), "agent.caller_view"),
        (
            lambda: client.post(
                f"/console/callers/{USERNAME}/actions/passcode",
                data={"csrf": csrf, "v": "ver_unknown"},
            ),
            "temporary_passcode.issue",
        ),
        (
            lambda: client.post(
                f"/console/callers/{USERNAME}/actions/reset-code", data={"csrf": csrf, "v": ""}
            ),
            "password_reset_code.issue",
        ),
    ]
    for refuse, action in refusals:
        before = audit_of(client, admin_token)
        assert refuse().status_code == 403
        (record,) = audit_of(client, admin_token)[len(before) :]
        assert (record["actor"], record["action"], record["subject"], record["outcome"]) == (
            "agent:amy",
            action,
            USERNAME,
            "verification_required",
        )

    before = audit_of(client, admin_token)
    looked_up = client.post("/console/verifications", data={"csrf": csrf, "lookup": "zzzzz999"})
    assert looked_up.status_code == 404
    (record,) = audit_of(client, admin_token)[len(before) :]
    assert (record["action"], record["outcome"], record["details"]) == (
        "verification.start",
        "not_found",
        {"by": "username", "username": "zzzzz999"},
    )
