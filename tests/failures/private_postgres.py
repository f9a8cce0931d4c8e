"""A PostgreSQL cluster of the test's own, which it may stop and start: the shared server on
port 5432 is never touched.

Made with the machine's own PostgreSQL programs (Debian's ``/usr/lib/postgresql/<version>/
bin``: ``initdb``, ``pg_ctl``), in a temporary folder, listening on 127.0.0.1 only, at a
free port, with no Unix socket outside its folder; trust authentication for ``postgres``
on loopback. PostgreSQL refuses to run as root, so as root its programs run as the
``postgres`` user (``runuser``), which owns the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.acceptance.server import free_port

START_SECONDS = 60


def programs() -> Path | None:
    """The folder of the newest installed PostgreSQL's programs, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivateCluster:
    """One cluster in ``folder``; ``url`` reaches its ``postgres`` database."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self._bin = bin_dir
        self._folder = folder
        self._data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        self._waiting = ("-w", "-t", str(START_SECONDS))  # pg_ctl: until done, this long at most
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{self.log()}")

    def create(self) -> None:
        data = str(self._data)
        self._run(
            "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self._folder}"
        )
        log = str(self._log())
        self._run(
            "pg_ctl", "-D", str(self._data), "-o", options, "-l", log, *self._waiting, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: as an operator stops it (every backend told, its transaction rolled
        back, the connections closed); ``immediate``: as if it crashed."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, *self._waiting, "stop")

    def running(self) -> bool:
        return (self._data / "postmaster.pid").exists()

    def _log(self) -> Path:
        return self._folder / "postgres.log"

    def log(self) -> str:
        try:
            return self._log().read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A cluster made and started in a new temporary folder (one the ``postgres`` user can
    reach: pytest's own are private to root), stopped and removed after. Without
    PostgreSQL's programs the test is skipped, but under CI it fails."""
    bin_dir = programs()
    if bin_dir is None:
        message = "PostgreSQL's programs (initdb, pg_ctl) are not installed"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI)")
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="securelogin-postgres-"))
    try:
        cluster = PrivateCluster(bin_dir, folder)
        cluster.create()
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop("immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
