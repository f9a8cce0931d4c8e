"""Which cores the benchmarked server runs on, and which run everything else.

Deployed, an app server has its cores to itself: the clients and their load come over the
network, and PostgreSQL runs on a machine of its own (docs/operations.md, sizing). So
``bench/run login`` gives the server cores of its own and measures the argon2id ceiling
on those same cores, with one process per core; the load generator, this benchmark's own
clients and the local PostgreSQL server run on the others. What runs inside the server
stays on its cores, the embedded SQLite included.

The other placement, everything on every core, is the one the benchmark used before 7
December: there the load generator and PostgreSQL take their CPU from the server's cores
and from the ceiling's. It is still measured, for reference.

PostgreSQL's processes (the server process that forks a backend for each connection, and
every process it has forked) are moved only for the duration of a placement, and given
back the cores they had; only a server on this machine (a loopback or Unix-socket
address) is moved, and only when the benchmark may (root, or CAP_SYS_NICE): otherwise its
processes stay where they are and the placement says so. A backend that another client
opens meanwhile keeps the cores it was forked with until it ends. A run stopped by Ctrl-C
or SIGTERM gives the cores back; one killed with SIGKILL cannot, and PostgreSQL's processes
keep the other cores until it restarts (or ``taskset -p -c 0-N PID`` for each of them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from bench.processes import tree

LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Placement:
    name: str  # "own cores" or "shared cores"
    server: tuple[int, ...]  # the server's cores, and the ceiling's
    others: tuple[int, ...]  # the load generator's, the benchmark's, a local PostgreSQL's

    @property
    def shared(self) -> bool:
        return self.others == self.server

    def describe(self, database_note: str = "") -> str:
        workers = f"{len(self.server)} worker{'s' if len(self.server) > 1 else ''}"
        if self.shared:
            where = f"server ({workers}), load generator and database on cores {_list(self.server)}"
        else:
            where = (
                f"server ({workers}) and its ceiling on cores {_list(self.server)};"
                f" load generator{database_note} on cores {_list(self.others)}"
            )
        return f"{self.name}: {where}"


def placements(cores: tuple[int, ...], shared_only: bool) -> list[Placement]:
    """Own cores first (a quarter of the cores, at least one, for the rest), then shared;
    only shared on one core or when asked."""
    shared = Placement("shared cores", cores, cores)
    if shared_only or len(cores) < 2:
        return [shared]
    rest = max(1, len(cores) // 4)
    return [Placement("own cores", cores[:-rest], cores[-rest:]), shared]


def usable_cores() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Placed:
    """What was done with the database for a placement."""

    note: str  # for the report, after "load generator"
    database_on_server_cores: bool  # SQLite, or a PostgreSQL that could not be moved


@contextmanager
def placed(placement: Placement, url: str) -> Iterator[Placed]:
    """This process (and the load generators it starts) on ``placement.others``, and a
    local PostgreSQL's processes too, for the duration."""
    mine = os.sched_getaffinity(0)
    moved: dict[int, set[int]] = {}
    os.sched_setaffinity(0, placement.others)
    try:
        if not url.startswith("postgresql"):
            yield Placed("", database_on_server_cores=True)  # SQLite runs inside the server
        elif placement.shared:
            yield Placed("", database_on_server_cores=True)
        else:
            yield _move_postgres(url, set(placement.others), moved)
    finally:
        for pid, cores in moved.items():
            try:
                os.sched_setaffinity(pid, cores)
            except (ProcessLookupError, PermissionError):
                pass
        os.sched_setaffinity(0, mine)


def _move_postgres(url: str, cores: set[int], moved: dict[int, set[int]]) -> Placed:
    """A local PostgreSQL's processes onto ``cores`` (their old cores kept in ``moved``)."""
    host = make_url(url).host
    if host not in LOCAL_HOSTS and not str(host).startswith("/"):
        return Placed(" (PostgreSQL is on another machine)", database_on_server_cores=False)
    postmaster = _postmaster(url)
    if postmaster is None:
        return Placed(
            " (PostgreSQL's processes not found: left where they were)",
            database_on_server_cores=True,
        )
    try:
        for pid in tree(postmaster):
            try:
                moved[pid] = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, cores)
            except ProcessLookupError:
                moved.pop(pid, None)
    except PermissionError:
        return Placed(
            " (PostgreSQL's processes could not be moved without root or CAP_SYS_NICE:"
            " they share the server's cores)",
            database_on_server_cores=True,
        )
    return Placed(" and PostgreSQL", database_on_server_cores=False)


def _postmaster(url: str) -> int | None:
    """The local PostgreSQL server process: the parent of a backend of ours, if both are
    PostgreSQL's processes on this machine."""
    engine = create_engine(url.split("?")[0])
    try:
        with engine.connect() as connection:
            backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
            try:
                stat = Path(f"/proc/{backend}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                names = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in (backend, parent)]
            except (FileNotFoundError, ProcessLookupError):
                return None
    finally:
        engine.dispose()
    return parent if all(name.startswith("postgres") for name in names) else None


def _list(cores: tuple[int, ...]) -> str:
    return ",".join(str(core) for core in cores)
