"""Application servers on one PostgreSQL schema, for the tests of what happens when the
database, the network or an app server fails (tests/failures, and
tests/integration/test_frozen_transaction.py).

- ``relayed``: the service reaching PostgreSQL through a relay that can be cut or hung
  (tests/failures/proxy.py), and a direct look at the same database;
- ``log_in``, ``rows``: a password login, a count of rows;
- ``InBackground``: a call on a thread, its result or its error returned, never a wait
  without end;
- ``wait_until``: poll the database until a count says so;
- ``service_application_name``: how the relayed service's backends are told apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain.sessions import Platform
from securelogin.services import login
from securelogin.services.context import Caller
from tests.clock import FakeClock
from tests.conftest import PASSWORD, TEST_SECRET_KEY, upgrade_database
from tests.databases import postgres_schema_url
from tests.failures.proxy import CuttableProxy, through

WAIT_SECONDS = 60  # far beyond every bound these tests time: a call still waiting fails
POLL_SECONDS = 0.05


@contextmanager
def relayed(hasher: Argon2Hasher) -> Iterator[tuple[Application, Application, CuttableProxy]]:
    """A new migrated schema; the service on it through a relay, a direct look at it, and
    the relay. Settings the caller patched beforehand (storage/engine.py's timeouts) apply
    to both engines."""
    with postgres_schema_url() as url:
        upgrade_database(url)
        direct = make_url(url)
        relay = CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432))
        relay.restore()
        clock = FakeClock()
        relayed_url = make_url(through(url, relay.port)).update_query_dict(
            {"application_name": service_application_name(relay)}
        )
        service = build(
            Settings(
                database_url=relayed_url.render_as_string(hide_password=False),
                secret_key=TEST_SECRET_KEY,
            ),
            clock=clock,
            hasher=hasher,
        )
        look = build(
            Settings(database_url=url, secret_key=TEST_SECRET_KEY), clock=clock, hasher=hasher
        )
        try:
            yield service, look, relay
        finally:
            relay.resume()  # a relay left hung would hold up the disposal
            service.dispose()
            look.dispose()
            relay.close()


def service_application_name(relay: CuttableProxy) -> str:
    """The ``application_name`` of the relayed service's connections, which tells its
    backends apart from any other on the same database (another test run's, say)."""
    return f"securelogin-relayed-{relay.port}"


def log_in(application: Application, username: str) -> object:
    """Step one with the tests' password, at the portal."""
    return login.start_login(
        application.context,
        username=username,
        password=PASSWORD,
        platform=Platform.PORTAL,
        caller=Caller("user"),
    )


def rows(application: Application, table: Any, **where: str) -> int:
    with application.engine.connect() as connection:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(connection.execute(query).scalar_one())


class InBackground:
    """``call`` started on a daemon thread."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._outcome: dict[str, object] = {}
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self._outcome["result"] = call()
        except BaseException as error:  # handed to the test's thread
            self._outcome["error"] = error

    def outcome(self, *, unstick: Callable[[], None] | None = None) -> object:
        """The call's result, or its error, returned (raised, it could be taken for an
        error the test expects of another call). A call still waiting after WAIT_SECONDS
        fails the test (after ``unstick``, which lets it end)."""
        self._thread.join(WAIT_SECONDS)
        if self._thread.is_alive():
            if unstick is not None:
                unstick()
                self._thread.join(WAIT_SECONDS)
            pytest.fail(f"the call was still waiting for the database after {WAIT_SECONDS} s")
        return self._outcome.get("error", self._outcome.get("result"))


def wait_until(
    look: Application,
    count_sql: str,
    done: Callable[[int], bool],
    what: str,
    params: dict[str, object] | None = None,
) -> None:
    """Poll ``count_sql`` (a SELECT count(*), with ``params``) on ``look`` until ``done``
    says so; fail with ``what`` after WAIT_SECONDS."""
    query = text(count_sql)
    for _ in range(int(WAIT_SECONDS / POLL_SECONDS)):
        with look.engine.connect() as connection:
            if done(int(connection.execute(query, params or {}).scalar_one())):
                return
        time.sleep(POLL_SECONDS)
    pytest.fail(what)
