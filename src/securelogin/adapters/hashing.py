"""argon2id hashing (R2.1), with the work bounded per process.

Each argon2id hash takes ``memory_kib`` of memory and a core for tens of milliseconds.
A semaphore lets at most ``concurrency`` hashes run at once in this process (by default
one per core), and when the server runs several worker processes, machine-wide slots
(adapters/hash_slots.py) hold the whole machine to the same number: 500 simultaneous
logins queue instead of taking 500 x 19 MiB. libargon2 runs without the GIL, so hashes
on different threads use different cores.

Hashes, and verifies of the service's own kind of hash, run in a block the hasher
chooses: the block of the machine-wide slot it holds, or one of this process's own
(adapters/argon2_blocks.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from securelogin.adapters import argon2_blocks
from securelogin.adapters.argon2_blocks import Block, PrivateBlocks, SlotBlocks
from securelogin.adapters.hash_slots import MachineSlots


class Argon2Hasher:
    """PasswordHasher port over argon2-cffi."""

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        concurrency: int,
        machine_slots: MachineSlots | None = None,
        slot_blocks: SlotBlocks | None = None,
    ) -> None:
        self._argon2 = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._machine_slots = machine_slots
        self._slot_blocks = slot_blocks if machine_slots else None
        self._params = (memory_kib, time_cost, parallelism)
        self._own_blocks = PrivateBlocks(argon2_blocks.block_size(memory_kib, parallelism))
        # R2.3: unknown usernames are checked against a hash nobody has, with the same cost.
        self._dummy_hash = self.hash("securelogin dummy password, never a real one")

    def _machine_slot(self) -> AbstractContextManager[int | None]:
        return self._machine_slots.held() if self._machine_slots else nullcontext()

    @contextmanager
    def _block(self, slot: int | None) -> Iterator[Block]:
        """The held slot's block if it has one, else one of this process's own."""
        shared = self._slot_blocks.block(slot) if self._slot_blocks and slot is not None else None
        if shared is not None:
            yield shared
            return
        with self._own_blocks.borrowed() as block:
            yield block

    def hash(self, secret: str) -> str:
        salt = os.urandom(argon2_blocks.SALT_BYTES)
        with self._slots, self._machine_slot() as slot:
            with self._block(slot) as block:
                made = argon2_blocks.hash_in(block, self._params, secret.encode(), salt)
            return made if made is not None else self._argon2.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        encoded = argon2_blocks.parse(stored_hash)
        if encoded is not None and self._params != (
            encoded.memory_kib,
            encoded.time_cost,
            encoded.parallelism,
        ):
            encoded = None  # not the service's own kind: argon2-cffi verifies it
        with self._slots, self._machine_slot() as slot:
            if encoded is not None:
                with self._block(slot) as block:
                    verified = argon2_blocks.verify_in(block, encoded, secret.encode())
                if verified is not None:
                    return verified
            try:
                return self._argon2.verify(stored_hash, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def verify_dummy(self, secret: str) -> bool:
        self.verify(self._dummy_hash, secret)
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
