"""What every use case receives: its ports and policies, wired once by bootstrap."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from securelogin.domain.lockout import LockoutPolicy
from securelogin.domain.passwords import PasswordPolicy
from securelogin.domain.sessions import SessionPolicy
from securelogin.services.ports import (
    Clock,
    PasswordHasher,
    RandomSource,
    SecretBox,
    UnitOfWorkFactory,
)


class MissingSecretBox:
    """Stands in when no secret key is configured: any use of a secret is a loud error."""

    def seal(self, plaintext: bytes, context: str) -> str:
        raise RuntimeError("no secret key is configured (SECURELOGIN_SECRET_KEY)")

    def open(self, sealed: str, context: str) -> bytes:
        raise RuntimeError("no secret key is configured (SECURELOGIN_SECRET_KEY)")

    def is_current(self, sealed: str) -> bool:
        return False


@dataclass(frozen=True)
class Policies:
    """The configurable numbers of the rules."""

    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)


@dataclass(frozen=True)
class Context:
    """The dependencies of the services."""

    uow: UnitOfWorkFactory
    clock: Clock
    random: RandomSource
    hasher: PasswordHasher
    policies: Policies = field(default_factory=Policies)
    box: SecretBox = field(default_factory=MissingSecretBox)
    issuer: str = "securelogin"  # shown in authenticator apps (otpauth:// issuer)
    pause: Callable[[float], None] = time.sleep  # waiting for attempts in flight (R3.5)


@dataclass(frozen=True)
class Caller:
    """Who is asking, for the audit log (R9.1)."""

    actor: str = "anonymous"
    source: str | None = None
