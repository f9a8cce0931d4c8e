"""Where a verify's argon2id memory lies, and what it costs: bare verify loops, no server.

Not a target of its own: the measurement behind adapters/argon2_blocks.py. One process per
core, each looping over ``Argon2Hasher.verify`` with the service's parameters, is the
ceiling of bench/login.py. A server has more workers than slots: here twice as many
processes as cores share the machine-wide slots (adapters/hash_slots.py), as ``serve``'s
workers do, and so hash at most one per core at once. Their verifies run either

- in a block of each process's own (what each worker did before: a block per slot it held),
  so the machine's hashes move between more blocks than there are slots; or
- in the block of the slot held (adapters/argon2_blocks.py), so they run in as many blocks
  as there are slots, whichever process runs them.

The three setups run one after another, ``--rounds`` times, interleaved; each line prints
verifies per second of the whole machine.

Usage: bench/run blocks [--seconds 6] [--rounds 3] [--processes-per-core 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from securelogin.adapters.argon2_blocks import SlotBlocks, block_size
from securelogin.adapters.hash_slots import SHARED_MEMORY, MachineSlots, on_memory_filesystem
from securelogin.adapters.hashing import Argon2Hasher
from securelogin.config import Settings

PASSWORD = "Blocks4password"


def _loop(setup: str, folder: str, cores: int, start: float, seconds: float) -> int:
    settings = Settings.from_env()
    slots = MachineSlots(Path(folder), cores) if setup != "alone" else None
    size = block_size(settings.argon2_memory_kib, settings.argon2_parallelism)
    hasher = Argon2Hasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=1,
        machine_slots=slots,
        slot_blocks=SlotBlocks(Path(folder), cores, size) if setup == "slot blocks" else None,
    )
    stored = hasher.hash(PASSWORD)
    hasher.verify(stored, PASSWORD)  # its own block mapped and touched before the clock
    time.sleep(max(0.0, start - time.time()))
    done = 0
    while time.time() < start + seconds:
        if not hasher.verify(stored, PASSWORD):
            raise AssertionError("a verify in the benchmark failed")
        done += 1
    return done


def run(setup: str, processes: int, cores: int, seconds: float) -> float:
    base = SHARED_MEMORY if on_memory_filesystem(SHARED_MEMORY) else None
    with tempfile.TemporaryDirectory(prefix="securelogin-blocks-", dir=base) as folder:
        start = time.time() + 2.0  # every process started and warmed up by then
        arguments = [(setup, folder, cores, start, seconds)] * processes
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            done = sum(pool.starmap(_loop, arguments))
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes-per-core", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    many = cores * args.processes_per_core
    if not on_memory_filesystem(SHARED_MEMORY):
        print("no tmpfs at /dev/shm: the slot blocks cannot be shared here")
    setups = [
        ("alone", cores, f"{cores} processes, a block each (the ceiling)"),
        ("own blocks", many, f"{many} processes, {cores} slots, a block each"),
        ("slot blocks", many, f"{many} processes, {cores} slots, the slot's block"),
    ]
    print(f"argon2id verifies/s on {cores} cores, {args.seconds:.0f} s a line")
    for round_ in range(1, args.rounds + 1):
        figures = {setup: run(setup, n, cores, args.seconds) for setup, n, _ in setups}
        for setup, _, label in setups:
            print(f"round {round_}  {label:<48} {figures[setup]:7.1f}")
        ratio = figures["slot blocks"] / figures["own blocks"]
        print(f"round {round_}  slot blocks / own blocks: {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
