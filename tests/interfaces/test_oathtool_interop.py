"""Interoperability with an independent TOTP client: ``oathtool`` (OATH Toolkit, Debian).

The server's own code (securelogin.domain.otp) is never used here to make a code: the
user's "authenticator app" is ``oathtool``, set up from the ``otpauth://`` URI the server
shows at enrolment (R5.1), and asked for the code at the application's clock time
(``--now``, R10). If the server and oathtool disagreed on base32, the time step, the
truncation or the URI's parameters, these tests would fail.

Runs through the ASGI app on SQLite and on PostgreSQL (a few requests each).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient

from securelogin.bootstrap import Application
from securelogin.domain import otp
from tests.clock import FakeClock
from tests.conftest import PASSWORD, make_user

USER = "abcde123"
LOGINS = "/api/v1/logins"
DEVICES = "/api/v1/devices"
BASE32 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


# The authenticator app: oathtool, configured from the otpauth:// URI


def oathtool() -> str:
    found = shutil.which("oathtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("oathtool is missing (Debian package oathtool); scripts/test installs it")
    pytest.skip("oathtool is missing (Debian package oathtool)")


@dataclass(frozen=True)
class KeyUri:
    """The parts of an ``otpauth://totp/Issuer:account?...`` URI (Key Uri Format)."""

    issuer_in_label: str
    account: str
    secret: str
    issuer: str
    algorithm: str
    digits: int
    period: int


def parse_key_uri(uri: str) -> KeyUri:
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth", uri
    assert parts.netloc == "totp", uri
    label = unquote(parts.path.lstrip("/"))
    issuer_in_label, _, account = label.partition(":")
    query = parse_qs(parts.query, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), uri
    params = {name: values[0] for name, values in query.items()}
    return KeyUri(
        issuer_in_label=issuer_in_label,
        account=account,
        secret=params["secret"],
        issuer=params["issuer"],
        # The Key Uri Format's defaults, when a parameter is absent.
        algorithm=params.get("algorithm", "SHA1"),
        digits=int(params.get("digits", "6")),
        period=int(params.get("period", "30")),
    )


@dataclass(frozen=True)
class OathtoolApp:
    """An authenticator app: oathtool with the URI's secret, algorithm, digits and period."""

    uri: KeyUri

    def arguments(self, when: datetime, *extra: str) -> list[str]:
        assert when.utcoffset() == timedelta(0) and when.microsecond == 0, when
        return [
            oathtool(),
            f"--totp={self.uri.algorithm}",
            f"--digits={self.uri.digits}",
            f"--time-step-size={self.uri.period}s",
            f"--now={when:%Y-%m-%d %H:%M:%S} UTC",
            "--base32",
            self.uri.secret,
            *extra,
        ]

    def codes(self, when: datetime, following: int = 0) -> list[str]:
        """The code at ``when`` and those of the ``following`` steps after it."""
        extra = (f"--window={following}",) if following else ()
        done = subprocess.run(
            self.arguments(when, *extra),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC", "LC_ALL": "C"},
        )
        codes = done.stdout.split()
        assert len(codes) == following + 1, done.stdout
        for code in codes:
            assert len(code) == self.uri.digits and code.isdigit(), done.stdout
        return codes

    def code(self, when: datetime) -> str:
        return self.codes(when)[0]


# The user's side of the HTTP conversation


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def step_one(client: TestClient, platform: str) -> dict[str, Any]:
    reply = client.post(LOGINS, json={"username": USER, "password": PASSWORD, "platform": platform})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def answer_totp(client: TestClient, platform: str, code: str) -> Any:
    """Both steps of a login, answering the authenticator app factor with ``code``."""
    first = step_one(client, platform)
    assert [f["kind"] for f in first["factors"]] == ["totp"], first
    factor = first["factors"][0]
    assert factor["challenge"] is None
    return client.post(
        f"{LOGINS}/{first['login_id']}/response",
        json={"factor_id": factor["factor_id"], "response": code},
    )


def enrol(client: TestClient) -> tuple[dict[str, str], dict[str, Any]]:
    """A password-only session (the user is not enrolled yet) and the enrolment reply."""
    session = step_one(client, "portal")["session"]
    assert session["factor_kind"] is None
    headers = bearer(session["token"])
    reply = client.post(f"{DEVICES}/totp", headers=headers)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return headers, body


def activate(client: TestClient, headers: dict[str, str], device_id: str, code: str) -> Any:
    return client.post(
        f"{DEVICES}/{device_id}/activation", headers=headers, json={"response": code}
    )


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USER, PASSWORD)


