"""A database that cannot be reached is a 503 ``service_unavailable`` within seconds.

Never a 500, never a hang: the app is built from settings naming a PostgreSQL port where
nothing listens (connection refused at once), or one that accepts connections and never
answers (the engine's connect timeout must end the wait).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from securelogin.bootstrap import Application
from securelogin.config import Secret, Settings
from securelogin.storage.unit_of_work import unit_of_work_factory
from securelogin.web.app import create_app

SECONDS_ALLOWED = 10  # the PostgreSQL connect timeout is 3 s (storage/engine.py)
LOGIN = {"username": "abcde123", "password": "Correct4horse", "platform": "portal"}


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def settings_for(database_url: str) -> Settings:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return Settings(database_url=database_url, secret_key=Secret(key))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port: int = listener.getsockname()[1]
        yield port


@pytest.fixture(params=["port-1", "closed-port", "sqlite-missing-folder"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "port-1":
        return "postgresql+psycopg://postgres@127.0.0.1:1/test"
    if request.param == "closed-port":
        return f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    return f"sqlite:///{tmp_path / 'no-such-folder' / 'securelogin.db'}"


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_service_unavailable(response: Any, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "Traceback" not in response.text
    assert elapsed < SECONDS_ALLOWED


def test_login_and_health_are_service_unavailable_when_nothing_listens(
    unreachable_url: str,
) -> None:
    with TestClient(create_app(settings_for(unreachable_url))) as client:
        assert_service_unavailable(*timed(partial(client.post, "/api/v1/logins", json=LOGIN)))
        assert_service_unavailable(*timed(partial(client.get, "/healthz")))


def test_session_and_operator_endpoints_are_service_unavailable_when_nothing_listens(
    unreachable_url: str,
) -> None:
    with TestClient(create_app(settings_for(unreachable_url))) as client:
        for method, path, token in [
            ("GET", "/api/v1/session", "sls_" + "a" * 43),
            ("DELETE", "/api/v1/session", "sls_" + "a" * 43),
            ("GET", "/api/v1/admin/audit", "slst_" + "a" * 43),
        ]:
            headers = {"Authorization": f"Bearer {token}"}
            assert_service_unavailable(
                *timed(partial(client.request, method, path, headers=headers))
            )


def test_requests_that_need_no_database_are_still_answered_when_it_is_down(
    unreachable_url: str,
) -> None:
    with TestClient(create_app(settings_for(unreachable_url))) as client:
        bad_character = client.post("/api/v1/logins", json={**LOGIN, "username": "abc de"})
        malformed = client.post("/api/v1/logins", json={"username": "abcde123"})
        pools = client.get("/api/v1/security-questions")

    assert bad_character.status_code == 400
    assert malformed.status_code == 422
    assert pools.status_code == 200


def test_login_gives_up_on_a_database_that_never_answers(silent_port: int) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/test"
    with TestClient(create_app(settings_for(url))) as client:
        assert_service_unavailable(*timed(partial(client.post, "/api/v1/logins", json=LOGIN)))


def test_a_pool_with_no_connection_free_is_a_503_not_a_500(
    settings: Settings, application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    """Every pooled connection busy past the pool's timeout (SQLAlchemy raises its own
    TimeoutError, not a driver error): answered 503 like a database out of reach."""
    small = create_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    context = dataclasses.replace(application.context, uow=unit_of_work_factory(small))
    held = small.connect()  # the only connection, busy (say, waiting on a slow database)
    try:
        with TestClient(create_app(settings, Application(context, small))) as client:
            response = client.post("/api/v1/logins", json=LOGIN)
    finally:
        held.close()
        small.dispose()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "no pooled connection free" in caplog.text
