"""argon2id hashing (R2.1), with the work bounded per process.

Each argon2id hash takes ``memory_kib`` of memory and a core for tens of milliseconds.
A semaphore lets at most ``concurrency`` hashes run at once in this process (by default
one per core shared among the server's worker processes), so 500 simultaneous logins
queue instead of taking 500 x 19 MiB. argon2-cffi releases the GIL while hashing, so
hashes on different threads use different cores.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    """PasswordHasher port over argon2-cffi."""

    def __init__(
        self, *, memory_kib: int, time_cost: int, parallelism: int, concurrency: int
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
        # R2.3: unknown usernames are checked against a hash nobody has, with the same cost.
        self._dummy_hash = self._argon2.hash("securelogin dummy password, never a real one")

    def hash(self, secret: str) -> str:
        with self._slots:
            return self._argon2.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        with self._slots:
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
