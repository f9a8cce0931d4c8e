"""argon2id hashing (R2.1), with the work bounded per process.

Each argon2id hash takes ``memory_kib`` of memory and a core for tens of milliseconds.
A semaphore lets at most ``concurrency`` hashes run at once in this process (by default
one per core), and when the server runs several worker processes, machine-wide slots
(adapters/hash_slots.py) hold the whole machine to the same number: 500 simultaneous
logins queue instead of taking 500 x 19 MiB. argon2-cffi releases the GIL while hashing,
so hashes on different threads use different cores.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
        # R2.3: unknown usernames are checked against a hash nobody has, with the same cost.
        self._dummy_hash = self._argon2.hash("securelogin dummy password, never a real one")

    def _machine_slot(self) -> AbstractContextManager[None]:
        return self._machine_slots.held() if self._machine_slots else nullcontext()

    def hash(self, secret: str) -> str:
        with self._slots, self._machine_slot():
            return self._argon2.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        with self._slots, self._machine_slot():
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
