"""The ports: what the services need from the world, declared by the services.

storage/ and adapters/ implement these Protocols; tests use in-memory fakes of the same
Protocols (tests/fakes.py), and the contract suite proves the fakes behave like SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from securelogin.domain.accounts import NewUser, StaffMember, StaffRole, User
from securelogin.domain.audit import AuditEvent, AuditRecord
from securelogin.domain.devices import Device, DeviceKind, DeviceState
from securelogin.domain.lockout import LockoutPolicy
from securelogin.domain.login import LoginAttempt
from securelogin.domain.sessions import Access, Platform


class Clock(Protocol):
    """The application's clock (R10): aware UTC datetimes."""

    def now(self) -> datetime: ...


class RandomSource(Protocol):
    """Cryptographically secure randomness."""

    def token_bytes(self, n: int) -> bytes: ...

    def below(self, n: int) -> int: ...


class PasswordHasher(Protocol):
    """Slow hashing of passwords and security answers (argon2id in production)."""

    def hash(self, secret: str) -> str: ...

    def verify(self, stored_hash: str, secret: str) -> bool: ...

    def verify_dummy(self, secret: str) -> bool:
        """Spend the time of a real verify against a hash nobody has; always False."""
        ...

    def needs_rehash(self, stored_hash: str) -> bool: ...


@dataclass(frozen=True)
class Admitted:
    """The attempt may be evaluated; it is already counted as failure ``failure_id``.

    ``locks_until`` is set when this very failure completed the lock (R3.2).
    """

    failure_id: int
    locks_until: datetime | None = None


@dataclass(frozen=True)
class Refused:
    """The subject is locked: nothing was evaluated or counted (R3.3)."""

    locked_until: datetime


class LockoutRepository(Protocol):
    """R3, decided atomically in the database."""

    def admit(self, subject: str, now: datetime, policy: LockoutPolicy) -> Admitted | Refused:
        """Refuse if locked; else count a failure now and lock when it is the last allowed.

        One atomic decision under a lock on ``subject``: whatever the concurrency, no more
        than ``policy.threshold`` attempts are admitted before the lock.
        """
        ...

    def withdraw(self, subject: str, failure_id: int) -> None:
        """The admitted attempt was right after all: remove its count and any lock it set."""
        ...

    def reset(self, subject: str) -> None:
        """R3.4: a successful login clears the run of failures."""
        ...

    def locked_until(self, subject: str, now: datetime) -> datetime | None: ...


class UserRepository(Protocol):
    def add(self, user: NewUser) -> int:
        """Insert; raise ConflictError when the username is taken."""
        ...

    def get(self, username: str) -> User | None: ...

    def get_by_id(self, user_id: int) -> User | None: ...

    def exists(self, username: str) -> bool: ...

    def set_password_hash(self, user_id: int, password_hash: str) -> None: ...

    def add_security_answers(self, user_id: int, answers: list[tuple[str, str]]) -> None:
        """(question, answer hash) pairs."""
        ...


@dataclass(frozen=True)
class StoredSession:
    """A session as stored (the token itself is never stored, only its digest)."""

    session_id: int
    token_digest: str
    user_id: int
    username: str
    platform: Platform
    access: Access
    factor_kind: str | None
    credential_ref: str | None  # which temporary credential made it, if any (R6.6)
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None


class SessionRepository(Protocol):
    def add(
        self,
        *,
        token_digest: str,
        user_id: int,
        platform: Platform,
        access: Access,
        factor_kind: str | None,
        credential_ref: str | None,
        now: datetime,
    ) -> int: ...

    def get(self, token_digest: str) -> StoredSession | None: ...

    def touch(self, session_id: int, now: datetime) -> None: ...

    def end(self, session_id: int, now: datetime) -> None: ...

    def open_sessions(self, user_id: int, platform: Platform | None) -> list[StoredSession]:
        """The user's sessions not yet ended (some may have expired), of one door or all."""
        ...

    def end_all(self, user_id: int, now: datetime) -> int: ...


class LoginAttemptRepository(Protocol):
    def add(self, attempt: LoginAttempt) -> None: ...

    def peek(self, login_id: str, now: datetime) -> LoginAttempt | None:
        """The attempt if it is open (unused, unexpired), without taking it."""
        ...

    def take(self, login_id: str, now: datetime) -> LoginAttempt | None:
        """Mark the attempt used and return it, atomically; None if unknown, used or expired."""
        ...


class StaffRepository(Protocol):
    def add(self, *, name: str, role: StaffRole, token_digest: str, now: datetime) -> int: ...

    def by_token(self, token_digest: str) -> StaffMember | None: ...


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> AuditRecord:
        """Append after the current head, atomically with the transaction."""
        ...

    def records(self, subject: str | None = None) -> Iterator[AuditRecord]:
        """Oldest first; all of them, or those about one subject."""
        ...

    def head(self) -> tuple[int, str]: ...


class SecretBox(Protocol):
    """Encryption of secrets at rest (R5.7); ``context`` binds a value to its row."""

    def seal(self, plaintext: bytes, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> bytes: ...

    def is_current(self, sealed: str) -> bool: ...


@dataclass(frozen=True)
class SealedSecrets:
    """A device's secrets as stored: sealed, never plain."""

    secret: str
    pin: str | None = None


@dataclass(frozen=True)
class NewDevice:
    device_id: str
    user_id: int
    kind: DeviceKind
    serial: str
    state: DeviceState
    secret_sealed: str
    pin_sealed: str | None
    country: str | None
    created_at: datetime
    mailed_at: datetime | None
    expected_arrival: datetime | None
    ordered_by: str


class DeviceRepository(Protocol):
    def add(self, device: NewDevice) -> None: ...

    def get(self, device_id: str) -> Device | None: ...

    def for_user(self, user_id: int) -> list[Device]: ...

    def serial_exists(self, serial: str) -> bool: ...

    def secrets(self, device_id: str) -> SealedSecrets: ...

    def change_state(
        self, device_id: str, to: DeviceState, at: datetime, *, allowed_from: Iterable[DeviceState]
    ) -> bool:
        """Guarded transition: True only for the one caller that made it."""
        ...

    def claim_totp_step(self, device_id: str, step: int) -> bool:
        """Record ``step`` as used if it is newer than any used before; True if this call did."""
        ...

    def set_activation_challenge(self, device_id: str, challenge: str | None) -> None: ...

    def take_activation_challenge(self, device_id: str) -> str | None:
        """Return and clear the latest activation challenge, atomically (one answer each)."""
        ...

    def all_secrets(self) -> Iterator[tuple[str, SealedSecrets]]: ...

    def reseal(self, device_id: str, sealed: SealedSecrets) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Rolled back on exit unless committed."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def lockout(self) -> LockoutRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def logins(self) -> LoginAttemptRepository: ...

    @property
    def staff(self) -> StaffRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def devices(self) -> DeviceRepository: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc: object) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
