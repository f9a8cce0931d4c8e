"""glibc malloc settings for the server's worker processes, so argon2id blocks are reused.

Every argon2id hash allocates one block of ``memory_kib`` (19 MiB by default) and frees it
when done. By default glibc serves a block that large with ``mmap`` and gives it back with
``munmap``, or, once it has raised its threshold, keeps blocks in the heap only until the
free space at the heap's top passes twice that threshold, which two hashes finishing
together reach. Each block handed back must then be faulted in again, page by page, by the
next hash: 4,864 page faults and, measured here, a third more CPU than the hash itself
(bench/README.md). These settings keep the blocks of the hashes a worker may run at once
in its heap: ``mmap_threshold`` just above one block (larger allocations are still mapped
and unmapped as usual) and ``trim_threshold`` at the blocks a worker may hold at once, plus
one. The memory is not lost: it is the memory those hashes take while they run.

The service's own hashes no longer take their block from the heap (they run in a block of
the hash slot they hold, or of the process: adapters/argon2_blocks.py); these settings now
serve only the verifies of stored hashes with other parameters (before their re-hash).

They are environment settings (``GLIBC_TUNABLES``), read by glibc when a process starts:
``securelogin serve`` sets them for the workers it starts. Other C libraries ignore them.
"""

from __future__ import annotations

MIB = 1024 * 1024
MMAP_THRESHOLD_MAX = 32 * MIB  # glibc's ceiling for mmap_threshold on 64-bit systems
MARGIN = 1 * MIB  # above a block: malloc's own header, so the block itself fits below


def argon2_block_tunables(memory_kib: int, blocks: int) -> dict[str, int]:
    """The glibc tunables that keep ``blocks`` argon2id blocks of ``memory_kib`` in the heap
    (none when a block is too large for glibc to keep out of ``mmap``)."""
    block = memory_kib * 1024
    if block + MARGIN > MMAP_THRESHOLD_MAX or blocks < 1:
        return {}
    return {
        "glibc.malloc.mmap_threshold": block + MARGIN,
        "glibc.malloc.trim_threshold": (blocks + 1) * (block + MARGIN),
    }


def with_tunables(current: str, tunables: dict[str, int]) -> str:
    """``current`` (a GLIBC_TUNABLES value) with ``tunables`` added; a tunable already set
    there is the operator's choice and stays as it is."""
    parts = [part for part in current.split(":") if part]
    given = {part.split("=", 1)[0] for part in parts}
    parts += [f"{name}={value}" for name, value in tunables.items() if name not in given]
    return ":".join(parts)
