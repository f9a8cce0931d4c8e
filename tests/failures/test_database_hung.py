"""A database that stops answering, while its host still acknowledges (PostgreSQL).

A PostgreSQL hung on its disk still accepts connections and its kernel acknowledges every
packet, so no TCP timeout ever fires, and a server-side ``statement_timeout`` never ends
a statement the server is not running. A login's statements (storage/pipeline.py) wait
for the answer ``ANSWER_TIMEOUT_SECONDS`` at most, then the connection is closed as lost
and the request answers 503; once the database answers again, logins succeed with no
restart, and nothing of the abandoned transaction was written.

The service reaches PostgreSQL here through a relay that is hung: it passes nothing on,
either way, and closes nothing (tests/failures/proxy.py). The timeouts are shortened for
the test, the answer timeout still above the statement timeout as in the service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.domain.sessions import Platform
from securelogin.services import login
from securelogin.services.audit import verify_audit_chain
from securelogin.services.context import Caller
from securelogin.storage import engine as engines
from securelogin.storage import pipeline
from securelogin.storage.tables import audit_records, lockout_failures
from tests.clock import FakeClock
from tests.conftest import PASSWORD, TEST_SECRET_KEY, make_user, upgrade_database
from tests.databases import postgres_schema_url
from tests.failures.proxy import CuttableProxy, through

pytestmark = pytest.mark.postgres

USERNAME = "patient12"
USER = Caller("user")
STATEMENT_TIMEOUT_MS = 1_000
ANSWER_TIMEOUT_SECONDS = 2.0
WAIT_SECONDS = 60  # far beyond both: the login has answered one way or the other


def test_the_service_waits_for_an_answer_longer_than_a_statement_may_run() -> None:
    assert pipeline.ANSWER_TIMEOUT_SECONDS * 1000 > engines.POSTGRES_STATEMENT_TIMEOUT_MS


@pytest.fixture
def hung_setup(
    monkeypatch: pytest.MonkeyPatch, fast_hasher: Argon2Hasher
) -> Iterator[tuple[Application, Application, CuttableProxy]]:
    """The service through the relay, and a direct look at the same database."""
    monkeypatch.setattr(engines, "POSTGRES_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS)
    monkeypatch.setattr(pipeline, "ANSWER_TIMEOUT_SECONDS", ANSWER_TIMEOUT_SECONDS)
    with postgres_schema_url() as url:
        upgrade_database(url)
        direct = make_url(url)
        relay = CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432))
        relay.restore()
        clock = FakeClock()
        service = build(
            Settings(database_url=through(url, relay.port), secret_key=TEST_SECRET_KEY),
            clock=clock,
            hasher=fast_hasher,
        )
        look = build(
            Settings(database_url=url, secret_key=TEST_SECRET_KEY), clock=clock, hasher=fast_hasher
        )
        try:
            yield service, look, relay
        finally:
            relay.resume()
            service.dispose()
            look.dispose()
            relay.close()


def log_in(application: Application) -> object:
    return login.start_login(
        application.context,
        username=USERNAME,
        password=PASSWORD,
        platform=Platform.PORTAL,
        caller=USER,
    )


def in_background(call: Callable[[], object], relay: CuttableProxy) -> object:
    """``call``'s result or error, run on a thread; a call still waiting after
    WAIT_SECONDS is a failure (the relay resumes first, so that it ends)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_SECONDS)
    if thread.is_alive():
        relay.resume()
        thread.join(WAIT_SECONDS)
        pytest.fail(f"the login was still waiting for the database after {WAIT_SECONDS} s")
    return outcome.get("error", outcome.get("result"))


def count(application: Application, table: Any, **where: str) -> int:
    with application.engine.connect() as connection:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(connection.execute(query).scalar_one())


def test_a_database_that_stops_answering_is_a_503_then_service_resumes_with_nothing_written(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    service, look, relay = hung_setup
    make_user(service, USERNAME)
    assert isinstance(log_in(service), login.LoggedIn)
    records_before = count(look, audit_records)

    relay.hang()
    outcome = in_background(lambda: log_in(service), relay)
    assert isinstance(outcome, ServiceUnavailableError), outcome
    relay.resume()  # what the relay held back reaches the server: a closed client's

    assert isinstance(log_in(service), login.LoggedIn)  # no restart
    # The abandoned admission left nothing: no pending failure, no record of it.
    assert count(look, lockout_failures, subject=USERNAME) == 0
    assert count(look, audit_records, subject=USERNAME, action="attempt.counted") == 2
    assert count(look, audit_records) > records_before
    assert verify_audit_chain(look.context).intact
