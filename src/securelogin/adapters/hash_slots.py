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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.001  # while every slot is taken; a hash takes tens of milliseconds


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
