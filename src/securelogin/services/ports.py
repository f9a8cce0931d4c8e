"""The ports: what the services need from the world, declared by the services.

storage/ and adapters/ implement these Protocols. The services are tested against those
implementations themselves, on SQLite and on PostgreSQL (tests/integration), with only the
clock replaced (tests/clock.py): there are no in-memory fakes to drift from SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from securelogin.domain.accounts import NewUser, StaffMember, StaffRole, User
from securelogin.domain.audit import AuditEvent, StoredRecord
from securelogin.domain.devices import Device, DeviceKind, DeviceState
from securelogin.domain.lockout import LockoutPolicy
from securelogin.domain.login import LoginAttempt
from securelogin.domain.online_cards import OnlineCard
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
    """The attempt may be evaluated; it holds the pending failure ``failure_id`` until it
    is confirmed (wrong) or withdrawn (right).

    ``failure_id`` is None for an admission made with ``reserve=False``: one checked and
    settled in the very transaction that admitted it, which holds the subject's lock
    throughout, so no pending row is needed to keep its place. Otherwise the repository
    may write the pending row with the transaction's next statement (``reserved``: how to
    read its id once sent); ``committed`` gives the admission with the id read, once its
    transaction has committed, holding nothing of that transaction."""

    admitted_at: datetime
    reserved: int | Callable[[], int] | None = None

    @property
    def failure_id(self) -> int | None:
        return self.reserved() if callable(self.reserved) else self.reserved

    def committed(self) -> Admitted:
        return Admitted(self.admitted_at, self.failure_id)


@dataclass(frozen=True)
class Busy:
    """Other attempts being evaluated hold the last allowed places: ask again shortly."""


@dataclass(frozen=True)
class Refused:
    """The subject is locked: nothing was evaluated or counted (R3.3).

    ``newly_locked`` when this admission set the lock itself: the pending failures of a
    process that died made the threshold (the lock is then audited and told, R6.7)."""

    locked_until: datetime
    newly_locked: bool = False


class LockoutRepository(Protocol):
    """R3, decided atomically in the database."""

    def admit(
        self, subject: str, now: datetime, policy: LockoutPolicy, *, reserve: bool = True
    ) -> Admitted | Refused | Busy:
        """Refuse if locked; wait (Busy) if the attempts in flight hold the last places;
        else record a pending failure. One atomic decision under a lock on ``subject``:
        whatever the concurrency, settled plus pending failures never pass the threshold.

        ``reserve=False`` records no pending failure: for an attempt checked and settled
        (``confirm`` or ``withdraw``) before this transaction ends; anywhere else it is an
        error, since the place it was admitted to is not kept (settling it in another
        transaction raises, and so does committing before it is settled).
        """
        ...

    def confirm(
        self, subject: str, admission: Admitted, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        """The admitted attempt was wrong: settle its failure; the lock end if it locks."""
        ...

    def withdraw(self, subject: str, admission: Admitted) -> None:
        """The admitted attempt was right: remove its pending failure."""
        ...

    def hold(self, subject: str) -> None:
        """Take the subject's lock now. Transactions take locks in one order (subject,
        then devices, then the audit head), so settling transactions start with this."""
        ...

    def reset(self, subject: str) -> None:
        """R3.4: a successful login clears the run of settled failures and the lock. Pending
        failures stay: each is settled by the request that is evaluating it (the caller
        withdraws its own first)."""
        ...

    def locked_until(self, subject: str, now: datetime) -> datetime | None: ...


class UserRepository(Protocol):
    def add(self, user: NewUser) -> int:
        """Insert; raise ConflictError when the username is taken."""
        ...

    def read_ahead(self, username: str) -> None:
        """Send ``get(username)``'s read with the transaction's next statement (on
        PostgreSQL, in its round trip); ``get`` then takes its result, unless a write
        through this repository came between (then it reads again)."""
        ...

    def get(self, username: str) -> User | None: ...

    def get_by_id(self, user_id: int) -> User | None: ...

    def exists(self, username: str) -> bool: ...

    def set_password_hash(self, user_id: int, password_hash: str) -> None: ...

    def add_security_answers(self, user_id: int, answers: list[tuple[str, str]]) -> None:
        """(question, answer hash) pairs."""
        ...

    def security_answers(self, user_id: int) -> list[tuple[int, str, str]]:
        """(answer_id, question, answer hash) of the user's questions."""
        ...

    def by_email(self, email: str) -> list[User]: ...

    def lock(self, user_id: int) -> None:
        """Hold the user's row lock until the transaction ends (serialises per user)."""
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
    not_after: datetime | None = None  # a temporary credential's end (R6.3, R7.4, R5.5)


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
        not_after: datetime | None = None,
    ) -> None: ...

    def get(self, token_digest: str) -> StoredSession | None: ...

    def touch(self, session_id: int, now: datetime) -> None: ...

    def end(self, session_id: int, now: datetime) -> None: ...

    def open_sessions(self, user_id: int, platform: Platform | None) -> list[StoredSession]:
        """The user's sessions not yet ended (some may have expired), of one door or all."""
        ...

    def end_all(self, user_id: int, now: datetime) -> int: ...

    def end_made_with(self, user_id: int, factor_kinds: list[str], now: datetime) -> int:
        """End the user's sessions opened with one of these factor kinds (R5.5)."""
        ...

    def end_opened_with(self, user_id: int, credential_refs: list[str], now: datetime) -> int:
        """End the user's sessions opened with one of these credentials (devices lost or
        suspended, R5.6, R6.4)."""
        ...


