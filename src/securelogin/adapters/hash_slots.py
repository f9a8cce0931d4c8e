"""Machine-wide slots for argon2id hashes, shared by the server's worker processes.

Each worker bounds its own hashes with a semaphore, but a worker cannot know what the others
are doing: with one semaphore of "cores / workers" slots each, a worker that the kernel gave
most of the connections leaves the other cores idle; with "cores" slots each, the machine
could run workers x cores hashes at once (19 MiB each). These slots bound the whole machine
instead: ``count`` lock files in a private directory; a hash holds an exclusive ``flock`` on
one of them. The kernel releases a lock when its holder dies, so a killed worker never
leaks a slot (a POSIX semaphore would).

Waiting is not polling: a waiter registers (a shared ``flock`` on ``waiting.lock``) and
sleeps in ``select`` on a FIFO in the same directory; a holder that lets go of its slot
looks whether anyone is registered (an exclusive ``flock`` it cannot get) and, if so,
writes a byte to the FIFO. A waiter registers before its last look at the slots, so a slot
let go after that look is always announced. A slot freed by a holder that died is not
announced: waiters also look again every ``WAKE_SECONDS`` on their own, so they never need
the byte to be right, only to be quick. (Looking every millisecond instead cost about half
a millisecond of CPU per login under load, and a slot could stay idle for up to that
millisecond after it was freed: bench/README.md.)

A ``flock`` belongs to an open file, so two threads of one process exclude each other only
through files of their own: each holder or waiter borrows a set of open files (one per slot
and one of the waiters' lock) that no other thread uses meanwhile, and gives it back to the
process's spares when done. A process keeps as many sets as it ever had holders and waiters
at once (the hasher's semaphore bounds them to its concurrency); a thread that ends takes
none with it. (Sets kept per thread were left open when the thread ended: 3 descriptors for
every thread of a pool that idles its threads away, such as the one the portal's pages run
on, until the process could open no more files.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import re
import select
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})  # pages never written to a disk
WAKE_SECONDS = 0.05  # waiters look again by themselves this often (a holder that died)


SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 - a tmpfs; the folder below is checked private


def private_slots_directory(base: Path | None = None) -> Path:
    """``<base>/securelogin-<uid>/hash-slots``: shared by every securelogin server this user
    runs on this machine (one bound for the machine's cores), private to the user. Refused
    if the parent is not a directory of this user's, mode 0700 (not a planted symlink).

    ``base`` is by default /dev/shm when it is a memory filesystem (the slots' argon2id
    blocks can then live beside them: adapters/argon2_blocks.py), else the temporary folder."""
    if base is None:
        memory = on_memory_filesystem(SHARED_MEMORY) and os.access(SHARED_MEMORY, os.W_OK)
        base = SHARED_MEMORY if memory else Path(tempfile.gettempdir())
    parent = base / f"securelogin-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    check_private(parent, stat.S_ISDIR)
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
        self._waiting_path = str(directory / "waiting.lock")
        self._announcements = _open_fifo(directory / "released")
        self._spares: list[_Files] = []  # sets no thread is using (pop, append: atomic)

    @contextmanager
    def held(self) -> Iterator[int]:
        """Hold a slot until the block ends; its number (0 to count - 1) is given."""
        files = self._borrow()
        try:
            descriptor = self._acquire(files)
            try:
                yield files.slots.index(descriptor)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
                self._announce(files)
        finally:
            self._spares.append(files)

    def _borrow(self) -> _Files:
        """A set of open files for this thread alone until it gives the set back."""
        try:
            return self._spares.pop()
        except IndexError:
            return _Files(self._paths, self._waiting_path)

    def _acquire(self, files: _Files) -> int:
        slots, waiting = files.slots, files.waiting
        first = random.randrange(len(slots))  # noqa: S311 - spreading, not a secret
        registered = False
        try:
            while True:
                for i in range(len(slots)):
                    descriptor = slots[(first + i) % len(slots)]
                    try:
                        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    return descriptor
                if registered:
                    self._wait_for_a_release()
                else:  # registered before looking again: any release from now is announced
                    fcntl.flock(waiting, fcntl.LOCK_SH)
                    registered = True
        finally:
            if registered:
                fcntl.flock(waiting, fcntl.LOCK_UN)

    def _wait_for_a_release(self) -> None:
        readable, _, _ = select.select([self._announcements], [], [], WAKE_SECONDS)
        if readable:
            try:
                os.read(self._announcements, 1)  # one release, one waiter woken for it
            except BlockingIOError:
                pass  # another waiter took the announcement; look at the slots anyway

    def _announce(self, files: _Files) -> None:
        """Tell the waiters a slot is free, if there are any (one of them holds the
        waiters' lock shared, so it cannot be taken exclusively)."""
        waiting = files.waiting
        try:
            fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                os.write(self._announcements, b"\0")
            except BlockingIOError:
                pass  # the FIFO is full of announcements: the waiters will wake anyway
            return
        fcntl.flock(waiting, fcntl.LOCK_UN)


class _Files:
    """Open files of each slot and of the waiters' lock, for one thread at a time."""

    def __init__(self, slot_paths: list[str], waiting_path: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        opened: list[int] = []
        try:
            for path in [*slot_paths, waiting_path]:
                opened.append(os.open(path, flags, 0o600))
        except BaseException:  # e.g. out of descriptors: none of them left open
            for descriptor in opened:
                os.close(descriptor)
            raise
        *self.slots, self.waiting = opened


def _open_fifo(path: Path) -> int:
    """The directory's FIFO of announcements, made if missing, opened for reading and
    writing without blocking (so it always has a writer, and never blocks us)."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass
    descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        check_private(path, stat.S_ISFIFO, descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def check_private(
    path: Path, is_kind: Callable[[int], bool], descriptor: int | None = None
) -> None:
    info = os.fstat(descriptor) if descriptor is not None else os.lstat(path)
    if (
        not is_kind(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise PermissionError(
            errno.EPERM, f"{path} is not private to this user (kind, owner or mode)"
        )


def on_memory_filesystem(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Whether ``path`` lies on tmpfs or ramfs (its pages are never written to a disk),
    by the deepest mount above it in ``mountinfo``; False if that cannot be told."""
    try:
        target = os.path.realpath(path)
        with open(mountinfo, encoding="utf-8") as lines:
            mounts = [_mount_point_and_type(line) for line in lines]
    except (OSError, ValueError, IndexError):
        return False
    below = [
        (point, kind)
        for point, kind in mounts
        if target == point or target.startswith(point.rstrip("/") + "/")
    ]
    if not below:
        return False
    _, kind = max(reversed(below), key=lambda mount: len(mount[0]))  # the top one of a point
    return kind in MEMORY_FILESYSTEMS


def _mount_point_and_type(line: str) -> tuple[str, str]:
    fields = line.split()
    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
    return point, fields[fields.index("-") + 1]
