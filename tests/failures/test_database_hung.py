"""A database that stops answering, while its host still acknowledges (PostgreSQL).

A PostgreSQL hung on its disk still accepts connections and its kernel acknowledges every
packet, so no TCP timeout ever fires, and a server-side ``statement_timeout`` never ends
a statement the server is not running. A login's statements (storage/pipeline.py) wait
for their answers ``ANSWER_TIMEOUT_SECONDS`` at most for each statement, and the ping of
a connection that idled in the pool ``PING_TIMEOUT_SECONDS``; then the connection is
closed as lost and the request answers 503. Once the database answers again, logins
succeed with no restart. The hang here comes before the admission's first round trip,
which carries no ``COMMIT``, so nothing of the abandoned transaction was written (one cut
off after its ``COMMIT`` was sent is in doubt: docs/operations.md).

The service reaches PostgreSQL here through a relay that is hung: it passes nothing on,
either way, and closes nothing (tests/failures/proxy.py). The timeouts are shortened for
the test, the answer timeout still above the statement timeout as in the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import bindparam, func, literal_column, select

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.services import login
from securelogin.services.attempts import count_attempt
from securelogin.services.audit import verify_audit_chain
from securelogin.services.context import Caller
from securelogin.storage import engine as engines
from securelogin.storage import pipeline
from securelogin.storage.prepared import Prepared, run_together
from securelogin.storage.tables import audit_records, lockout_failures
from tests.conftest import make_user
from tests.failures.proxy import CuttableProxy
from tests.postgres_apps import (
    InBackground,
    log_in,
    relayed,
    rows,
    service_application_name,
    wait_until,
)

pytestmark = pytest.mark.postgres

USERNAME = "patient12"
USER = Caller("user")
STATEMENT_TIMEOUT_MS = 1_000
ANSWER_TIMEOUT_SECONDS = 2.0  # per statement
PING_TIMEOUT_SECONDS = 1.0
SLEEP = Prepared(select(literal_column("1")).select_from(func.pg_sleep(bindparam("p_seconds"))))


def test_the_service_waits_for_each_answer_longer_than_a_statement_may_run() -> None:
    assert pipeline.ANSWER_TIMEOUT_SECONDS * 1000 > engines.POSTGRES_STATEMENT_TIMEOUT_MS


@pytest.fixture(params=["used a moment ago", "idle in the pool"])
def hung_setup(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fast_hasher: Argon2Hasher
) -> Iterator[tuple[Application, Application, CuttableProxy]]:
    """The service through the relay, and a direct look at the same database. Its pooled
    connections count as used a moment ago (never pinged), or as idle (pinged before every
    use, as a login at a quiet moment is: storage/engine.py)."""
    monkeypatch.setattr(engines, "POSTGRES_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS)
    monkeypatch.setattr(pipeline, "ANSWER_TIMEOUT_SECONDS", ANSWER_TIMEOUT_SECONDS)
    monkeypatch.setattr(pipeline, "PING_TIMEOUT_SECONDS", PING_TIMEOUT_SECONDS)
    idle = request.param == "idle in the pool"
    monkeypatch.setattr(engines, "POSTGRES_IDLE_PING_SECONDS", 0.0 if idle else 3600.0)
    with relayed(fast_hasher) as applications:
        yield applications


def test_a_database_that_stops_answering_is_a_503_then_service_resumes_with_nothing_written(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    service, look, relay = hung_setup
    make_user(service, USERNAME)
    assert isinstance(log_in(service, USERNAME), login.LoggedIn)
    records_before = rows(look, audit_records)

    relay.hang()
    outcome = InBackground(lambda: log_in(service, USERNAME)).outcome(unstick=relay.resume)
    assert isinstance(outcome, ServiceUnavailableError), outcome
    relay.resume()  # what the relay held back reaches the server: a closed client's

    assert isinstance(log_in(service, USERNAME), login.LoggedIn)  # no restart
    # The abandoned admission left nothing: no pending failure, no record of it.
    assert rows(look, lockout_failures, subject=USERNAME) == 0
    assert rows(look, audit_records, subject=USERNAME, action="attempt.counted") == 2
    assert rows(look, audit_records) > records_before
    assert verify_audit_chain(look.context).intact


def test_a_slow_database_that_answers_is_waited_for(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    """The statement timeout counts for each statement of a pipeline, so the wait for a
    pipeline's answers is bounded for each statement too: three statements each just under
    their timeout take longer than one statement's bound, and are waited for."""
    service, _, _ = hung_setup
    under = STATEMENT_TIMEOUT_MS / 1000 * 0.8
    assert 3 * under > ANSWER_TIMEOUT_SECONDS
    with service.engine.connect() as connection, connection.begin():
        results = run_together(connection, *[(SLEEP, {"p_seconds": under}) for _ in range(3)])
        assert [result.scalar() for result in results] == [1, 1, 1]


