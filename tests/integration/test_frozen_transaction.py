"""An app server that falls silent mid-transaction does not stop the others (PostgreSQL).

A frozen process, or a network cut that drops packets without a word, leaves its backend
in a transaction, holding its row locks: a subject's, or the audit head's, which every
audited transaction in the system takes in turn. The server would wait for that client
until its TCP keepalives gave up (hours by default), and every other login would meanwhile
wait out its statement timeout and answer 503. The service's sessions carry
``idle_in_transaction_session_timeout`` (storage/engine.py): the server ends such a
transaction, rolled back whole, and gives its locks to the others.

Here the frozen server is a unit of work of a second application, on its own engine, that
takes the lock and then sends nothing more. The statement timeout is shorter than usual,
so that without the idle timeout the other login ends in ``ServiceUnavailableError``
instead of succeeding (the outcome is asserted, not the time it took).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain.audit import AuditEvent
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.services import login
from securelogin.services.ports import UnitOfWork
from securelogin.storage import engine as engines
from securelogin.storage.audit import SqlAuditLog
from securelogin.storage.tables import audit_records, lockout_failures
from tests.clock import FakeClock
from tests.conftest import TEST_SECRET_KEY, make_user, upgrade_database
from tests.databases import postgres_schema_url
from tests.postgres_apps import InBackground, log_in, rows

pytestmark = pytest.mark.postgres

FROZEN_USER = "frozen123"
OTHER_USER = "others123"
IDLE_TIMEOUT_MS = 1_000
STATEMENT_TIMEOUT_MS = 8_000  # without the idle timeout, the waiting login's end (503)


@pytest.fixture
def applications(
    monkeypatch: pytest.MonkeyPatch, fast_hasher: Argon2Hasher
) -> Iterator[tuple[Application, Application]]:
    """Two app servers on one PostgreSQL: the one that will freeze, and another."""
    monkeypatch.setattr(engines, "POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS", IDLE_TIMEOUT_MS)
    monkeypatch.setattr(engines, "POSTGRES_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS)
    with postgres_schema_url() as url:
        upgrade_database(url)
        settings = Settings(database_url=url, secret_key=TEST_SECRET_KEY)
        clock = FakeClock()
        frozen = build(settings, clock=clock, hasher=fast_hasher)
        other = build(settings, clock=clock, hasher=fast_hasher)
        try:
            make_user(other, FROZEN_USER)
            make_user(other, OTHER_USER)
            yield frozen, other
        finally:
            frozen.dispose()
            other.dispose()


def take_subject_lock(uow: UnitOfWork, application: Application) -> None:
    """As an admission does: the subject's row locked, a pending failure written."""
    now = application.context.clock.now()
    uow.lockout.admit(OTHER_USER, now, application.context.policies.lockout)


def take_audit_head(uow: UnitOfWork, application: Application) -> None:
    """As every audited transaction does just before its commit: the audit head locked."""
    now = application.context.clock.now()
    uow.audit.append(AuditEvent(now, "user", "test.frozen", FROZEN_USER, "frozen", None, {}))
    audit = uow.audit
    assert isinstance(audit, SqlAuditLog)  # its flush locks the head, as a commit would
    audit.flush()


@pytest.mark.parametrize("lock", [take_subject_lock, take_audit_head])
def test_a_transaction_whose_server_fell_silent_gives_its_locks_back(
    applications: tuple[Application, Application],
    lock: Callable[[UnitOfWork, Application], None],
) -> None:
    frozen, other = applications
    with frozen.context.uow() as uow:
        lock(uow, frozen)
        # Frozen from here: nothing more is sent while another server logs the user in.
        logged_in = InBackground(lambda: log_in(other, OTHER_USER)).outcome()
        assert isinstance(logged_in, login.LoggedIn), logged_in  # not a 503 (statement timeout)
        with pytest.raises(ServiceUnavailableError):
            uow.commit()  # it wakes up: the server ended its transaction, rolled back whole

    assert rows(other, audit_records, action="test.frozen") == 0
    assert rows(other, lockout_failures, subject=OTHER_USER) == 0  # its pending one too
    assert isinstance(log_in(frozen, FROZEN_USER), login.LoggedIn)  # and it serves again
