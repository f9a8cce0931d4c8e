"""psycopg's connection, with every wait for the server bounded.

A login's statements go through storage/pipeline.py, whose round trips wait for their
answers ``pipeline.ANSWER_TIMEOUT_SECONDS`` at most for each statement. Everything else
psycopg sends by itself: the statements of the other pages and of the console, the CLI's,
SQLAlchemy's own on a new connection, and every ``ROLLBACK`` (a login that waited its turn
rolls back too, storage/lockout.py ``Busy``). psycopg waits for those answers in its
``Connection.wait``, without end unless given a timeout; against a PostgreSQL hung while
its host still acknowledges our packets (no TCP timeout fires, and its statement timeout
never runs) a request would wait for ever, its thread and pooled connection with it.

``BoundedConnection.wait`` gives each of those waits the same bound as a pipelined
statement: the statement timeout (15 s, storage/engine.py) that the server enforces, and a
margin, so an answer that legitimately takes long always ends at the server first. (A wait
covers one statement and its rows, but for a few rows inserted at once, such as a user's
security answers, which psycopg sends as a short batch waited for together.) Past the bound
the connection is closed, as lost: psycopg then reports it closed and SQLAlchemy
invalidates it (and the pool's older ones). A statement cut off so ends in a 503 (the unit
of work's ``ServiceUnavailableError``), and what the server had of its transaction is
rolled back by it, or is in doubt if the wait was for a ``COMMIT`` (docs/operations.md). A
``ROLLBACK`` cut off so is the end of a transaction that was not to commit anyway: the unit
of work logs it and the request answers as it would have (20 s late), the server rolling
back. A wait given a timeout by its caller (in psycopg only ``notifies(timeout=...)``; the
service listens for no notification) keeps that timeout and psycopg's handling of it.

The connection is psycopg's own in everything else; storage/engine.py makes it the one
SQLAlchemy opens. The bound is read at each wait, so tests can shorten it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from psycopg import Connection, errors, pq
from psycopg.abc import PQGen

from securelogin.storage import pipeline

RV = TypeVar("RV")

# psycopg raises this (an OperationalError) when a wait given a timeout runs out; its
# Connection.wait documents it, under a private name.
_WAIT_TIMEOUT: type[errors.OperationalError] = errors._WaitTimeout


class BoundedConnection(Connection[Any]):
    """A psycopg connection whose every wait for the server ends within
    ``pipeline.ANSWER_TIMEOUT_SECONDS``, unless the wait was given a timeout of its own."""

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        if timeout is not None:  # the caller's own bound (notifies), and psycopg's handling
            return super().wait(gen, interval, timeout)
        bound = pipeline.ANSWER_TIMEOUT_SECONDS
        try:
            return super().wait(gen, interval, bound)
        except _WAIT_TIMEOUT:
            # The exchange stopped half-way, in a state nobody knows: closed, so that
            # psycopg reports the connection lost and it is never used again.
            if self.pgconn.status != pq.ConnStatus.BAD:
                self.pgconn.finish()
            raise errors.OperationalError(
                f"the database did not answer within {bound:g} seconds"
            ) from None
