"""Machine-wide slots for argon2id hashes, shared by the server's worker processes.

Each worker bounds its own hashes with a semaphore, but a worker cannot know what the others
are doing: with one semaphore of "cores / workers" slots each, a worker that the kernel gave
most of the connections leaves the other cores idle; with "cores" slots each, the machine
could run workers x cores hashes at once (19 MiB each). These slots bound the whole machine
instead: ``count`` lock files in a private directory; a hash holds an exclusive ``flock`` on
one of them. The kernel releases a lock when its holder dies, so a killed worker never
leaks a slot (a POSIX semaphore would).
"""

from __future__ import annotations

import fcntl
import os
import random
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.001  # while every slot is taken; a hash takes tens of milliseconds


def private_slots_directory() -> Path:
    """``<tmp>/securelogin-<uid>/hash-slots``: shared by every securelogin server this user
    runs on this machine (one bound for the machine's cores), private to the user. Refused
    if the parent is not a directory of this user's, mode 0700 (not a planted symlink)."""
    parent = Path(tempfile.gettempdir()) / f"securelogin-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(parent)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise PermissionError(f"{parent} is not a private directory of this user")
    directory = parent / "hash-slots"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class MachineSlots:
    """At most ``count`` holders at once among all processes that use ``directory``."""

    def __init__(self, directory: Path, count: int) -> None:
        if count < 1:
            raise ValueError("at least one slot")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._paths = [str(directory / f"slot-{i}.lock") for i in range(count)]

    @contextmanager
    def held(self) -> Iterator[None]:
        descriptor = self._acquire()
        try:
            yield
        finally:
            os.close(descriptor)  # closing the descriptor releases its lock

    def _acquire(self) -> int:
        first = random.randrange(len(self._paths))  # noqa: S311 - spreading, not a secret
        while True:
            for i in range(len(self._paths)):
                path = self._paths[(first + i) % len(self._paths)]
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(descriptor)
                    continue
                return descriptor
            time.sleep(POLL_SECONDS)
