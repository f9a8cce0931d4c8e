"""A real ``securelogin serve`` process whose clock the test moves with libfaketime.

The server runs with libfaketime preloaded and reads its offset from a file on every
clock call (``FAKETIME_TIMESTAMP_FILE``, ``FAKETIME_NO_CACHE=1``), so one process lives
through days of the rules' windows while the test writes ``+3d`` into that file.
Only the application's wall clock moves (R10); monotonic clocks are left alone so that
the server's own timeouts behave.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.processes import stop_process

SECURELOGIN = str(Path(sys.executable).with_name("securelogin"))
LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    if os.environ.get("CI"):
        pytest.fail("libfaketime is missing (Debian package faketime); scripts/test installs it")
    pytest.skip("libfaketime is missing (Debian package faketime)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MovableClockServer:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.offset_file = folder / "faketime"
        self.offset_file.write_text("+0d\n")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "LD_PRELOAD": libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def move_to(self, days: float) -> None:
        """Set the server's clock ``days`` after the real now (libfaketime offset)."""
        self.offset_file.write_text(f"+{int(days * 86400)}s\n")

    def start(self) -> None:
        log = (self.folder / "server.log").open("wb")
        self.process = subprocess.Popen(
            [SECURELOGIN, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not start:\n" + self.log())

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def movable_clock_server(folder: Path, env: dict[str, str]) -> Iterator[MovableClockServer]:
    server = MovableClockServer(folder, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_cli(args: list[str], env: dict[str, str], folder: Path, stdin: str = "") -> str:
    """Run the command line (with the real clock) and return its standard output."""
    done = subprocess.run(
        [SECURELOGIN, *args],
        env=env,
        cwd=folder,
        input=stdin.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"securelogin {args} failed: {done.stderr.decode()}")
    return done.stdout.decode()
