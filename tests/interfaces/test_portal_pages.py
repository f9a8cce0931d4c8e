"""The Client Portal's pages over HTTP (TestClient): which session they take, and the CSRF
check of their forms. How the pages look and work in a browser is tests/browser/'s part.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from securelogin.bootstrap import Application
from securelogin.web.portal.pages import CSRF_COOKIE, SESSION_COOKIE
from tests.conftest import make_user
from tests.interfaces.test_http_agent import (
    DEVICES,
    USERNAME,
    bearer,
    first_step,
    password_only_token,
    session_of,
)


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USERNAME)


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
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert refused.status_code == 403, refused.text
    assert "This form has expired or did not come from us." in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
