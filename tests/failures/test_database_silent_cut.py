"""The network to PostgreSQL cut without a word: packets dropped, nothing closed.

A pulled cable, or a firewall that forgets a flow, closes nothing: the service's kernel
hears nothing back, and PostgreSQL keeps the cut-off transaction open with its row locks.
Here the relay of tests/failures/proxy.py stands for the network, and an nftables rule on
loopback drops every packet to and from its port, both ways (root and Debian's nftables,
which scripts/install-system-packages installs). Then:

- a request whose transaction was under way answers 503 within seconds: the kernel gives
  up on data unacknowledged for 5 s (``tcp_user_timeout``, storage/engine.py), and on a
  connection waiting for its answer, quiet for 2 s, whose keepalive probe goes
  unanswered; so does one that needs a new connection (the 3-second connect timeout);
- once the network is back, logins succeed with no restart, even for the subject whose
  row lock the cut-off transaction held, and nothing of that transaction was written.
  PostgreSQL ends it when it has fallen silent for long enough
  (``idle_in_transaction_session_timeout``, shortened here to 3 s), or sooner if the dead
  client's connection is found out once the network is back. Without the timeout, this
  test saw that happen about 5 s after the cut healed; a packet capture on loopback showed
  how: the relay's last answer, whose acknowledgement the cut dropped, is sent again on
  TCP's doubling backoff (0.2, 0.4, 0.8 s...), and its first retry after the heal meets
  the service's socket, long closed, and is reset; the relay then closes its side, and
  PostgreSQL ends the backend. A connection with nothing unacknowledged would wait for the
  timeout, and a frozen app server is never found out that way
  (tests/integration/test_frozen_transaction.py).

The statement and idle-in-transaction timeouts are shortened for the test; the TCP and
connect timeouts and keepalives, which are what is timed, are the service's own. With the
TCP timeout at its former 15 s, the first 503 took 15.2 s; with the keepalives' former 10 s
of quiet before the first probe, the waiting request's took 11.5 s: each failed its test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.services import login
from securelogin.services.audit import verify_audit_chain
from securelogin.storage import engine as engines
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

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERNAME = "severed12"
SECONDS_ALLOWED = 10  # "quickly": the TCP timeout is 5 s, the connect timeout 3 s
IDLE_TIMEOUT_MS = 3_000
STATEMENT_TIMEOUT_MS = 10_000


TABLE_PREFIX = "securelogin_test_"  # then the pid of the test's process: see _drop_leftovers


def nft() -> str:
    """The nft command, when this test may use it (it can make and drop a table: root with
    CAP_NET_ADMIN); a failure in CI, else a skip. Tables a killed run left behind are
    dropped first."""
    found = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
    usable = found is not None and os.geteuid() == 0 and _nft_works(found)
    if found is not None and usable:
        _drop_leftovers(found)
        return found
    message = "needs root and nft (Debian's nftables; scripts/install-system-packages installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _nft(command: str, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command, *args], input=script, capture_output=True, text=True, timeout=30, check=False
    )


def _nft_works(command: str) -> bool:
    probe = f"{TABLE_PREFIX}{os.getpid()}_probe"
    made = _nft(command, "add", "table", "inet", probe).returncode == 0
    return made and _nft(command, "delete", "table", "inet", probe).returncode == 0


def _drop_leftovers(command: str) -> None:
    """Drop the tables of test processes that have ended (killed before they healed); those
    of a run still going, on the same machine, are its own."""
    for name in _nft(command, "list", "tables").stdout.split():
        owner = name.removeprefix(TABLE_PREFIX).split("_")[0]
        if name.startswith(TABLE_PREFIX) and not (owner.isdigit() and _alive(int(owner))):
            _nft(command, "delete", "table", "inet", name)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@contextmanager
def silently_cut(port: int) -> Iterator[Callable[[], None]]:
    """Drop every loopback packet to and from ``port`` until the returned heal is called
    (or the block ends). The table is made whole or not at all (one nft transaction), and
    matches only the loopback interface."""
    command = nft()
    table = f"{TABLE_PREFIX}{os.getpid()}_{port}"
    rules = (
        f"table inet {table} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0;\n"
        f'    oifname "lo" tcp dport {port} drop\n'
        f'    oifname "lo" tcp sport {port} drop\n'
        "  }\n"
        "}\n"
    )
    healed = False

    def heal() -> None:
        nonlocal healed
        if not healed:
            done = _nft(command, "delete", "table", "inet", table)
            assert done.returncode == 0, done.stderr
            healed = True

    made = _nft(command, "-f", "-", script=rules)
    assert made.returncode == 0, made.stderr
    try:
        yield heal
    finally:
        heal()


@pytest.fixture
def cut_setup(
    monkeypatch: pytest.MonkeyPatch, fast_hasher: Argon2Hasher
) -> Iterator[tuple[Application, Application, CuttableProxy]]:
    """The service through the relay, and a direct look at the same database."""
    nft()
    monkeypatch.setattr(engines, "POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS", IDLE_TIMEOUT_MS)
    monkeypatch.setattr(engines, "POSTGRES_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS)
    with relayed(fast_hasher) as applications:
        yield applications


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """``call``'s result, or its error, and the seconds it took."""
    started = time.monotonic()
    try:
        outcome = call()
    except Exception as error:
        outcome = error
    return outcome, time.monotonic() - started


