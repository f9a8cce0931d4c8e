"""argon2id hashes in memory the server chooses: one block per machine-wide hash slot.

libargon2 takes a hash's memory (19 MiB by default) from the allocator named in the hash's
context, and argon2-cffi names none: each verify takes its block from the process's heap
(adapters/malloc.py keeps the blocks there). With the worker processes sharing the
machine-wide slots (adapters/hash_slots.py), that made a block per slot in every worker:
two workers on two cores kept four blocks, their hashes moved from one to another, and a
verify in the server cost more than in a bare loop, whose two processes keep one block each
(bench/README.md). Here a verify that holds slot ``i`` runs in block ``i``: a file beside
the slots, on a memory filesystem (tmpfs: never written to disk), that every worker maps.
The machine's hashes run in as many blocks as there are slots, whichever worker runs them.

Without such a folder (one worker, or slots on disk), a verify runs in a block of the
process's own, mapped once and reused; the bare loop of ``bench/ceiling.py`` runs there too.

New hashes are made here too (argon2id, version 19, a 16-byte salt and a 32-byte tag,
encoded as argon2-cffi encodes them). Only the service's own kind of hash is verified
here: argon2id, version 19, the service's memory, time and lanes, in the canonical
encoding. Anything else (older parameters that ``needs_rehash`` will replace, another
variant) is verified by argon2-cffi as before, in memory of the heap.

What a block holds is argon2id's working memory of the hash that last ran in it: derived
from a password and its salt, so a secret. libargon2 wipes it when the hash ends
(``clear_internal_memory`` before it hands the block back); a worker killed during a hash
leaves that hash's memory until the slot's next hash writes over it. The files are mode
0600 in the slots' folder, 0700 and this user's (hash_slots.py refuses anything else): the
same readers as the workers' own memory (this user, who may trace them, and root).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import mmap
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _argon2_cffi_bindings import ffi, lib

from securelogin.adapters.hash_slots import check_private, on_memory_filesystem

BLOCK_BYTES = 1024  # one argon2 memory block
TAG_BYTES = 32  # the hashes' tag, as argon2-cffi's default
SALT_BYTES = 16
VERSION = 0x13  # argon2 version 19, the only one new hashes have

_ENCODED = re.compile(
    r"\$argon2id\$v=19\$m=([1-9][0-9]{0,9}),t=([1-9][0-9]{0,9}),p=([1-9][0-9]{0,9})"
    r"\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{6,})"
)


@dataclass(frozen=True)
class Encoded:
    """A stored argon2id hash, taken apart."""

    memory_kib: int
    time_cost: int
    parallelism: int
    salt: bytes
    tag: bytes


def parse(encoded: str) -> Encoded | None:
    """``$argon2id$v=19$m=..,t=..,p=..$salt$tag`` in its canonical form (unpadded base64
    that decodes back to the same text), or None for anything else."""
    match = _ENCODED.fullmatch(encoded)
    if match is None:
        return None
    memory, time_cost, lanes, salt_text, tag_text = match.groups()
    salt, tag = _unpadded_b64(salt_text), _unpadded_b64(tag_text)
    if salt is None or tag is None:
        return None
    return Encoded(int(memory), int(time_cost), int(lanes), salt, tag)


def _unpadded_b64(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if _b64(raw) != text:
        return None  # stray bits in the last character: not the canonical encoding
    return raw


def block_size(memory_kib: int, parallelism: int) -> int:
    """Bytes libargon2 asks for: memory rounded down to whole segments (4 per lane)."""
    blocks = max(memory_kib, 8 * parallelism)
    segment = 4 * parallelism
    return (blocks // segment) * segment * BLOCK_BYTES


class Block:
    """A mapping of exactly ``size`` bytes that one hash at a time runs in."""

    def __init__(self, mapping: mmap.mmap, size: int) -> None:
        self.size = size
        self._mapping = mapping  # kept alive as long as the pointer into it
        self.address = ffi.cast("uint8_t *", ffi.from_buffer(mapping))

    @classmethod
    def private(cls, size: int) -> Block:
        """Anonymous memory of this process alone (zero until first used)."""
        return cls(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS), size)

    @classmethod
    def shared(cls, path: Path, size: int) -> Block | None:
        """The file ``path``, made with all its pages reserved if missing, mapped shared.
        None if the filesystem has no room for it (then this slot uses a private block)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        descriptor = os.open(path, flags, 0o600)
        try:
            check_private(path, stat.S_ISREG, descriptor)
            try:
                # Reserved now: a tmpfs that fills up later refuses here, instead of
                # killing a worker with SIGBUS in the middle of a hash.
                os.posix_fallocate(descriptor, 0, size)
            except OSError:
                return None
            return cls(mmap.mmap(descriptor, size, flags=mmap.MAP_SHARED), size)
        finally:
            os.close(descriptor)


