"""Machine-wide hash slots: never more holders than slots, across threads and processes,
and a holder killed with SIGKILL gives its slot back."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from securelogin.adapters import hash_slots
from securelogin.adapters.hash_slots import MachineSlots, private_slots_directory
from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import machine_hash_concurrency
from securelogin.config import Settings


def test_threads_never_hold_more_slots_than_there_are(tmp_path: Path) -> None:
    slots = MachineSlots(tmp_path / "slots", 2)
    holding = 0
    most = 0
    guard = threading.Lock()
    start = threading.Barrier(12)

    def work() -> None:
        nonlocal holding, most
        start.wait()
        for _ in range(20):
            with slots.held():
                with guard:
                    holding += 1
                    most = max(most, holding)
                time.sleep(0.001)
                with guard:
                    holding -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2  # both slots were used, never a third


def _hold_forever(directory: str, ready: multiprocessing.synchronize.Event) -> None:
    with MachineSlots(Path(directory), 1).held():
        ready.set()
        time.sleep(3600)


def test_a_slot_held_by_another_process_waits_and_comes_back_when_it_is_killed(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_forever, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(30)
        slots = MachineSlots(tmp_path, 1)
        got = threading.Event()

        def take() -> None:
            with slots.held():
                got.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        assert not got.wait(0.3)  # the other process holds the only slot
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        assert got.wait(10)  # the kernel released the dead holder's lock
        taker.join()
    finally:
        holder.kill()
        holder.join()


def test_the_hasher_holds_a_machine_slot_while_it_hashes(tmp_path: Path) -> None:
    slots = MachineSlots(tmp_path, 1)
    hasher = Argon2Hasher(
        memory_kib=1024, time_cost=1, parallelism=1, concurrency=4, machine_slots=slots
    )
    with slots.held():  # as if another worker were hashing
        done = threading.Event()

        def hash_then_signal() -> None:
            hasher.hash("Correct4horse")
            done.set()

        worker = threading.Thread(target=hash_then_signal)
        worker.start()
        assert not done.wait(0.3)
    assert done.wait(10)
    worker.join()


def test_the_slots_folder_is_private_and_a_planted_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = private_slots_directory(tmp_path)
    assert folder == tmp_path / f"securelogin-{os.getuid()}" / "hash-slots"
    assert stat.S_IMODE(os.stat(folder.parent).st_mode) == 0o700

    folder.rmdir()
    folder.parent.rmdir()
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o700)
    folder.parent.symlink_to(elsewhere)  # someone else's folder under our name
    with pytest.raises(PermissionError):
        private_slots_directory(tmp_path)

    folder.parent.unlink()
    folder.parent.mkdir(mode=0o755)
    os.chmod(folder.parent, 0o755)  # noqa: S103 - readable by others, as the test needs
    with pytest.raises(PermissionError):
        private_slots_directory(tmp_path)


def test_a_waiter_is_woken_by_the_release_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiters would look again on their own only after an hour: only the release's own
    # announcement can wake this one.
    monkeypatch.setattr(hash_slots, "WAKE_SECONDS", 3600.0)
    slots = MachineSlots(tmp_path, 1)
    taken = threading.Event()
    got = threading.Event()

    def hold_then_release() -> None:
        with slots.held():
            taken.set()
            assert not got.wait(0.3)  # the waiter waits while the slot is held

    def wait_for_it() -> None:
        taken.wait()
        with slots.held():
            got.set()

    holder = threading.Thread(target=hold_then_release)
    waiter = threading.Thread(target=wait_for_it, daemon=True)
    holder.start()
    waiter.start()
    holder.join()
    assert got.wait(30)  # a generous bound, not a timing: without the announcement, never
    waiter.join()


def test_a_planted_announcement_fifo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "released").write_text("not a FIFO")
    with pytest.raises(PermissionError):
        MachineSlots(tmp_path, 1)

    open_to_all = tmp_path / "elsewhere"
    open_to_all.mkdir()
    os.mkfifo(open_to_all / "released", 0o600)
    os.chmod(open_to_all / "released", 0o666)  # noqa: S103 - writable by others, on purpose
    with pytest.raises(PermissionError):
        MachineSlots(open_to_all, 1)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_that_end_leave_no_files_open(tmp_path: Path) -> None:
    """A pool that lets idle threads end (anyio's, which runs the portal's pages) starts new
    ones later: the slots' open files are lent for each hold, not kept by each thread."""
    slots = MachineSlots(tmp_path, 2)
    with slots.held():  # the first set of open files, kept for the next holder
        pass
    one_set = _open_descriptors()
    both_held = threading.Barrier(2)

    def hold(together: bool) -> None:
        with slots.held():
            if together:
                both_held.wait(timeout=30)

    for together in (False, True):
        for _ in range(20):
            threads = [threading.Thread(target=hold, args=(together,)) for _ in range(2)]
            for thread in threads:
                thread.start()
                if not together:
                    thread.join()
            for thread in threads:
                thread.join()
        # one set per thread that held or waited at the same time, reused by new threads
        assert _open_descriptors() == one_set + (3 if together else 0)


def test_a_server_hashes_at_once_on_the_cores_it_may_run_on() -> None:
    """By default one hash per core the process may run on, not per core of the machine: a
    server given one core (taskset, a container's cpuset) runs one hash at a time; an
    explicit setting wins."""
    script = (
        "import os\n"
        "from securelogin.bootstrap import machine_hash_concurrency\n"
        "from securelogin.config import Settings\n"
        "before = machine_hash_concurrency(Settings())\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(before, machine_hash_concurrency(Settings()),"
        " machine_hash_concurrency(Settings(hash_concurrency=3)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(len(os.sched_getaffinity(0))), "1", "3"]


def test_without_an_affinity_to_read_every_core_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the system has no ``sched_getaffinity`` (macOS), one hash per core of the
    machine, as before: the server still starts."""
    monkeypatch.delattr(os, "sched_getaffinity")
    assert machine_hash_concurrency(Settings()) == (os.cpu_count() or 1)