def test_a_silent_cut_is_a_quick_503_and_service_resumes_with_the_cut_off_locks_released(
    cut_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    service, look, relay = cut_setup
    make_user(service, USERNAME)
    assert isinstance(log_in(service, USERNAME), login.LoggedIn)

    with service.context.uow() as uow:
        # A transaction under way: the subject's row locked, a pending failure written.
        now = service.context.clock.now()
        uow.lockout.admit(USERNAME, now, service.context.policies.lockout)
        with silently_cut(relay.port) as heal:  # its commit is never heard
            outcome, in_flight = timed(uow.commit)
            assert isinstance(outcome, ServiceUnavailableError), outcome
            assert in_flight < SECONDS_ALLOWED
            outcome, new_connection = timed(lambda: log_in(service, USERNAME))  # the pool's is lost
            assert isinstance(outcome, ServiceUnavailableError), outcome
            assert new_connection < SECONDS_ALLOWED
            heal()

    # The cut-off transaction still holds the subject's row at PostgreSQL until the server
    # ends it; then this login goes through, with no restart.
    outcome, _ = timed(lambda: log_in(service, USERNAME))
    assert isinstance(outcome, login.LoggedIn), outcome
    assert rows(look, lockout_failures, subject=USERNAME) == 0  # its pending one was undone
    assert rows(look, audit_records, subject=USERNAME, action="attempt.counted") == 2
    assert verify_audit_chain(look.context).intact


def test_a_silent_cut_ends_a_request_waiting_for_its_answer_within_seconds(
    cut_setup: tuple[Application, Application, CuttableProxy],
) -> None:
    """Its query was sent and acknowledged before the cut, so no data is left to time out:
    the keepalive probes of a connection quiet for 2 s find the cut (storage/engine.py)."""
    service, look, relay = cut_setup
    make_user(service, USERNAME)
    with look.context.uow() as holder:  # another app server holds the subject's row
        holder.lockout.admit(USERNAME, look.context.clock.now(), look.context.policies.lockout)
        waiting = InBackground(lambda: log_in(service, USERNAME))
        wait_for_a_lock_wait(look, relay)
        time.sleep(0.5)  # the query's last acknowledgement (delayed by up to 40 ms) is back
        with silently_cut(relay.port) as heal:
            started = time.monotonic()
            answer = waiting.outcome()  # a login still waiting fails the test
            ended = time.monotonic() - started
            heal()
    assert isinstance(answer, ServiceUnavailableError), answer
    assert ended < SECONDS_ALLOWED


def wait_for_a_lock_wait(look: Application, relay: CuttableProxy) -> None:
    """Until a backend of the service waits for a row lock (its query sent and taken)."""
    wait_until(
        look,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND application_name = :name",
        lambda waiting: waiting > 0,
        "the login never waited for the subject's lock",
        {"name": service_application_name(relay)},
    )