class LoginAttemptRepository(Protocol):
    def add(self, attempt: LoginAttempt) -> None: ...

    def peek(self, login_id: str, now: datetime) -> LoginAttempt | None:
        """The attempt if it is open (unused, unexpired), without taking it."""
        ...

    def take_after_next(self, login_id: str, now: datetime) -> Callable[[], bool]:
        """Mark the attempt used, atomically, with the transaction's next statement and
        after it (so after a lock that statement takes); what it returns tells, called
        before the transaction ends, whether it was taken: False if unknown, used or
        expired (so of two takers, one at most gets True)."""
        ...

    def end_all(self, user_id: int, now: datetime) -> int:
        """End every open attempt of the user (its password changed); how many."""
        ...


class StaffRepository(Protocol):
    def add(self, *, name: str, role: StaffRole, token_digest: str, now: datetime) -> int: ...

    def by_token(self, token_digest: str) -> StaffMember | None:
        """The holder of a token that is not revoked."""
        ...

    def revoke(self, *, name: str, role: StaffRole | None, now: datetime) -> list[StaffMember]:
        """Revoke every token of ``name`` not yet revoked (of ``role`` only, when given);
        the members whose tokens this revoked, oldest first."""
        ...


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> None:
        """Append after the current head, atomically with the transaction: the record
        takes its place in the chain when the unit of work commits, and not otherwise."""
        ...

    def records(self, subject: str | None = None) -> Iterator[StoredRecord]:
        """Oldest first; all of them, or those about one subject. A stored row that cannot
        be read back as an event comes as an ``UnreadableRecord`` in its place."""
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

    def read_ahead_for_user(self, user_id: int) -> None:
        """``read_ahead`` for ``for_user(user_id)``."""
        ...

    def serial_exists(self, serial: str) -> bool: ...

    def read_ahead(self, device_id: str) -> None:
        """Send ``with_secrets(device_id)``'s read with the transaction's next statement
        (on PostgreSQL, in its round trip); ``with_secrets`` then takes its result, unless
        a write through this repository came between (then it reads again)."""
        ...

    def with_secrets(self, device_id: str) -> tuple[Device, SealedSecrets] | None:
        """The device and its sealed secrets, read together (one statement at step two)."""
        ...

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

    def all_secrets(self) -> Iterator[tuple[str, SealedSecrets]]:
        """Every device's id and sealed secrets, whatever its state (a key rotation)."""
        ...

    def reseal(self, device_id: str, sealed: SealedSecrets) -> None: ...


@dataclass(frozen=True)
class StoredPasscode:
    passcode_id: str
    user_id: int
    code_hash: str
    issued_at: datetime
    issued_by: str
    ended_at: datetime | None


