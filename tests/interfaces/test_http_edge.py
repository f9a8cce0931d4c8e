"""What the edge adds to every exchange: no caching of what a reply carries, and the
caller's address for the audit log, behind a proxy only as the proxy saw it (R9.1)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from securelogin.bootstrap import Application
from securelogin.config import Settings
from securelogin.web.app import create_app
from tests.conftest import PASSWORD, make_user

LOGIN = {"username": "abcde123", "password": PASSWORD, "platform": "portal"}


def test_replies_are_never_stored_but_static_files_may_be(
    client: TestClient, application: Application
) -> None:
    make_user(application)
    login = client.post("/api/v1/logins", json=LOGIN)  # it carries a session token
    assert login.status_code == 200 and "session" in login.json()
    refused = client.post("/api/v1/logins", json={**LOGIN, "password": "Wrong4horse99"})
    page = client.get("/login")
    for reply in (login, refused, page):
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["pragma"] == "no-cache"
    style = client.get("/static/style.css")
    assert style.status_code == 200 and "cache-control" not in style.headers


def sources(client: TestClient, admin_token: str) -> list[Any]:
    records = client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {admin_token}"})
    return [r["source"] for r in records.json()["records"] if r["action"] == "login.password"]


@pytest.mark.parametrize(
    ("forwarded", "source"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("10.9.8.7 forged-by-client, 203.0.113.5", "203.0.113.5"),  # the proxy's, last
        ("198.51.100.1, 2001:db8::1", "2001:db8::1"),
        ("203.0.113.5, not-an-address", "testclient"),  # not taken: the peer is
        ("", "testclient"),
    ],
)
def test_behind_a_trusted_proxy_the_address_it_appended_is_the_source(
    settings: Settings, application: Application, admin_token: str, forwarded: str, source: str
) -> None:
    make_user(application)
    behind_proxy = dataclasses.replace(settings, trust_forwarded_for=True)
    with TestClient(create_app(behind_proxy, application)) as client:
        reply = client.post("/api/v1/logins", json=LOGIN, headers={"x-forwarded-for": forwarded})
        assert reply.status_code == 200
        assert sources(client, admin_token) == [source]


def test_behind_a_trusted_proxy_a_line_it_appended_is_taken_not_the_clients(
    settings: Settings, application: Application, admin_token: str
) -> None:
    make_user(application)
    behind_proxy = dataclasses.replace(settings, trust_forwarded_for=True)
    lines = [("x-forwarded-for", "10.9.8.7"), ("x-forwarded-for", "203.0.113.5")]
    with TestClient(create_app(behind_proxy, application)) as client:
        reply = client.post("/api/v1/logins", json=LOGIN, headers=lines)
        assert reply.status_code == 200
        assert sources(client, admin_token) == ["203.0.113.5"]


def test_without_a_trusted_proxy_the_header_is_ignored(
    client: TestClient, application: Application, admin_token: str
) -> None:
    make_user(application)
    client.post("/api/v1/logins", json=LOGIN, headers={"x-forwarded-for": "203.0.113.5"})
    assert sources(client, admin_token) == ["testclient"]
