"""Test databases: a SQLite file always; PostgreSQL whenever one is reachable.

``SECURELOGIN_TEST_POSTGRES_URL`` names the server (default: the local one, database
``test``, user ``postgres``). Each test gets a schema of its own, dropped afterwards.
With ``SECURELOGIN_REQUIRE_POSTGRES=1`` (set by .ci/run) an unreachable server is a
failure, never a skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    return os.environ.get("SECURELOGIN_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_required() -> bool:
    return os.environ.get("SECURELOGIN_REQUIRE_POSTGRES", "") == "1"


_reachable: bool | None = None


def postgres_reachable() -> bool:
    global _reachable
    if _reachable is None:
        engine = create_engine(postgres_base_url(), connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            _reachable = True
        except Exception:
            _reachable = False
        finally:
            engine.dispose()
    return _reachable


def require_postgres() -> None:
    if postgres_reachable():
        return
    message = f"PostgreSQL not reachable at {postgres_base_url()}"
    if postgres_required():
        pytest.fail(message + " (SECURELOGIN_REQUIRE_POSTGRES=1)")
    pytest.skip(message)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema; dropped on exit."""
    require_postgres()
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(postgres_base_url())
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in postgres_base_url() else "?"
    url = f"{postgres_base_url()}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'securelogin.db'}"