class PasscodeRepository(Protocol):
    def add(self, passcode: StoredPasscode) -> None: ...

    def latest(self, user_id: int) -> StoredPasscode | None:
        """The user's most recently issued passcode, ended or not."""
        ...

    def end_all(self, user_id: int, at: datetime, reason: str) -> int: ...


class OnlineCardRepository(Protocol):
    def add(self, card_id: str, user_id: int, values_sealed: str, issued_at: datetime) -> None: ...

    def get(self, card_id: str) -> OnlineCard | None: ...

    def current(self, user_id: int) -> OnlineCard | None:
        """The user's card that has not ended (at most one), whatever its expiry."""
        ...

    def values_sealed(self, card_id: str) -> str: ...

    def set_activation_challenge(self, card_id: str, challenge: str | None) -> None: ...

    def take_activation_challenge(self, card_id: str) -> str | None: ...

    def activate(self, card_id: str, at: datetime, expires_at: datetime) -> bool:
        """Guarded: only a card not yet activated and not ended."""
        ...

    def end_all(self, user_id: int, at: datetime, reason: str) -> int: ...

    def all_secrets(self) -> Iterator[tuple[str, str]]:
        """Every card's id and sealed values, ended ones too (a key rotation)."""
        ...

    def reseal(self, card_id: str, values_sealed: str) -> None: ...


@dataclass(frozen=True)
class StoredVerification:
    verification_id: str
    staff_id: int
    user_id: int
    answer_id: int
    by_email: bool
    started_at: datetime
    outcome: str | None
    answered_at: datetime | None


class VerificationRepository(Protocol):
    def add(self, verification: StoredVerification) -> None: ...

    def get(self, verification_id: str) -> StoredVerification | None: ...

    def settle(self, verification_id: str, outcome: str, at: datetime) -> bool:
        """Guarded: only an open verification is answered, once."""
        ...

    def failures_since(self, user_id: int, since: datetime) -> list[datetime]: ...

    def newest_unanswered(self, user_id: int, since: datetime) -> StoredVerification | None:
        """The user's newest verification started at or after ``since`` that is unanswered
        (expired or not) and that no answer of a verification of the user's came after."""
        ...


class ResetCodeRepository(Protocol):
    def add(
        self,
        code_id: str,
        user_id: int,
        code_hash: str,
        issued_at: datetime,
        expires_at: datetime,
        issued_by: str,
    ) -> None: ...

    def newest_open(self, user_id: int, now: datetime) -> tuple[str, str] | None:
        """(code_id, code_hash) of the user's newest code neither used, ended nor expired:
        the only one that can work (a new code ends the earlier ones)."""
        ...

    def use(self, code_id: str, at: datetime) -> bool:
        """Guarded: a code is used once, and never once it has ended or expired."""
        ...

    def end_open(self, user_id: int, at: datetime) -> int:
        """End every code of the user not yet used or ended; how many."""
        ...


@dataclass(frozen=True)
class OutboxMessage:
    message_id: int
    user_id: int
    to_address: str
    subject: str
    body: str
    attempts: int
    refusals: int = 0  # of the attempts, those the server refused for good (5xx)


class Outbox(Protocol):
    def add(
        self, user_id: int, to_address: str, subject: str, body: str, now: datetime
    ) -> None: ...

    def pending(self, limit: int) -> list[OutboxMessage]:
        """Neither sent nor given up: those never tried first, then by fewest attempts,
        oldest first among equals (a message that keeps failing never holds back a new one)."""
        ...

    def mark_sent(self, message_id: int, at: datetime) -> None: ...

    def mark_failed(self, message_id: int, error: str, *, refused: bool) -> None:
        """One more attempt failed (``refused``: the server refused the message for good)."""
        ...

    def give_up(self, message_id: int, at: datetime, error: str) -> bool:
        """Guarded: a message still pending is given up once; it is never returned again."""
        ...


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

    @property
    def passcodes(self) -> PasscodeRepository: ...

    @property
    def online_cards(self) -> OnlineCardRepository: ...

    @property
    def verifications(self) -> VerificationRepository: ...

    @property
    def reset_codes(self) -> ResetCodeRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc: object) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """``read_only``: a unit of work that reads one consistent snapshot and never
        writes (``commit`` refuses); it holds up no writer, however long it reads."""
        ...
