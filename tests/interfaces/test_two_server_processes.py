"""R3.5 across processes: two real ``securelogin serve`` processes share one database.

200 wrong-password logins for one user start together (a barrier) on 32 threads, split
evenly between the two servers. Exactly 10 may be evaluated (401); the other 190 must be
refused as locked (423), and so must the correct password afterwards. The audit chain
written by both processes at once must still verify.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, user_body
from tests.processes import stop_process

pytestmark = pytest.mark.slow

SECURELOGIN = str(Path(sys.executable).parent / "securelogin")
ATTEMPTS = 200
THREADS = 32
STARTUP_SECONDS = 30
FIRE_SECONDS = 45
USERNAME = "victim123"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        [SECURELOGIN, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, (args, completed.stdout, completed.stderr)
    return completed.stdout


class Server:
    """One ``securelogin serve`` process on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [SECURELOGIN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling a starting server, bounded by the deadline
        pytest.fail(f"server on port {self.port} did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


@pytest.fixture
def server_env(empty_database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECURELOGIN_")}
    env["SECURELOGIN_DATABASE_URL"] = empty_database_url
    env["SECURELOGIN_SECRET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    command(env, "db", "upgrade")
    assert command(env, "users", "create", stdin=json.dumps(user_body(USERNAME))).strip()
    return env


@pytest.fixture
def two_servers(server_env: dict[str, str], tmp_path: Path) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        servers = []
        for number in (1, 2):
            server = Server(server_env, tmp_path / f"server{number}.log")
            stack.callback(server.stop)
            servers.append(server)
        deadline = time.monotonic() + STARTUP_SECONDS
        for server in servers:
            server.wait_until_healthy(deadline)
        yield servers


def login(client: httpx.Client, password: str) -> tuple[int, str]:
    response = client.post(
        "/api/v1/logins",
        json={"username": USERNAME, "password": password, "platform": "portal"},
    )
    code = response.json().get("error", {}).get("code", "ok")
    return response.status_code, code


def fire_simultaneously(servers: list[Server], password: str) -> Counter[tuple[int, str]]:
    barrier = threading.Barrier(THREADS, timeout=FIRE_SECONDS)
    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with ExitStack() as stack:
        clients = [
            stack.enter_context(httpx.Client(base_url=s.base_url, timeout=30.0, limits=limits))
            for s in servers
        ]

        def attempt(index: int) -> tuple[int, str]:
            if index < THREADS:
                barrier.wait()
            return login(clients[index % len(clients)], password)

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return Counter(pool.map(attempt, range(ATTEMPTS), timeout=FIRE_SECONDS))


def test_exactly_ten_of_two_hundred_wrong_logins_across_two_server_processes_are_evaluated(
    two_servers: list[Server], server_env: dict[str, str]
) -> None:
    outcomes = fire_simultaneously(two_servers, "Wrong4password")

    assert outcomes == Counter({(401, "invalid_credentials"): 10, (423, "account_locked"): 190})
    for server in two_servers:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            assert login(client, PASSWORD) == (423, "account_locked")
    verified = subprocess.run(
        [SECURELOGIN, "audit", "verify"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert all(server.process.poll() is None for server in two_servers)
