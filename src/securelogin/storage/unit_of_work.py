"""The unit of work: one transaction on one connection; rolled back unless committed.

Driver errors that mean "the database cannot be reached or is not answering" become
ServiceUnavailableError here, once, so the edges answer 503 and nothing half-done stays:
the transaction is rolled back by the database when its connection goes. So does a pool
with no connection free within its timeout (every one busy, e.g. waiting on a database
that has slowed down): nothing was begun, and the client may try again.

A read-only unit of work (``read_only=True``) reads one snapshot and takes no write lock
(storage/engine.py, ``begin_read_only``); it never commits.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from securelogin.domain.errors import ServiceUnavailableError
from securelogin.services.ports import UnitOfWork, UnitOfWorkFactory
from securelogin.storage.accounts import SqlStaffRepository, SqlUserRepository
from securelogin.storage.audit import SqlAuditLog
from securelogin.storage.devices import SqlDeviceRepository
from securelogin.storage.engine import begin_read_only
from securelogin.storage.lockout import SqlLockoutRepository
from securelogin.storage.recovery import (
    SqlOnlineCardRepository,
    SqlOutbox,
    SqlPasscodeRepository,
    SqlResetCodeRepository,
    SqlVerificationRepository,
)
from securelogin.storage.sessions import SqlLoginAttemptRepository, SqlSessionRepository

UNAVAILABLE = (OperationalError, InterfaceError)
log = logging.getLogger("securelogin.storage")


def is_unavailable(error: BaseException) -> bool:
    """Whether a driver error means the database is out of reach (not a bug of ours)."""
    unavailable = isinstance(error, UNAVAILABLE) or (
        isinstance(error, DBAPIError) and bool(error.connection_invalidated)
    )
    if unavailable:
        # The driver's own first line only: never the statement's parameters.
        original = getattr(error, "orig", None)
        first_line = str(original).splitlines()[0] if original and str(original) else ""
        log.warning("database unavailable: %s: %s", type(original).__name__, first_line[:200])
    return unavailable


class SqlUnitOfWork:
    """UnitOfWork over SQLAlchemy Core."""

    users: SqlUserRepository
    lockout: SqlLockoutRepository
    sessions: SqlSessionRepository
    logins: SqlLoginAttemptRepository
    staff: SqlStaffRepository
    audit: SqlAuditLog
    devices: SqlDeviceRepository
    passcodes: SqlPasscodeRepository
    online_cards: SqlOnlineCardRepository
    verifications: SqlVerificationRepository
    reset_codes: SqlResetCodeRepository
    outbox: SqlOutbox

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None

    def __enter__(self) -> SqlUnitOfWork:
        try:
            connection = self._engine.connect()
            try:
                if self._read_only:
                    self._transaction = begin_read_only(connection)
                else:
                    self._transaction = connection.begin()
            except BaseException:
                connection.close()  # back to the pool (or discarded, if it is dead)
                raise
        except DBAPIError as error:
            if is_unavailable(error):
                raise ServiceUnavailableError() from error
            raise
        except PoolTimeoutError as error:  # not a DBAPIError: the pool's own
            log.warning("database unavailable: no pooled connection free within the timeout")
            raise ServiceUnavailableError() from error
        self._connection = connection
        self.users = SqlUserRepository(connection)
        self.lockout = SqlLockoutRepository(connection)
        self.sessions = SqlSessionRepository(connection)
        self.logins = SqlLoginAttemptRepository(connection)
        self.staff = SqlStaffRepository(connection)
        self.audit = SqlAuditLog(connection)
        self.devices = SqlDeviceRepository(connection)
        self.passcodes = SqlPasscodeRepository(connection)
        self.online_cards = SqlOnlineCardRepository(connection)
        self.verifications = SqlVerificationRepository(connection)
        self.reset_codes = SqlResetCodeRepository(connection)
        self.outbox = SqlOutbox(connection)
        return self

    def __exit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 else None
        try:
            self.rollback()
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        if isinstance(exc, BaseException) and is_unavailable(exc):
            raise ServiceUnavailableError() from exc

    def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("commit outside a unit of work")
        if self._read_only:
            raise RuntimeError("a read-only unit of work never commits")
        self.lockout.refuse_unsettled()  # every guess admitted here is counted or withdrawn
        try:
            self.audit.flush()  # the audit head is locked last, just before the commit
            self._transaction.commit()
        except DBAPIError as error:
            if is_unavailable(error):
                raise ServiceUnavailableError() from error
            raise

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            try:
                self._transaction.rollback()
            except DBAPIError as error:
                if not is_unavailable(error):
                    raise
        self._transaction = None


def unit_of_work_factory(engine: Engine) -> UnitOfWorkFactory:
    """The factory the services call for each transaction."""

    def new_unit_of_work(*, read_only: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(engine, read_only=read_only)

    return new_unit_of_work
