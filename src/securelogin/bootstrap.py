"""The composition root: Settings in, a wired ``Context`` out. Nothing connects at import."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import DBAPIError

from securelogin.adapters.argon2_blocks import SlotBlocks, block_size
from securelogin.adapters.hash_slots import MachineSlots
from securelogin.adapters.hashing import Argon2Hasher
from securelogin.adapters.mail import MailFolderSender, SmtpSender
from securelogin.adapters.secretbox import (
    AesGcmSecretBox,
    KeyFileSecretBox,
    SecretKeyError,
    parse_key,
)
from securelogin.adapters.system import SystemClock, SystemRandom
from securelogin.config import ConfigError, Settings
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.domain.lockout import LockoutPolicy
from securelogin.domain.passwords import PasswordPolicy
from securelogin.domain.sessions import SessionPolicy
from securelogin.services.context import Context, Policies
from securelogin.services.ports import Clock, PasswordHasher, SecretBox
from securelogin.storage.engine import is_reachable, make_engine
from securelogin.storage.unit_of_work import is_unavailable, unit_of_work_factory


@dataclass(frozen=True)
class Application:
    """What an edge needs: the services' context and a way to check the database."""

    context: Context
    engine: Engine

    def database_is_reachable(self) -> bool:
        return is_reachable(self.engine)

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
    """At most one hash per core: in this process by a semaphore, and across the server's
    worker processes by the machine-wide slots that ``securelogin serve`` sets up."""
    machine = machine_hash_concurrency(settings)
    if not settings.hash_slots_dir:
        return _argon2(settings, machine, None)
    directory = Path(settings.hash_slots_dir)
    size = block_size(settings.argon2_memory_kib, settings.argon2_parallelism)
    return _argon2(
        settings,
        process_hash_concurrency(settings),
        MachineSlots(directory, machine),
        SlotBlocks.beside(directory, machine, size),
    )


def machine_hash_concurrency(settings: Settings) -> int:
    """How many hashes may run at once on the machine: by default one per core this
    process may run on (its CPU affinity: a server given some of the machine's cores, by
    ``taskset`` or a container's cpuset, hashes on those alone)."""
    return settings.hash_concurrency or _usable_cores()


def _usable_cores() -> int:
    """The cores this process may run on; every core where the system cannot say (macOS
    has no ``sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def process_hash_concurrency(settings: Settings) -> int:
    """How many hashes one process may run at once (and so argon2id blocks it may hold)."""
    machine = machine_hash_concurrency(settings)
    if not settings.hash_slots_dir:
        return machine
    # Each worker may use up to twice its share of the cores (a worker that was handed more
    # connections can borrow idle cores), and keeps no more argon2id blocks than that.
    share = -(-machine // max(1, settings.workers))
    return min(machine, 2 * share)


def _argon2(
    settings: Settings,
    concurrency: int,
    slots: MachineSlots | None,
    blocks: SlotBlocks | None = None,
) -> Argon2Hasher:
    return Argon2Hasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=concurrency,
        machine_slots=slots,
        slot_blocks=blocks,
    )


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    box: SecretBox | None = None,
) -> Application:
    """Wire the application from settings; ``clock`` and ``hasher`` may be injected (tests)."""
    engine = make_engine(settings.database_url)
    context = Context(
        uow=unit_of_work_factory(engine),
        clock=clock or SystemClock(),
        random=SystemRandom(),
        hasher=hasher or hasher_from(settings),
        policies=policies_from(settings),
        box=box or secret_box_from(settings),
        issuer=settings.issuer,
    )
    return Application(context, engine)


def secret_key_file(settings: Settings) -> Path | None:
    """Where the embedded default keeps its key: beside the SQLite file (``<file>.key``)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database) + ".key")


def secret_box_from(settings: Settings) -> SecretBox:
    """R5.7: the key from SECURELOGIN_SECRET_KEY; on SQLite, a key file made on first use.

    The key file holds the current key on its first line and the older keys a rotation
    kept on the next ones; the box reads it again when a rotation rewrites it under this
    process (adapters/secretbox.py). SECURELOGIN_OLD_SECRET_KEYS open secrets on both paths.
    PostgreSQL is a shared, production database: there the key must be configured.
    """
    try:
        older = [parse_key(k) for k in (settings.old_secret_keys or "").split(",") if k.strip()]
        if settings.secret_key:
            return AesGcmSecretBox(parse_key(settings.secret_key), *older)
        key_file = secret_key_file(settings)
        if key_file is None:
            if make_url(settings.database_url).get_backend_name() == "sqlite":
                return AesGcmSecretBox(os.urandom(32))  # an in-memory database: a key for it
            raise ConfigError(
                "SECURELOGIN_SECRET_KEY is required with PostgreSQL "
                "(make one with: securelogin secrets generate)"
            )
        _make_key_file(key_file)
        return KeyFileSecretBox(key_file, *older)
    except SecretKeyError as error:
        raise ConfigError(str(error)) from None