def test_a_commit_in_doubt_is_whole_or_absent(
    hung_setup: tuple[Application, Application, CuttableProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay hangs as an admission's last round trip, its audit record and ``COMMIT``,
    is sent: the request answers 503 not knowing whether it committed. The relay then
    passes on what it held, so the server commits it after all: the pending failure and its
    record arrive together, the chain stays whole, and the user logs in again."""
    service, look, relay = hung_setup
    make_user(service, USERNAME)
    commit = pipeline.commit

    def hang_then_commit(info: dict[Any, Any], driver: Any) -> None:
        relay.hang()
        commit(info, driver)

    monkeypatch.setattr(pipeline, "commit", hang_then_commit)
    outcome = InBackground(
        lambda: count_attempt(service.context, USERNAME, USER, "login.password")
    ).outcome(unstick=relay.resume)
    monkeypatch.setattr(pipeline, "commit", commit)
    assert isinstance(outcome, ServiceUnavailableError), outcome
    relay.resume()
    wait_until_settled(look, relay)

    pending = rows(look, lockout_failures, subject=USERNAME)
    counted = rows(look, audit_records, subject=USERNAME, action="attempt.counted")
    assert (pending, counted) == (1, 1)  # committed after all, whole
    assert verify_audit_chain(look.context).intact
    assert isinstance(log_in(service, USERNAME), login.LoggedIn)


def wait_until_settled(look: Application, relay: CuttableProxy) -> None:
    """Until every session of the relayed service is idle (not in a transaction, and not
    running what the relay passed on, such as a COMMIT and its flush to disk)."""
    wait_until(
        look,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = :name AND state IS DISTINCT FROM 'idle'",
        lambda busy: busy == 0,
        "a transaction stayed open",
        {"name": service_application_name(relay)},
    )


def test_a_lone_commit_is_bounded_too(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    """A transaction with nothing held back for its ``COMMIT`` (a read, then the commit):
    the ``COMMIT`` goes through the pipeline and its bound as well."""
    service, _, relay = hung_setup
    make_user(service, USERNAME)

    def read_then_commit() -> object:
        with service.context.uow() as uow:
            uow.users.get(USERNAME)
            relay.hang()
            uow.commit()
        return "committed"

    outcome = InBackground(read_then_commit).outcome(unstick=relay.resume)
    assert isinstance(outcome, ServiceUnavailableError), outcome


def test_the_health_check_reports_a_hung_database_unreachable(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    service, _, relay = hung_setup
    assert service.database_is_reachable()
    relay.hang()
    assert InBackground(service.database_is_reachable).outcome(unstick=relay.resume) is False
    relay.resume()
    assert service.database_is_reachable()


def test_a_statement_psycopg_sends_itself_is_bounded_too(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    """Statements outside the login's pipeline (the other pages', the console's: here the
    lookup of a user by email address) wait through psycopg, whose every wait is bounded
    (storage/bounded_driver.py): a 503, and the service heals without a restart."""
    service, _, relay = hung_setup
    make_user(service, USERNAME)

    def look_up() -> object:
        with service.context.uow() as uow:
            relay.hang()
            return uow.users.by_email("nobody@example.com")

    outcome = InBackground(look_up).outcome(unstick=relay.resume)
    assert isinstance(outcome, ServiceUnavailableError), outcome
    relay.resume()
    with service.context.uow() as uow:
        assert uow.users.by_email("nobody@example.com") == []


def test_a_rollback_is_bounded_too(
    hung_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    """A transaction that ends without a commit (as a login told to wait its turn does)
    sends psycopg's ``ROLLBACK``: against a hung database that wait ends too, the
    connection is dropped, and the transaction is the server's to roll back."""
    service, look, relay = hung_setup
    make_user(service, USERNAME)

    def read_then_roll_back() -> object:
        with service.context.uow() as uow:
            uow.lockout.admit(
                USERNAME, service.context.clock.now(), service.context.policies.lockout
            )
            relay.hang()
        return "rolled back"

    assert InBackground(read_then_roll_back).outcome(unstick=relay.resume) == "rolled back"
    relay.resume()
    wait_until_settled(look, relay)
    assert rows(look, lockout_failures, subject=USERNAME) == 0  # the admission rolled back
    assert isinstance(log_in(service, USERNAME), login.LoggedIn)
