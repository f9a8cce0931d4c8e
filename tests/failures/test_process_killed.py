"""A server process SIGKILLed while 100 wrong attempts at one user are in flight (R3.5).

Two real ``securelogin serve`` processes share one database (a SQLite file; a PostgreSQL
schema). 100 wrong-password logins for one user start together, 50 through each. As soon
as the database shows that the doomed process has admitted attempts it has not settled
(it is evaluating them: their pending failures are committed, their answers not yet
sent), it is SIGKILLed. Then the shared application clock moves past the 60 s grace after
which a pending failure counts as one of a dead process (docs/security.md), the process
is restarted, and the books are balanced:

- the user is locked, with exactly the threshold of 10 failures, every one settled;
- every attempt admitted for evaluation (``attempt.counted``, written in the same
  transaction as its pending failure) is one of those failures: none lost to the crash,
  none counted twice;
- every ``invalid_credentials`` answer a client received is a settled failure (never
  fewer), and the failures no client heard of are at most the requests the kill cut off;
- the audit chain, written by both processes and cut mid-way by the kill, verifies.

The two processes are told apart by the address their clients connect from (127.0.0.2
for the doomed one, 127.0.0.3 for the survivor), which every audit record carries.

The user's password is hashed with 10 argon2id iterations instead of 2
(``EVALUATION_ITERATIONS``), so that each evaluation lasts about 0.1 s. The watch for an
attempt in evaluation runs in this test's process, which can be held up for a few tenths
of a second (in a run of the whole suite, its garbage collector has much to walk, and the
machine's two cores are busy with the servers and the 100 clients), and the doomed process
must not answer all 50 meanwhile: with 2 iterations it had, within 0.4 s, in some runs of
the whole suite (10 failures settled, 40 refused as locked, none seen pending).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from securelogin.storage.tables import audit_records, lockout_failures, lockout_subjects, outbox
from tests.conftest import PASSWORD
from tests.failures.servers import (
    ServerProcess,
    audit_verifies,
    base_env,
    clock_ahead,
    database,
    error_code,
    prepare,
    reader,
    start_all,
)

pytestmark = pytest.mark.slow

USERNAME = "victim123"
WRONG = "Wrong4password"
THRESHOLD = 10  # R3.2, the default the servers run with
ATTEMPTS_PER_SERVER = 50
DOOMED_SOURCE = "127.0.0.2"
SURVIVOR_SOURCE = "127.0.0.3"
AFTER_RESTART_SOURCE = "127.0.0.4"
PAST_GRACE_SECONDS = 120  # storage/lockout.py PENDING_GRACE is 60 s
WAIT_SECONDS = 60
EVALUATION_ITERATIONS = "10"  # argon2id's time cost for this test's hashes (see above)
LOCK_SUBJECT = "Your account is locked"  # services/notifications.py

Outcome = tuple[int, str] | str  # (status, error code), or "cut" when no answer came


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(kind: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Engine]]:
    with database(kind, tmp_path) as url:
        env = base_env(url) | {"SECURELOGIN_ARGON2_TIME_COST": EVALUATION_ITERATIONS}
        prepare(env, tmp_path, USERNAME)
        engine = reader(url)
        try:
            yield env, engine
        finally:
            engine.dispose()


def client_from(
    server: ServerProcess, source: str, connections: int, sent: list[int] | None = None
) -> httpx.Client:
    """A client connecting from ``source``; counts the requests it sent into ``sent``."""
    transport = httpx.HTTPTransport(
        local_address=source,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )
    lock = threading.Lock()

    def note(_request: httpx.Request) -> None:
        if sent is not None:
            with lock:
                sent[0] += 1

    return httpx.Client(
        base_url=server.base_url,
        transport=transport,
        timeout=WAIT_SECONDS,
        event_hooks={"request": [note]},
    )


def login(client: httpx.Client, password: str) -> Outcome:
    try:
        response = client.post(
            "/api/v1/logins",
            json={"username": USERNAME, "password": password, "platform": "portal"},
        )
    except httpx.TransportError:
        return "cut"
    return response.status_code, error_code(response)


def audit_count(engine: Engine, source: str | None, action: str, outcome: str) -> int:
    """Audit records about the user; from ``source`` unless it is None (any source)."""
    query = (
        select(func.count())
        .select_from(audit_records)
        .where(
            audit_records.c.subject == USERNAME,
            audit_records.c.action == action,
            audit_records.c.outcome == outcome,
        )
    )
    if source is not None:
        query = query.where(audit_records.c.source == source)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def admitted(engine: Engine, source: str) -> int:
    return audit_count(engine, source, "attempt.counted", "pending")


def settled_wrong(engine: Engine, source: str) -> int:
    return audit_count(engine, source, "login.password", "invalid_credentials")


def evaluating(engine: Engine, source: str) -> int:
    """Attempts through ``source`` admitted and not settled: being evaluated right now."""
    return admitted(engine, source) - settled_wrong(engine, source)


def freeze_while_evaluating(
    server: ServerProcess, engine: Engine, source: str, futures: list[Future[Outcome]]
) -> None:
    """SIGSTOP ``server`` at a moment when it is evaluating attempts through ``source``.

    Stopped, it changes nothing more: the state the test sees is the state the SIGKILL
    will cut. Should it have settled everything between the sighting and the stop, it is
    let go again and the watch goes on.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and not all(future.done() for future in futures):
        if evaluating(engine, source) > 0:
            os.kill(server.pid(), signal.SIGSTOP)
            if evaluating(engine, source) > 0:
                return
            os.kill(server.pid(), signal.SIGCONT)
        time.sleep(0.001)  # polling the database for the event, bounded by the deadline
    pytest.fail(f"no attempt through {source} was ever seen in evaluation")


