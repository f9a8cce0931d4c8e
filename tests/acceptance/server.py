"""A real ``securelogin serve`` process whose clock the test moves with libfaketime.

The server runs with libfaketime preloaded and reads its offset from a file
(``FAKETIME_TIMESTAMP_FILE``), so one process lives through days of the rules' windows while
the test writes ``+3d`` into that file. Only the application's wall clock moves (R10);
monotonic clocks are left alone so that the server's own timeouts behave.

The file is read again at most once a second (``FAKETIME_CACHE_DURATION=1``), not on every
clock call (``FAKETIME_NO_CACHE=1``, as before 7 December): libfaketime 0.9.10 re-reading it
races between threads, and 563 of 80,000 ``time.time()`` calls from four threads of one
process were not moved (a session script); with a read a second, none of 400,000. A move
replaces the file whole (a reader never sees it half written) and waits until the server's
own ``Date`` header shows the new time.
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
from email.utils import parsedate_to_datetime
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
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def move_to(self, days: float) -> None:
        """Set the server's clock ``days`` after the real now (libfaketime offset), and
        wait until the server reads it."""
        seconds = int(days * 86400)
        staged = self.offset_file.with_name(self.offset_file.name + ".new")
        staged.write_text(f"+{seconds}s\n")
        os.replace(staged, self.offset_file)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            date = httpx.get(self.base_url + "/healthz", timeout=5).headers["date"]
            if abs(parsedate_to_datetime(date).timestamp() - (time.time() + seconds)) < 30:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the server's clock did not move to +{seconds}s")

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
