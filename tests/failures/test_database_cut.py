"""The database goes away while logins flow, and comes back (PostgreSQL).

A real ``securelogin serve`` process, four clients logging in without pause, right and
wrong passwords, and the database goes away in one of two ways:

- **PostgreSQL stopped**: a cluster of the test's own (tests/failures/private_postgres.py;
  the shared server is never touched) is stopped as an operator stops it (``pg_ctl stop
  -m fast``: every backend tells its client it is shutting down, rolls back and closes;
  new connections are refused), then started again; or **crashed** (``-m immediate``:
  every process ends at once, nothing rolled back or closed in order, and the next start
  recovers from the write-ahead log);
- **the connection cut**: the service reaches the shared server through a TCP proxy, which
  closes every connection through it mid-conversation and refuses new ones, then lets
  them through again.

Then:

- every request answers within seconds, never a 500: requests sent while the database is
  away get ``503 service_unavailable`` as JSON, as does ``/healthz``; the process stays up;
- once the database is back, logins succeed again with no restart (a connection that
  fails is discarded, and one that idled in the pool is pinged before use:
  storage/engine.py);
- nothing is half-written: the audit chain verifies (``securelogin audit verify``), and
  every count and its audit record were written together or not at all: each admitted
  attempt is one failure row and one ``attempt.counted`` record, each settled failure
  one ``invalid_credentials`` record, each session one ``login.password ok`` and one
  ``session.created`` record; at most the requests the outage answered with 503 left an
  admitted attempt unsettled (it counts as a failure after the grace, never lost).

SQLite has no analogue worth a test here: it is a file opened by the process itself, with
no connection that can be cut; a missing database (503 at once) is covered by
tests/interfaces/test_database_down.py, and a writer blocked by another process's lock
waits for SQLite's busy timeout by design (storage/engine.py), which is not an outage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from securelogin.storage.tables import audit_records, lockout_failures, sessions, users
from tests.conftest import PASSWORD
from tests.databases import postgres_schema_url
from tests.failures.private_postgres import private_cluster
from tests.failures.proxy import CuttableProxy, through
from tests.failures.servers import (
    ServerProcess,
    audit_verifies,
    base_env,
    error_code,
    prepare,
    reader,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RIGHT_USER = "rightone1"  # password only (never enrolled): a right password is a session
WRONG_USER = "wrongone1"
WRONG = "Wrong4password"
CLIENTS = 4
SECONDS_ALLOWED = 10  # the PostgreSQL connect timeout is 3 s (storage/engine.py)
WAIT_SECONDS = 60
ENOUGH = 10  # answers of each kind to see in each phase


@dataclass(frozen=True)
class Answer:
    user: str
    outcome: tuple[int, str]  # status and error code ("ok" when none)
    content_type: str
    sent: float  # time.monotonic() before sending
    answered: float  # and after the answer
    body: str


class Traffic:
    """Clients logging in without pause, each answer noted with when it was sent."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: list[Answer] = []
        self.lost: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WAIT_SECONDS)

    def _run(self, number: int) -> None:
        user, password = (RIGHT_USER, PASSWORD) if number % 2 else (WRONG_USER, WRONG)
        with httpx.Client(base_url=self.base_url, timeout=WAIT_SECONDS) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post(
                        "/api/v1/logins",
                        json={"username": user, "password": password, "platform": "portal"},
                    )
                except httpx.TransportError as error:
                    with self._lock:
                        self.lost.append(repr(error))
                    continue
                answer = Answer(
                    user,
                    (response.status_code, error_code(response)),
                    response.headers.get("content-type", ""),
                    sent,
                    time.monotonic(),
                    response.text,
                )
                with self._lock:
                    self.answers.append(answer)

    def count(self, since: float, outcome: tuple[int, str], user: str) -> int:
        with self._lock:
            return sum(
                1
                for a in self.answers
                if a.sent >= since and a.outcome == outcome and a.user == user
            )

    def wait_for(self, since: float, outcome: tuple[int, str], count: int, user: str) -> None:
        """Until ``count`` answers ``outcome`` to ``user``'s requests sent after ``since``."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.count(since, outcome, user) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"never {count} x {outcome} for {user}")
            time.sleep(0.01)  # the clients are the event source; bounded by the deadline


@dataclass(frozen=True)
class Outage:
    """Where the service reaches the database, where the test looks at it directly, and
    how it goes away and comes back."""

    service_url: str
    direct_url: str
    begin: Callable[[], None]
    end: Callable[[], None]


@pytest.fixture(params=["PostgreSQL stopped", "PostgreSQL crashed", "connection cut"])
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    if request.param != "connection cut":
        mode = "fast" if request.param == "PostgreSQL stopped" else "immediate"
        with private_cluster() as cluster:
            yield Outage(cluster.url, cluster.url, lambda: cluster.stop(mode), cluster.start)
        return
    with postgres_schema_url() as url:
        direct = make_url(url)
        relay = CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432))
        relay.restore()
        try:
            yield Outage(through(url, relay.port), url, relay.cut, relay.restore)
        finally:
            relay.close()


def counted(engine: Engine, username: str, action: str, outcome: str) -> int:
    query = (
        select(func.count())
        .select_from(audit_records)
        .where(
            audit_records.c.subject == username,
            audit_records.c.action == action,
            audit_records.c.outcome == outcome,
        )
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def test_a_database_gone_is_a_quick_503_and_service_resumes_with_nothing_half_written(
    outage: Outage, tmp_path: Path
) -> None:
    env = base_env(outage.direct_url)
    prepare(env, tmp_path, RIGHT_USER, WRONG_USER)
    server = ServerProcess(
        env
        | {
            "SECURELOGIN_DATABASE_URL": outage.service_url,
            "SECURELOGIN_LOCKOUT_THRESHOLD": "100000",  # the wrong user must never lock
        },
        tmp_path,
        "server",
    )
    ok, invalid, unavailable = (
        (200, "ok"),
        (401, "invalid_credentials"),
        (503, "service_unavailable"),
    )
    server.start()
    try:
        with (
            Traffic(server.base_url) as traffic,
            httpx.Client(base_url=server.base_url, timeout=WAIT_SECONDS) as probe,
        ):
            traffic.wait_for(0, ok, ENOUGH, RIGHT_USER)
            traffic.wait_for(0, invalid, ENOUGH, WRONG_USER)

            outage.begin()
            gone = time.monotonic()
            traffic.wait_for(gone, unavailable, ENOUGH, RIGHT_USER)
            traffic.wait_for(gone, unavailable, ENOUGH, WRONG_USER)
            health = probe.get("/healthz")
            assert (health.status_code, error_code(health)) == unavailable
            assert server.alive(), server.log()

            restoring = time.monotonic()
            outage.end()
            restored = time.monotonic()
            traffic.wait_for(restored, ok, ENOUGH, RIGHT_USER)
            traffic.wait_for(restored, invalid, ENOUGH, WRONG_USER)
            assert probe.get("/healthz").status_code == 200
        assert server.alive(), server.log()
    finally:
        server.stop()

    answers = traffic.answers
    assert not traffic.lost, traffic.lost[:3]  # every request was answered
    for answer in answers:
        assert answer.answered - answer.sent < SECONDS_ALLOWED, answer
        assert answer.content_type.startswith("application/json"), answer
        assert "Traceback" not in answer.body
        assert answer.outcome in {ok, invalid, unavailable}, answer
    # Sent while the database was away: only 503s. (Requests in flight at the cut or the
    # restore may have gone either way; the bounds below allow for them.)
    during_cut = [a for a in answers if a.sent >= gone and a.answered <= restoring]
    assert {a.outcome for a in during_cut} == {unavailable}

    verified = audit_verifies(env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    engine = reader(outage.direct_url)
    try:
        received = Counter((a.user, a.outcome) for a in answers)
        unanswered_by_db = {
            user: received[(user, unavailable)] for user in (RIGHT_USER, WRONG_USER)
        }

        # The wrong user: each admission is one failure row and one record; each settled
        # failure one invalid_credentials record; every 401 heard is settled; at most the
        # 503s left an admitted attempt pending.
        with engine.connect() as connection:
            rows = connection.execute(
                select(lockout_failures.c.settled_at).where(
                    lockout_failures.c.subject == WRONG_USER
                )
            ).all()
        settled = sum(1 for row in rows if row.settled_at is not None)
        pending = len(rows) - settled
        assert len(rows) == counted(engine, WRONG_USER, "attempt.counted", "pending")
        assert settled == counted(engine, WRONG_USER, "login.password", "invalid_credentials")
        heard = received[(WRONG_USER, invalid)]
        assert heard <= settled <= heard + unanswered_by_db[WRONG_USER]
        assert pending <= unanswered_by_db[WRONG_USER]

        # The right user: each session was written with its two records, or not at all.
        with engine.connect() as connection:
            user_id = connection.execute(
                select(users.c.user_id).where(users.c.username == RIGHT_USER)
            ).scalar_one()
            opened = connection.execute(
                select(func.count()).select_from(sessions).where(sessions.c.user_id == user_id)
            ).scalar_one()
        assert opened == counted(engine, RIGHT_USER, "login.password", "ok")
        assert opened == counted(engine, RIGHT_USER, "session.created", "ok")
        heard = received[(RIGHT_USER, ok)]
        assert heard <= opened <= heard + unanswered_by_db[RIGHT_USER]
    finally:
        engine.dispose()