def wait_until_sent(sent: list[int], count: int) -> None:
    """Until the clients have sent ``count`` requests (their answers may still be due)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while sent[0] < count:
        if time.monotonic() > deadline:
            pytest.fail(f"only {sent[0]} of {count} requests were sent")
        time.sleep(0.001)  # polling the clients' counter, bounded by the deadline


def test_a_process_killed_mid_evaluation_loses_no_count_and_counts_none_twice(
    setup: tuple[dict[str, str], Engine], tmp_path: Path
) -> None:
    env, engine = setup
    doomed = ServerProcess(env, tmp_path, "doomed")
    survivor = ServerProcess(env, tmp_path, "survivor")
    try:
        start_all(doomed, survivor)
        survivor_sent = [0]
        go_doomed = threading.Event()
        go_survivor = threading.Event()
        with (
            client_from(doomed, DOOMED_SOURCE, ATTEMPTS_PER_SERVER) as to_doomed,
            client_from(
                survivor, SURVIVOR_SOURCE, ATTEMPTS_PER_SERVER, survivor_sent
            ) as to_survivor,
            ThreadPoolExecutor(max_workers=2 * ATTEMPTS_PER_SERVER) as pool,
        ):

            def attempt(client: httpx.Client, go: threading.Event) -> Outcome:
                assert go.wait(WAIT_SECONDS)
                return login(client, WRONG)

            through_doomed = [
                pool.submit(attempt, to_doomed, go_doomed) for _ in range(ATTEMPTS_PER_SERVER)
            ]
            through_survivor = [
                pool.submit(attempt, to_survivor, go_survivor) for _ in range(ATTEMPTS_PER_SERVER)
            ]
            # The doomed process goes first, so that it surely holds places when it dies;
            # then the survivor's 50 arrive, and the doomed process is killed mid-flight.
            go_doomed.set()
            freeze_while_evaluating(doomed, engine, DOOMED_SOURCE, through_doomed)
            go_survivor.set()
            wait_until_sent(survivor_sent, ATTEMPTS_PER_SERVER)
            doomed.kill()
            heard_by_doomed = Counter(f.result(timeout=WAIT_SECONDS) for f in through_doomed)
            # Restarted on the same database, past the grace; the survivor's attempts are
            # still in flight. The restarted process never waits (every pending failure is
            # older than the grace by its clock), so it never sleeps (see clock_ahead).
            doomed.start(clock_ahead(PAST_GRACE_SECONDS))
            after_restart: Counter[Outcome] = Counter()
            with client_from(doomed, AFTER_RESTART_SOURCE, 1) as client:
                for _ in range(THRESHOLD + 1):
                    outcome = login(client, WRONG)
                    after_restart[outcome] += 1
                    if outcome != (401, "invalid_credentials"):
                        break
                assert outcome == (423, "account_locked"), after_restart
                assert login(client, PASSWORD) == (423, "account_locked")  # R3.3
            heard_by_survivor = Counter(f.result(timeout=WAIT_SECONDS) for f in through_survivor)

        assert survivor.alive(), survivor.log()
        with httpx.Client(base_url=survivor.base_url, timeout=WAIT_SECONDS) as client:
            assert login(client, PASSWORD) == (423, "account_locked")
    finally:
        doomed.stop()
        survivor.stop()

    invalid = (401, "invalid_credentials")
    allowed = {invalid, (423, "account_locked"), (429, "too_many_requests")}
    assert set(heard_by_survivor) <= allowed, heard_by_survivor
    assert set(heard_by_doomed) <= allowed | {"cut"}, heard_by_doomed
    cut_off = heard_by_doomed["cut"]
    assert cut_off >= 1  # the kill did land while requests were in flight

    with engine.connect() as connection:
        failures = connection.execute(
            select(lockout_failures.c.failed_at, lockout_failures.c.settled_at).where(
                lockout_failures.c.subject == USERNAME
            )
        ).all()
        locked_until = connection.execute(
            select(lockout_subjects.c.locked_until).where(lockout_subjects.c.subject == USERNAME)
        ).scalar_one()

    # Locked, with exactly the threshold of failures, all settled (none left pending).
    assert len(failures) == THRESHOLD
    assert all(row.settled_at is not None for row in failures)
    assert locked_until == max(row.failed_at for row in failures) + timedelta(hours=24)

    # The lock is a lock like any other, whoever set it: audited once, the user told once
    # (R6.7, R9), even when it was the dead process's failure that completed the ten.
    assert audit_count(engine, None, "account.locked", "locked") == 1
    with engine.connect() as connection:
        told = connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.subject == LOCK_SUBJECT)
        ).scalar_one()
    assert told == 1

    # Every admission is one failure: none lost to the kill, none counted twice.
    sources = (DOOMED_SOURCE, SURVIVOR_SOURCE, AFTER_RESTART_SOURCE)
    assert sum(admitted(engine, source) for source in sources) == THRESHOLD

    # The survivor settled everything it admitted, and its clients heard every one.
    assert admitted(engine, SURVIVOR_SOURCE) == settled_wrong(engine, SURVIVOR_SOURCE)
    assert settled_wrong(engine, SURVIVOR_SOURCE) == heard_by_survivor[invalid]
    assert settled_wrong(engine, AFTER_RESTART_SOURCE) == after_restart[invalid]

    # The doomed process: every answer heard is a settled failure (never fewer); it died
    # holding admitted attempts it never settled (counted after the grace, not lost); and
    # what no client heard of is at most what the kill cut off.
    doomed_settled = settled_wrong(engine, DOOMED_SOURCE)
    orphans = admitted(engine, DOOMED_SOURCE) - doomed_settled
    assert doomed_settled >= heard_by_doomed[invalid]
    assert orphans >= 1
    assert (doomed_settled - heard_by_doomed[invalid]) + orphans <= cut_off

    verified = audit_verifies(env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