def _make_key_file(path: Path) -> None:
    """Make the key file (mode 0600) if it does not exist yet; wait for one that another
    process is still writing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it a moment ago
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii") + "\n")
    for _ in range(50):  # a process that just made it may still be writing it
        if path.read_text().strip():
            return
        time.sleep(0.02)
    raise ConfigError(f"the key file {path} is empty")


def upgrade_database(settings: Settings) -> None:
    """``securelogin db upgrade``: create or migrate the database. A ConfigError for a
    schema a newer version migrated (never downgraded) or a database that cannot be used;
    ServiceUnavailableError when it cannot be reached."""
    # Alembic (and Mako) cost a server worker 10 MiB it never uses: loaded only here.
    from securelogin.storage import migrate

    with _engine_for_a_command(settings) as engine:
        current, newest, known = migrate.revisions(engine)
        if not known:
            raise ConfigError(_newer_schema(current, newest))
        migrate.upgrade(engine)


def check_schema(settings: Settings) -> None:
    """Refuse a database whose schema is not this version's, with a ConfigError that
    names the fix, before a command or the server uses it. (Unchecked, a database never
    upgraded failed request by request: each a 500 on PostgreSQL, a misleading 503 on
    SQLite, and a traceback from every command.) ServiceUnavailableError when the database
    cannot be reached."""
    from securelogin.storage import migrate  # Alembic: see upgrade_database

    file = _sqlite_file(settings)
    if file is not None and file.parent.is_dir() and not file.exists():
        # Not made here (SQLite would make an empty file at a mistyped path).
        raise ConfigError(
            f"the SQLite database {file} does not exist: run `securelogin db upgrade` first"
        )
    with _engine_for_a_command(settings) as engine:
        current, newest, known = migrate.revisions(engine)
    if current == newest:
        return
    if current is None:
        raise ConfigError(
            "the database has no securelogin schema (no Alembic version: made by hand, or "
            "not at all): run `securelogin db upgrade` first"
        )
    if not known:
        raise ConfigError(_newer_schema(current, newest))
    raise ConfigError(
        f"the database's schema is at revision {current}, and this version needs "
        f"{newest}: run `securelogin db upgrade`"
    )


def _newer_schema(current: str | None, newest: str) -> str:
    return (
        f"the database's schema is at revision {current}, which this version of "
        f"securelogin does not know (its newest is {newest}): a newer version migrated "
        "it; run that version"
    )


@contextmanager
def _engine_for_a_command(settings: Settings) -> Iterator[Engine]:
    """An engine used once and disposed of. A driver error that means the database is out
    of reach is raised as ServiceUnavailableError; any other (a file that is not a SQLite
    database, a migration that fails on tables made by hand) as a ConfigError with the
    driver's first line only (never a statement's parameters); a SQLite file in a folder
    that does not exist as a ConfigError naming the folder, not as unreachable."""
    file = _sqlite_file(settings)
    if file is not None and not file.parent.is_dir():
        raise ConfigError(f"the SQLite database's folder {file.parent} does not exist")
    engine = make_engine(settings.database_url)
    try:
        yield engine
    except DBAPIError as error:
        if is_unavailable(error):
            raise ServiceUnavailableError() from error
        original = error.orig if error.orig is not None else error
        first_line = (str(original).splitlines() or [""])[0][:200]
        raise ConfigError(
            f"the database cannot be used: {type(original).__name__}: {first_line}"
        ) from None
    finally:
        engine.dispose()


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def mail_sender_from(settings: Settings) -> SmtpSender | MailFolderSender:
    """SMTP when SECURELOGIN_SMTP_URL is set; otherwise the local mail folder."""
    if settings.smtp_url:
        try:
            return SmtpSender(settings.smtp_url, settings.mail_from)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return MailFolderSender(Path(settings.mail_dir), settings.mail_from)
