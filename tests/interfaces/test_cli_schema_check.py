"""Every command that uses the database, and ``serve``, first checks that its schema is this
version's: a database never upgraded, one left behind by an older version, or one migrated
by a newer version is refused with the fix named and exit code 1, never a traceback (before,
each such command printed SQLAlchemy's, and ``serve`` started and answered every request
with a 500 on PostgreSQL and a misleading 503 on SQLite). One out of reach is exit code 5
(service_unavailable), and ``serve`` starts anyway, answering 503 until it is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from tests.conftest import user_body
from tests.databases import sqlite_url
from tests.interfaces.test_cli import SECURELOGIN, environment_for, run
from tests.processes import stop_process

COMMANDS_ON_THE_DATABASE = [
    ("audit", "verify"),
    ("tokens", "create", "--role", "agent", "--name", "desk"),
    ("tokens", "revoke", "--name", "desk"),
    ("users", "create"),
    ("secrets", "rotate"),
    ("mail", "flush"),
]
UPGRADE_HINT = "run `securelogin db upgrade`"


def execute(url: str, sql: str) -> None:
    """One statement on the database at ``url``, committed (a hand's change)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", COMMANDS_ON_THE_DATABASE, ids=" ".join)
def test_a_command_on_a_database_never_upgraded_names_the_fix(
    empty_database_url: str, command: tuple[str, ...]
) -> None:
    env = environment_for(empty_database_url)

    result = run(env, *command, stdin=json.dumps(user_body()))  # an exception would propagate

    assert result.exit_code == 1, result.output
    if empty_database_url.startswith("sqlite"):  # refused before SQLite made an empty file
        file = Path(empty_database_url.removeprefix("sqlite:///"))
        assert f"the SQLite database {file} does not exist" in result.output
        assert not file.exists()
    else:
        assert "the database has no securelogin schema" in result.output
    assert UPGRADE_HINT in result.output
    assert run(env, "db", "upgrade").exit_code == 0
    assert run(env, "audit", "verify").exit_code == 0  # and with the fix, it works


def test_a_sqlite_file_made_by_hand_is_told_it_has_no_securelogin_schema(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    execute(url, "CREATE TABLE users (user_id INTEGER PRIMARY KEY)")

    result = run(environment_for(url), "audit", "verify")

    assert result.exit_code == 1, result.output
    assert "the database has no securelogin schema (no Alembic version" in result.output


def test_a_database_an_older_version_left_is_told_to_upgrade(empty_database_url: str) -> None:
    env = environment_for(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        migrate.upgrade(engine, "0002")
        current, newest, known = migrate.revisions(engine)
    finally:
        engine.dispose()
    assert (current, known) == ("0002", True)

    result = run(env, "tokens", "create", "--role", "agent", "--name", "desk")

    assert result.exit_code == 1, result.output
    assert f"at revision 0002, and this version needs {newest}" in result.output
    assert UPGRADE_HINT in result.output


@pytest.mark.parametrize("command", [("audit", "verify"), ("db", "upgrade")], ids=" ".join)
def test_a_database_a_newer_version_migrated_is_refused_not_downgraded(
    empty_database_url: str, command: tuple[str, ...]
) -> None:
    env = environment_for(empty_database_url)
    assert run(env, "db", "upgrade").exit_code == 0
    execute(empty_database_url, "UPDATE alembic_version SET version_num = '0099_future'")

    result = run(env, *command)  # Alembic's own error (db upgrade) would propagate

    assert result.exit_code == 1, result.output
    assert "revision 0099_future, which this version of securelogin does not know" in (
        result.output
    )


@pytest.mark.parametrize("command", [("db", "upgrade"), ("audit", "verify")], ids=" ".join)
def test_a_sqlite_file_in_a_folder_that_does_not_exist_is_named_not_unreachable(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = environment_for(f"sqlite:///{tmp_path / 'missing' / 'securelogin.db'}")

    result = run(env, *command)

    assert result.exit_code == 1, result.output  # 5 (service_unavailable) before
    assert f"the SQLite database's folder {tmp_path / 'missing'} does not exist" in (result.output)


@pytest.mark.parametrize("command", [("db", "upgrade"), ("audit", "verify")], ids=" ".join)
def test_a_file_that_is_not_a_sqlite_database_is_refused_without_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "securelogin.db").write_text("not a database\n")

    result = run(environment_for(sqlite_url(tmp_path)), *command)

    assert result.exit_code == 1, result.output
    assert "the database cannot be used: DatabaseError: file is not a database" in (result.output)


def test_a_database_url_that_cannot_be_read_is_refused_without_echoing_it() -> None:
    url = "postgresql+psycopg://securelogin:S3cretWord@127.0.0.1:notaport/test"

    result = run(environment_for(url), "audit", "verify")

    assert result.exit_code == 1, result.output
    assert "SECURELOGIN_DATABASE_URL is sqlite:///" in result.output
    assert "S3cretWord" not in result.output


def test_a_command_on_a_database_out_of_reach_exits_with_the_unavailable_code() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"  # nothing listens

    for command in (("db", "upgrade"), ("audit", "verify")):
        result = run(environment_for(url), *command)

        assert result.exit_code == 5, result.output
        assert "service_unavailable" in result.output


def test_serve_refuses_a_database_never_upgraded(empty_database_url: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [SECURELOGIN, "serve", "--port", str(free_port())],
        env={**os.environ, **environment_for(empty_database_url)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # a server that started would be stopped here, and the test fail
        check=False,
    )

    assert completed.returncode == 1, completed.stderr
    assert UPGRADE_HINT in completed.stderr
    assert "Traceback" not in completed.stderr


def test_serve_starts_on_a_database_out_of_reach_and_answers_503(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"  # nothing listens
    port = free_port()
    server = subprocess.Popen(
        [SECURELOGIN, "serve", "--port", str(port)],
        env={**os.environ, **environment_for(url)},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while health is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            except httpx.TransportError:
                assert server.poll() is None, "serve exited"
                time.sleep(0.1)
        assert health is not None, "serve did not start"
        assert health.status_code == 503
        assert health.json()["error"]["code"] == "service_unavailable"
    finally:
        stop_process(server)
    assert server.stderr is not None
    assert "the database cannot be reached, so its schema was not checked" in server.stderr.read()
