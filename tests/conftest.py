"""Shared fixtures: clock, databases (SQLite and PostgreSQL), a wired application, a client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Secret, Settings
from securelogin.domain.accounts import StaffRole
from securelogin.domain.audit import AuditRecord, StoredRecord
from securelogin.domain.security_questions import QuestionAnswer
from securelogin.services import admin
from securelogin.services.context import Caller
from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.web.app import create_app
from tests.clock import FakeClock
from tests.databases import postgres_schema_url, sqlite_url

QUESTIONS = [
    {"question": "What was the name of your first pet?", "answer": "Rex"},
    {"question": "What was the name of your primary school?", "answer": "Hillside"},
    {"question": "What was the make and model of your first car?", "answer": "Volvo 240"},
]
PASSWORD = "Correct4horse"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def fast_hasher() -> Argon2Hasher:
    """Real argon2id with small parameters: the tests need the behaviour, not the cost."""
    return Argon2Hasher(memory_kib=1024, time_cost=1, parallelism=1, concurrency=8)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade_database(url)
        yield url
        return
    with postgres_schema_url() as url:
        upgrade_database(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind that ``securelogin db upgrade`` has not run on yet."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_schema_url() as url:
        yield url


def upgrade_database(url: str) -> None:
    """The database at ``url`` brought to the newest schema, as ``securelogin db upgrade`` does."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


TEST_SECRET_KEY = Secret(base64.urlsafe_b64encode(bytes(range(32))).decode("ascii"))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)


@pytest.fixture
def application(
    settings: Settings, clock: FakeClock, fast_hasher: Argon2Hasher
) -> Iterator[Application]:
    app = build(settings, clock=clock, hasher=fast_hasher)
    yield app
    app.dispose()


LOCAL_BASE_URL = "http://localhost"


@pytest.fixture
def client(settings: Settings, application: Application) -> Iterator[TestClient]:
    """At localhost over plain http, as the README's local run: the one place the portal's
    cookies are not Secure by default (web/transport.py), so they come back to it."""
    with TestClient(create_app(settings, application), base_url=LOCAL_BASE_URL) as test_client:
        yield test_client


@pytest.fixture
def admin_token(application: Application) -> str:
    return admin.create_staff_token(
        application.context, name="ops", role=StaffRole.ADMIN, caller=Caller("test")
    )


def user_body(username: str = "abcde123", password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": username,
        "password": password,
        "email": f"{username}@example.com",
        "country": "US",
        "full_name": "Ada Client",
        "security_questions": json.loads(json.dumps(QUESTIONS)),
    }
    body.update(extra)
    return body


def make_user(
    application: Application, username: str = "abcde123", password: str = PASSWORD
) -> str:
    details = admin.UserDetails(
        username=username,
        password=password,
        email=f"{username}@example.com",
        country="US",
        full_name="Ada Client",
        security_questions=[QuestionAnswer(q["question"], q["answer"]) for q in QUESTIONS],
    )
    return admin.create_user(application.context, details, Caller("test"))


def readable(records: Iterable[StoredRecord]) -> list[AuditRecord]:
    """Every record read back, each checked to be an event: the tests write no unreadable one."""
    read: list[AuditRecord] = []
    for record in records:
        assert isinstance(record, AuditRecord), record
        read.append(record)
    return read