class SlotBlocks:
    """Block ``i`` of the ``count`` machine-wide slots in ``directory``, for whoever holds
    slot ``i``. All are mapped when the worker starts, so a planted or foreign block file
    stops the worker there, not a login; a slot whose block could not be reserved falls
    back to a private block (None here)."""

    def __init__(self, directory: Path, count: int, size: int) -> None:
        self._blocks = [
            Block.shared(directory / f"block-{slot}-{size // BLOCK_BYTES}k", size)
            for slot in range(count)
        ]

    @classmethod
    def beside(cls, directory: Path, count: int, size: int) -> SlotBlocks | None:
        """Blocks in the slots' folder, if it lies on a memory filesystem; else None."""
        return cls(directory, count, size) if on_memory_filesystem(directory) else None

    def block(self, slot: int) -> Block | None:
        return self._blocks[slot] if 0 <= slot < len(self._blocks) else None


class PrivateBlocks:
    """Private blocks of one size, each used by one hash at a time and kept for the next."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._spares: list[Block] = []  # blocks no hash is using (pop, append: atomic)

    @contextmanager
    def borrowed(self) -> Iterator[Block]:
        try:
            block = self._spares.pop()
        except IndexError:
            block = Block.private(self.size)
        try:
            yield block
        finally:
            self._spares.append(block)


# libargon2 asks for the hash's memory and gives it back through these two callbacks, on
# the thread that called argon2_ctx; that thread names the block it holds beforehand.
_running = threading.local()
_OK: int = lib.ARGON2_OK
_NO_MEMORY: int = lib.ARGON2_MEMORY_ALLOCATION_ERROR


def _allocate(memory: Any, size: int) -> int:
    memory[0] = ffi.NULL  # libargon2 reads a NULL as "no memory": the hash fails cleanly
    block: Block | None = getattr(_running, "block", None)
    if block is None or size != block.size:
        return _NO_MEMORY
    memory[0] = block.address
    return _OK


def _give_back(memory: Any, size: int) -> None:
    """Nothing to free: the block stays for the next hash (libargon2 has wiped it)."""


_ALLOCATE = ffi.callback("int(uint8_t **, size_t)", _allocate, error=_NO_MEMORY)
_GIVE_BACK = ffi.callback("void(uint8_t *, size_t)", _give_back)


def verify_in(block: Block, encoded: Encoded, secret: bytes) -> bool | None:
    """Whether ``secret`` gives ``encoded``'s tag, hashed in ``block``; None if libargon2
    refused to run the hash (the caller then asks argon2-cffi, which will say why)."""
    tag = _tag_in(
        block,
        encoded.memory_kib,
        encoded.time_cost,
        encoded.parallelism,
        encoded.salt,
        secret,
        len(encoded.tag),
    )
    return None if tag is None else hmac.compare_digest(tag, encoded.tag)


def hash_in(block: Block, params: tuple[int, int, int], secret: bytes, salt: bytes) -> str | None:
    """``secret`` hashed in ``block`` with ``params`` (memory KiB, time, lanes) and
    ``salt``, encoded as argon2-cffi encodes its hashes (a 32-byte tag); None if
    libargon2 refused."""
    memory_kib, time_cost, parallelism = params
    tag = _tag_in(block, memory_kib, time_cost, parallelism, salt, secret, TAG_BYTES)
    if tag is None:
        return None
    return f"$argon2id$v=19$m={memory_kib},t={time_cost},p={parallelism}${_b64(salt)}${_b64(tag)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _tag_in(
    block: Block,
    memory_kib: int,
    time_cost: int,
    parallelism: int,
    salt: bytes,
    secret: bytes,
    tag_length: int,
) -> bytes | None:
    tag = ffi.new("uint8_t[]", tag_length)
    password = ffi.new("uint8_t[]", secret)
    salt_copy = ffi.new("uint8_t[]", salt)
    context = ffi.new(
        "argon2_context *",
        {
            "out": tag,
            "outlen": tag_length,
            "pwd": password,
            "pwdlen": len(secret),
            "salt": salt_copy,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": time_cost,
            "m_cost": memory_kib,
            "lanes": parallelism,
            "threads": parallelism,
            "version": VERSION,
            "allocate_cbk": _ALLOCATE,
            "free_cbk": _GIVE_BACK,
            "flags": lib.ARGON2_FLAG_CLEAR_PASSWORD,  # libargon2's copy, wiped once read
        },
    )
    _running.block = block
    try:
        result = lib.argon2_ctx(context, lib.Argon2_id)  # releases the GIL while it hashes
    finally:
        _running.block = None
    if result != _OK:
        return None
    return bytes(ffi.buffer(tag, tag_length))
