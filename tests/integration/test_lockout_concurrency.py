"""R3.5: the lockout count is exact under concurrency, on SQLite and on PostgreSQL.

200 wrong attempts at one user start together (a barrier) on 32 threads, each through
its own pooled database connection. Exactly 10 may be evaluated; every other one must be
refused as locked, and the database must hold exactly what was evaluated.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from securelogin.bootstrap import Application
from securelogin.domain.errors import AccountLockedError, InvalidCredentialsError
from securelogin.domain.sessions import Platform
from securelogin.services import login
from securelogin.services.context import Caller
from securelogin.storage.tables import audit_records, lockout_failures
from tests.conftest import make_user

ATTEMPTS = 200
THREADS = 32


def fire_simultaneously(application: Application, username: str, password: str) -> Counter[str]:
    barrier = threading.Barrier(THREADS)

    def attempt(index: int) -> str:
        if index < THREADS:
            barrier.wait()
        try:
            login.start_login(
                application.context,
                username=username,
                password=password,
                platform=Platform.TRADING if index % 2 else Platform.PORTAL,
                caller=Caller(source=f"127.0.0.{index % 250 + 1}"),
            )
        except InvalidCredentialsError:
            return "invalid_credentials"
        except AccountLockedError:
            return "account_locked"
        return "logged_in"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return Counter(pool.map(attempt, range(ATTEMPTS)))


def count_rows(application: Application, table, **where: str) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with application.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


@pytest.mark.slow
def test_exactly_ten_of_two_hundred_simultaneous_wrong_attempts_are_evaluated(
    application: Application,
) -> None:
    make_user(application, "victim001")

    outcomes = fire_simultaneously(application, "victim001", "Wrong4password")

    assert outcomes == Counter({"invalid_credentials": 10, "account_locked": 190})
    assert count_rows(application, lockout_failures, subject="victim001") == 10
    assert (
        count_rows(
            application, audit_records, action="login.password", outcome="invalid_credentials"
        )
        == 10
    )
    assert count_rows(application, audit_records, action="account.locked") == 1


@pytest.mark.slow
def test_unknown_username_is_locked_exactly_like_an_existing_one(
    application: Application,
) -> None:
    outcomes = fire_simultaneously(application, "nobody999", "Wrong4password")

    assert outcomes == Counter({"invalid_credentials": 10, "account_locked": 190})
    assert count_rows(application, lockout_failures, subject="nobody999") == 10


@pytest.mark.slow
def test_correct_password_is_refused_once_the_simultaneous_attempts_locked_the_user(
    application: Application,
) -> None:
    make_user(application, "victim002", "Right4password")
    fire_simultaneously(application, "victim002", "Wrong4password")

    with pytest.raises(AccountLockedError):
        login.start_login(
            application.context,
            username="victim002",
            password="Right4password",
            platform=Platform.PORTAL,
            caller=Caller(),
        )
