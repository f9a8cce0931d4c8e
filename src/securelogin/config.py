"""Settings, read once from the environment (``SECURELOGIN_*``); stdlib only.

Only this module reads ``os.environ``. Everything else receives a ``Settings``.
A value that cannot be parsed is a loud error naming the key, at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "SECURELOGIN_"
DEFAULT_DATABASE_URL = "sqlite:///securelogin.db"
# SQLite, or PostgreSQL through psycopg 3, named (a bare postgresql:// is psycopg2 to
# SQLAlchemy 2.0 and psycopg to 2.1)
DATABASE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite", "postgresql+psycopg"})


class ConfigError(Exception):
    """A setting is missing or malformed."""


class YesNoAuto:
    """The kind of a yes/no setting that may also be ``auto`` (read as None): decided by the
    service, request by request."""


class Secret(str):
    """A string that never shows itself in ``repr`` (starlette's Secret idea)."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class Settings:
    """Every configurable number and address. Defaults are the rules' (rules.md)."""

    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    secret_key: Secret | None = field(default=None, repr=False)
    old_secret_keys: Secret | None = field(default=None, repr=False)  # comma-separated
    issuer: str = "securelogin"  # the name authenticator apps show
    argon2_memory_kib: int = 19 * 1024  # R2.1: OWASP: 19 MiB
    argon2_time_cost: int = 2  # R2.1: 2 iterations
    argon2_parallelism: int = 1  # R2.1: 1 lane
    hash_concurrency: int = 0  # concurrent hashes on this machine; 0 = one per usable core
    hash_slots_dir: str = ""  # machine-wide hash slots shared by workers (serve sets it)
    workers: int = 1
    lockout_threshold: int = 10  # R3.2
    lockout_window_hours: float = 24  # R3.2
    lockout_duration_hours: float = 24  # R3.3
    password_min_length: int = 8  # R2.2
    password_max_length: int = 64  # R2.2
    portal_idle_minutes: float = 30  # R4.5
    portal_absolute_hours: float = 12  # R4.5
    trading_absolute_hours: float = 24  # R4.5
    max_body_bytes: int = 64 * 1024  # bodies over 64 KiB are refused (413)
    trust_forwarded_for: bool = False  # take the client address from X-Forwarded-For
    # Cookies Secure and HSTS sent: True always; False only on requests seen to arrive over
    # HTTPS; None (auto) always but on plain http to a loopback name (web/transport.py).
    cookie_secure: bool | None = None
    smtp_url: Secret | None = field(default=None, repr=False)  # smtp://user:pass@host:port
    mail_dir: str = "var/mail"  # where e-mails go when no SMTP server is configured
    mail_from: str = "securelogin@localhost"
    mail_max_attempts: int = 10  # a message the mail server refuses is given up after 10 tries

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, kind in _FIELDS.items():
            raw = env.get(PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(name, kind, raw)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def lockout_window(self) -> timedelta:
        return timedelta(hours=self.lockout_window_hours)

    @property
    def lockout_duration(self) -> timedelta:
        return timedelta(hours=self.lockout_duration_hours)


_FIELDS: dict[str, type] = {
    "database_url": str,
    "secret_key": Secret,
    "old_secret_keys": Secret,
    "issuer": str,
    "argon2_memory_kib": int,
    "argon2_time_cost": int,
    "argon2_parallelism": int,
    "hash_concurrency": int,
    "hash_slots_dir": str,
    "workers": int,
    "lockout_threshold": int,
    "lockout_window_hours": float,
    "lockout_duration_hours": float,
    "password_min_length": int,
    "password_max_length": int,
    "portal_idle_minutes": float,
    "portal_absolute_hours": float,
    "trading_absolute_hours": float,
    "max_body_bytes": int,
    "trust_forwarded_for": bool,
    "cookie_secure": YesNoAuto,
    "smtp_url": Secret,
    "mail_dir": str,
    "mail_from": str,
    "mail_max_attempts": int,
}


def _is_database_url(raw: str) -> bool:
    """One of the kinds the service runs on, and a URL SQLAlchemy can read (a port that is
    not a number, say, is not)."""
    if raw.partition("://")[0].lower() not in DATABASE_SCHEMES:
        return False
    try:
        make_url(raw)
    except (ArgumentError, ValueError):
        return False
    return True


def _parse(name: str, kind: type, raw: str) -> object:
    key = PREFIX + name.upper()
    if name == "database_url" and not _is_database_url(raw):
        # Not echoed: a URL may hold the database's password.
        raise ConfigError(f"{key} is sqlite:///<file> or postgresql+psycopg://<user>@<host>/<db>")
    if kind is YesNoAuto:
        if raw.lower() == "auto":
            return None
        if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise ConfigError(f"{key} is 1, 0 or auto")
        kind = bool
    try:
        if kind is bool:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{key} is not a valid {kind.__name__}") from None
