"""The composition root: Settings in, a wired ``Context`` out. Nothing connects at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.adapters.system import SystemClock, SystemRandom
from securelogin.config import Settings
from securelogin.domain.lockout import LockoutPolicy
from securelogin.domain.passwords import PasswordPolicy
from securelogin.domain.sessions import SessionPolicy
from securelogin.services.context import Context, Policies
from securelogin.services.ports import Clock, PasswordHasher
from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.storage.unit_of_work import unit_of_work_factory


@dataclass(frozen=True)
class Application:
    """What an edge needs: the services' context and a way to check the database."""

    context: Context
    engine: Engine

    def database_is_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - whatever the failure, the answer is "no"
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def policies_from(settings: Settings) -> Policies:
    return Policies(
        lockout=LockoutPolicy(
            settings.lockout_threshold, settings.lockout_window, settings.lockout_duration
        ),
        password=PasswordPolicy(settings.password_min_length, settings.password_max_length),
        sessions=SessionPolicy(
            portal_idle=timedelta(minutes=settings.portal_idle_minutes),
            portal_absolute=timedelta(hours=settings.portal_absolute_hours),
            trading_absolute=timedelta(hours=settings.trading_absolute_hours),
        ),
    )


def hasher_from(settings: Settings) -> Argon2Hasher:
    concurrency = settings.hash_concurrency or max(1, (os.cpu_count() or 1) // settings.workers)
    return Argon2Hasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=concurrency,
    )


def build(
    settings: Settings, *, clock: Clock | None = None, hasher: PasswordHasher | None = None
) -> Application:
    """Wire the application from settings; ``clock`` and ``hasher`` may be injected (tests)."""
    engine = make_engine(settings.database_url)
    context = Context(
        uow=unit_of_work_factory(engine),
        clock=clock or SystemClock(),
        random=SystemRandom(),
        hasher=hasher or hasher_from(settings),
        policies=policies_from(settings),
    )
    return Application(context, engine)


def upgrade_database(settings: Settings) -> None:
    """``securelogin db upgrade``: create or migrate the database."""
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