@pytest.fixture
def app_of_user(client: TestClient, user: str, clock: FakeClock) -> OathtoolApp:
    """The user's oathtool "app", enrolled from the URI and activated with its own code."""
    headers, body = enrol(client)
    app = OathtoolApp(parse_key_uri(body["otpauth_uri"]))
    activated = activate(client, headers, body["device_id"], app.code(clock.now()))
    assert activated.status_code == 200, activated.text
    assert activated.json()["state"] == "active"
    return app


# R5.1: the URI an authenticator app is set up from


def test_the_otpauth_uri_decodes_to_the_shown_secret_and_names_issuer_and_user(
    client: TestClient, user: str, application: Application
) -> None:
    _, body = enrol(client)

    uri = parse_key_uri(body["otpauth_uri"])

    assert uri.secret == body["secret"]
    assert set(uri.secret) <= BASE32  # RFC 4648 base32, no padding, as apps read it
    raw = base64.b32decode(uri.secret + "=" * (-len(uri.secret) % 8))
    assert len(raw) == 20  # R5.1: 160 bits
    assert uri.issuer == application.context.issuer
    assert uri.issuer_in_label == uri.issuer  # Key Uri Format: "Issuer:account"
    assert uri.account == USER
    assert (uri.algorithm, uri.digits, uri.period) == ("SHA1", 6, 30)  # R5: RFC 6238 defaults


def test_oathtool_and_securelogin_compute_the_same_codes_for_the_enrolled_secret(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    _, body = enrol(client)
    app = OathtoolApp(parse_key_uri(body["otpauth_uri"]))
    secret = base64.b32decode(app.uri.secret + "=" * (-len(app.uri.secret) % 8))
    start = clock.now() + timedelta(seconds=17)  # inside a step, not on its boundary

    from_oathtool = app.codes(start, following=40)

    ours = [otp.totp(secret, int(start.timestamp()) + 30 * n) for n in range(41)]
    assert from_oathtool == ours


# Activation and login with the codes oathtool makes


def test_an_oathtool_code_activates_the_app_and_later_codes_log_in_through_both_doors(
    client: TestClient, app_of_user: OathtoolApp, clock: FakeClock
) -> None:
    clock.advance(timedelta(seconds=31))  # the activation's step is used (R5: never again)
    portal = answer_totp(client, "portal", app_of_user.code(clock.now()))

    clock.advance(timedelta(minutes=7, seconds=12))
    trading = answer_totp(client, "trading", app_of_user.code(clock.now()))

    for reply, platform in ((portal, "portal"), (trading, "trading")):
        assert reply.status_code == 200, reply.text
        session = reply.json()["session"]
        assert session["platform"] == platform
        assert session["factor_kind"] == "totp"
        assert session["access"] == "full"
        assert client.get("/api/v1/session", headers=bearer(session["token"])).status_code == 200


def test_an_oathtool_code_that_logged_in_is_refused_at_the_other_door_in_the_same_step(
    client: TestClient, app_of_user: OathtoolApp, clock: FakeClock
) -> None:
    clock.advance(timedelta(seconds=45))
    code = app_of_user.code(clock.now())
    assert answer_totp(client, "portal", code).status_code == 200

    clock.advance(timedelta(seconds=10))  # same step
    assert app_of_user.code(clock.now()) == code
    replay = answer_totp(client, "trading", code)

    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "login_failed"


def test_an_oathtool_code_from_two_steps_back_is_refused_and_from_one_step_back_accepted(
    client: TestClient, app_of_user: OathtoolApp, clock: FakeClock
) -> None:
    clock.advance(timedelta(minutes=2, seconds=5))  # nothing used since the activation

    two_back = answer_totp(client, "portal", app_of_user.code(clock.now() - timedelta(seconds=60)))
    one_back = answer_totp(client, "trading", app_of_user.code(clock.now() - timedelta(seconds=30)))

    assert two_back.status_code == 401
    assert two_back.json()["error"] == {"code": "login_failed", "message": "Login failed"}
    assert one_back.status_code == 200, one_back.text
    assert one_back.json()["session"]["factor_kind"] == "totp"


def test_an_oathtool_code_for_the_next_step_does_not_activate_the_app(
    client: TestClient, user: str, clock: FakeClock
) -> None:
    headers, body = enrol(client)
    app = OathtoolApp(parse_key_uri(body["otpauth_uri"]))

    ahead = activate(
        client, headers, body["device_id"], app.code(clock.now() + timedelta(seconds=30))
    )
    now = activate(client, headers, body["device_id"], app.code(clock.now()))

    assert ahead.status_code == 401
    assert ahead.json()["error"]["code"] == "login_failed"
    assert now.status_code == 200, now.text
