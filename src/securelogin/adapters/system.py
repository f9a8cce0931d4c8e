"""The real clock and randomness."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


class SystemClock:
    """R10: the application's clock, in UTC. libfaketime moves it in end-to-end tests."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SystemRandom:
    """Randomness from the operating system's CSPRNG."""

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def below(self, n: int) -> int:
        return secrets.randbelow(n)
