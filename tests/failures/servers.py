"""Real ``securelogin serve`` processes for the failure tests: start, SIGKILL, restart.

A process may run with its application clock ahead (libfaketime, ``clock_ahead``).
Helpers read the database behind the servers' backs without taking SQLite's write lock.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from tests.acceptance.server import SECURELOGIN, free_port, libfaketime, run_cli
from tests.conftest import user_body
from tests.databases import postgres_schema_url, sqlite_url
from tests.processes import stop_process

STARTUP_SECONDS = 30


def clock_ahead(seconds: int) -> dict[str, str]:
    """Environment for a process whose application clock runs ``seconds`` ahead (R10).

    Only the wall clock is moved (libfaketime); monotonic clocks, and so the server's own
    timeouts, stay real. Beware: libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1
    makes every ``time.sleep()`` fail with EINVAL (Python sleeps with
    ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``), so such a process must not reach
    a code path that sleeps (e.g. the lockout's wait for attempts in flight).

    The offset is given in ``FAKETIME`` itself, read once as the process starts. Read from
    a ``FAKETIME_TIMESTAMP_FILE`` on every clock call (``FAKETIME_NO_CACHE=1``, as the
    acceptance tests' movable clock did before 7 December; it now reads its file at most
    once a second), libfaketime 0.9.10 races between threads: 563
    of 80,000 ``time.time()`` calls from four threads of one process were not moved (a
    session script, 7 December). In test_process_killed.py that once made the restarted
    server read the real time, take the dead process's pending failures for fresh ones,
    wait for them, and fail in ``time.sleep``.
    """
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME": f"+{seconds}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


class ServerProcess:
    """``securelogin serve`` on a fixed free port of 127.0.0.1; restartable on that port."""

    def __init__(self, env: dict[str, str], folder: Path, name: str) -> None:
        self.env = env
        self.folder = folder
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}-{self.starts}.log"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        """Start (or restart) on the same port; ``extra_env`` for this run only."""
        self.spawn(extra_env)
        self.wait_ready()

    def spawn(self, extra_env: dict[str, str] | None = None) -> None:
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [SECURELOGIN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env | (extra_env or {}),
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and self.alive():
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a starting server, bounded by the deadline
        self.stop()
        pytest.fail(f"{self.name} did not start:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, transactions are cut mid-way."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def start_all(*servers: ServerProcess) -> None:
    """Start several servers side by side (each start is mostly Python imports)."""
    for server in servers:
        server.spawn()
    for server in servers:
        server.wait_ready()


@contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database URL of ``kind`` (``sqlite`` or ``postgres``); not yet migrated."""
    if kind == "sqlite":
        yield sqlite_url(folder)
        return
    with postgres_schema_url() as url:
        yield url


def base_env(database_url: str) -> dict[str, str]:
    """The test's environment without any SECURELOGIN_* of its own, plus a fresh key."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECURELOGIN_")}
    env["SECURELOGIN_DATABASE_URL"] = database_url
    env["SECURELOGIN_SECRET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return env


def prepare(env: dict[str, str], folder: Path, *usernames: str) -> None:
    """Migrate the database and create password-only users (never enrolled, R4.3)."""
    run_cli(["db", "upgrade"], env, folder)
    for username in usernames:
        run_cli(["users", "create"], env, folder, stdin=json.dumps(user_body(username)))


def audit_verifies(env: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SECURELOGIN, "audit", "verify"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reader(database_url: str) -> Engine:
    """An engine for looking at the database: plain transactions, never BEGIN IMMEDIATE."""
    return create_engine(database_url)


def error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not-json"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code"))
    return "ok"
