"""The argon2id ceiling: verifies per second of a bare loop, one process per core.

This is the most logins per second the machine could possibly answer with the service's
own hashing parameters: every password login costs exactly one argon2id verify. The loop
verifies through the service's own hasher (``Argon2Hasher``, without the machine-wide
slots), so each process runs its verifies in one block of its own, as the fastest case of
the service does (adapters/argon2_blocks.py).
"""

from __future__ import annotations

import multiprocessing
import os
import time

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.config import Settings

PASSWORD = "Ceiling4password"


def _hasher(settings: Settings) -> Argon2Hasher:
    return Argon2Hasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=1,
    )


def _loop(seconds: float) -> int:
    hasher = _hasher(Settings.from_env())
    stored = hasher.hash(PASSWORD)
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if not hasher.verify(stored, PASSWORD):
            raise AssertionError("the ceiling's own hash did not verify")
        done += 1
    return done


def verifies_per_second(
    seconds: float = 5.0, processes: int | None = None, cores: tuple[int, ...] | None = None
) -> float:
    """Verifies per second with ``processes`` looping at once, on ``cores`` when given
    (default: one process per core, of ``cores`` or of the machine)."""
    count = processes or (len(cores) if cores else os.cpu_count()) or 1
    pin = (os.sched_setaffinity, (0, set(cores))) if cores else (None, ())
    with multiprocessing.get_context("spawn").Pool(count, *pin) as pool:
        pool.map(_loop, [0.3] * count)  # warm up: import, first allocation
        started = time.perf_counter()
        done = sum(pool.map(_loop, [seconds] * count))
        elapsed = time.perf_counter() - started
    return done / elapsed


if __name__ == "__main__":
    settings = Settings.from_env()
    print(
        f"argon2id m={settings.argon2_memory_kib} KiB t={settings.argon2_time_cost} "
        f"p={settings.argon2_parallelism}: {verifies_per_second():.1f} verifies/s "
        f"on {os.cpu_count()} cores"
    )
