"""The ``securelogin`` command line, a contract of its own (http-api.md, "Command line").

Most tests run the click group in-process (CliRunner) with ``SECURELOGIN_*`` set in the
environment; one runs the installed command to prove the entry point and its stdout.
The audit tests tamper with the tables directly with SQL, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from securelogin.cli.main import cli
from securelogin.config import Settings
from securelogin.web.app import create_app
from tests.conftest import PASSWORD, user_body

SECURELOGIN = str(Path(sys.executable).parent / "securelogin")
FAST_HASHING = {"SECURELOGIN_ARGON2_MEMORY_KIB": "1024", "SECURELOGIN_ARGON2_TIME_COST": "1"}


def new_secret_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def environment_for(database_url: str) -> dict[str, str]:
    return {
        "SECURELOGIN_DATABASE_URL": database_url,
        "SECURELOGIN_SECRET_KEY": new_secret_key(),
        **FAST_HASHING,
    }


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


def last_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert lines, "no output"
    return lines[-1]


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return environment_for(f"sqlite:///{tmp_path / 'cli.db'}")


@pytest.fixture
def upgraded_env(sqlite_env: dict[str, str]) -> dict[str, str]:
    assert run(sqlite_env, "db", "upgrade").exit_code == 0
    return sqlite_env


@pytest.fixture
def any_db_env(database_url: str) -> dict[str, str]:
    """A migrated SQLite file or PostgreSQL schema (conftest's ``database_url``)."""
    return environment_for(database_url)


@pytest.fixture
def http_client(upgraded_env: dict[str, str]) -> Iterator[TestClient]:
    """The HTTP app on the same database the commands write to."""
    settings = Settings.from_env(upgraded_env)
    with TestClient(create_app(settings)) as client:
        yield client


# db upgrade


def test_db_upgrade_creates_the_database_and_running_it_again_is_fine(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    first = run(sqlite_env, "db", "upgrade")
    second = run(sqlite_env, "db", "upgrade")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert (tmp_path / "cli.db").exists()
    created = run(sqlite_env, "users", "create", stdin=json.dumps(user_body()))
    assert created.exit_code == 0, created.output


# tokens create


def test_tokens_create_prints_an_agent_token_alone_on_the_last_line_that_authenticates(
    upgraded_env: dict[str, str], http_client: TestClient
) -> None:
    result = run(upgraded_env, "tokens", "create", "--role", "agent", "--name", "x")

    assert result.exit_code == 0, result.output
    token = last_line(result.stdout)
    assert token == token.strip() and " " not in token and len(token) >= 43
    agent = http_client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {token}"})
    garbage = http_client.get("/api/v1/admin/audit", headers={"Authorization": "Bearer slst_x"})
    assert agent.status_code == 403
    assert agent.json()["error"]["code"] == "forbidden"
    assert garbage.status_code == 401


def test_tokens_create_prints_an_admin_token_that_reads_the_audit(
    upgraded_env: dict[str, str], http_client: TestClient
) -> None:
    result = run(upgraded_env, "tokens", "create", "--role", "admin", "--name", "ops")

    token = last_line(result.stdout)
    response = http_client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert token not in response.text
    actions = [record["action"] for record in response.json()["records"]]
    assert actions[-1] == "staff_token.created"


def test_tokens_create_with_an_unknown_role_is_a_usage_error(
    upgraded_env: dict[str, str],
) -> None:
    result = run(upgraded_env, "tokens", "create", "--role", "root", "--name", "x")

    assert result.exit_code == 2


ROLES = ("agent", "admin")


def test_tokens_revoke_with_a_role_leaves_the_names_other_tokens_and_again_is_not_found(
    upgraded_env: dict[str, str], http_client: TestClient
) -> None:
    create = ("tokens", "create", "--name", "amy", "--role")
    created = {role: last_line(run(upgraded_env, *create, role).stdout) for role in ROLES}

    revoked = run(upgraded_env, "tokens", "revoke", "--name", "amy", "--role", "agent")
    again = run(upgraded_env, "tokens", "revoke", "--name", "amy", "--role", "agent")

    assert revoked.exit_code == 0, revoked.output
    assert "Revoked the agent token of amy" in revoked.stdout
    start = http_client.post(
        "/api/v1/agent/verifications",
        headers={"Authorization": f"Bearer {created['agent']}"},
        json={"username": "abcde123"},
    )
    assert start.status_code == 401
    assert start.json()["error"]["code"] == "unauthenticated"
    audit = http_client.get(
        "/api/v1/admin/audit", headers={"Authorization": f"Bearer {created['admin']}"}
    )
    assert audit.status_code == 200
    assert again.exit_code == 1
    assert "not_found" in again.output
    assert "Traceback" not in again.output


def test_installed_command_prints_the_token_alone_on_the_last_line_of_stdout(
    upgraded_env: dict[str, str],
) -> None:
    completed = subprocess.run(
        [SECURELOGIN, "tokens", "create", "--role", "agent", "--name", "desk"],
        env={**os.environ, **upgraded_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith("\n")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", completed.stdout.splitlines()[-1])


# secrets generate


def test_secrets_generate_prints_32_random_bytes_in_urlsafe_base64_on_the_last_line() -> None:
    first = last_line(run({}, "secrets", "generate").stdout)
    second = last_line(run({}, "secrets", "generate").stdout)

    assert len(base64.urlsafe_b64decode(first)) == 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+=*", first)
    assert first != second


# users create


def test_users_create_reads_json_from_stdin_and_prints_the_username(
    upgraded_env: dict[str, str], http_client: TestClient
) -> None:
    result = run(upgraded_env, "users", "create", stdin=json.dumps(user_body("abcde123")))

    assert result.exit_code == 0, result.output
    assert last_line(result.stdout) == "abcde123"
    login = {"username": "abcde123", "password": PASSWORD, "platform": "portal"}
    assert http_client.post("/api/v1/logins", json=login).status_code == 200


def test_users_create_with_a_prefix_prints_the_generated_username(
    upgraded_env: dict[str, str],
) -> None:
    body = {k: v for k, v in user_body().items() if k != "username"} | {"prefix": "abc"}

    result = run(upgraded_env, "users", "create", stdin=json.dumps(body))

    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"abc[0-9]{3}", last_line(result.stdout))


def test_users_create_reads_a_json_file_argument(
    upgraded_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "user.json"
    path.write_text(json.dumps(user_body("fromfile1")))

    result = run(upgraded_env, "users", "create", str(path))

    assert result.exit_code == 0, result.output
    assert last_line(result.stdout) == "fromfile1"


def test_users_create_of_a_taken_username_exits_with_the_conflict_code(
    upgraded_env: dict[str, str],
) -> None:
    run(upgraded_env, "users", "create", stdin=json.dumps(user_body()))

    result = run(upgraded_env, "users", "create", stdin=json.dumps(user_body()))

    assert result.exit_code == 4  # scripts/serve relies on 4 meaning "exists already"
    assert "conflict" in result.output


@pytest.mark.parametrize(
    "stdin",
    [
        "not json",
        json.dumps({"username": "abcde123"}),
        json.dumps(user_body(password="short")),
        json.dumps(user_body("BadName")),
    ],
    ids=["not-json", "missing-fields", "weak-password", "bad-username"],
)
def test_users_create_with_an_invalid_body_exits_with_the_invalid_request_code(
    upgraded_env: dict[str, str], stdin: str
) -> None:
    result = run(upgraded_env, "users", "create", stdin=stdin)

    assert result.exit_code == 3, result.output
    assert "invalid_request" in result.output
    assert "Traceback" not in result.output


# audit verify


def populate_audit(env: dict[str, str]) -> int:
    """Write a few audit records through the commands; return how many there are."""
    assert run(env, "users", "create", stdin=json.dumps(user_body("abcde123"))).exit_code == 0
    assert run(env, "tokens", "create", "--role", "agent", "--name", "a").exit_code == 0
    assert run(env, "tokens", "create", "--role", "admin", "--name", "b").exit_code == 0
    assert run(env, "users", "create", stdin=json.dumps(user_body("fghij456"))).exit_code == 0
    return count_records(env["SECURELOGIN_DATABASE_URL"])


def execute_sql(database_url: str, statement: str, **params: Any) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


def count_records(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM audit_records")).scalar_one())
    finally:
        engine.dispose()


def assert_broken_at(result: Result, seq: int) -> None:
    assert result.exit_code != 0, result.output
    assert re.search(rf"\brecord {seq}\b", result.output), result.output


def test_audit_verify_exits_zero_on_an_intact_chain(any_db_env: dict[str, str]) -> None:
    records = populate_audit(any_db_env)

    result = run(any_db_env, "audit", "verify")

    assert records >= 4
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout


def test_audit_verify_exits_zero_on_an_empty_log(any_db_env: dict[str, str]) -> None:
    assert run(any_db_env, "audit", "verify").exit_code == 0


def test_audit_verify_names_a_record_whose_outcome_was_updated(
    any_db_env: dict[str, str],
) -> None:
    populate_audit(any_db_env)
    execute_sql(
        any_db_env["SECURELOGIN_DATABASE_URL"],
        "UPDATE audit_records SET outcome = 'refused' WHERE seq = 2",
    )

    assert_broken_at(run(any_db_env, "audit", "verify"), 2)


def test_audit_verify_names_a_middle_record_that_was_deleted(
    any_db_env: dict[str, str],
) -> None:
    populate_audit(any_db_env)
    execute_sql(any_db_env["SECURELOGIN_DATABASE_URL"], "DELETE FROM audit_records WHERE seq = 3")

    assert_broken_at(run(any_db_env, "audit", "verify"), 3)


def test_audit_verify_names_the_newest_record_when_it_was_deleted(
    any_db_env: dict[str, str],
) -> None:
    newest = populate_audit(any_db_env)
    execute_sql(
        any_db_env["SECURELOGIN_DATABASE_URL"],
        "DELETE FROM audit_records WHERE seq = :seq",
        seq=newest,
    )

    assert_broken_at(run(any_db_env, "audit", "verify"), newest)


def test_audit_verify_names_the_newest_record_when_its_details_were_updated(
    any_db_env: dict[str, str],
) -> None:
    newest = populate_audit(any_db_env)
    execute_sql(
        any_db_env["SECURELOGIN_DATABASE_URL"],
        "UPDATE audit_records SET details = '{}' WHERE seq = :seq",
        seq=newest,
    )

    assert_broken_at(run(any_db_env, "audit", "verify"), newest)


@pytest.mark.parametrize(
    "details",
    ["not json", '{"password":"Correct4horse"}', "[1,2]", '"text"'],
    ids=["not-json", "a-secret-key", "a-list", "a-string"],
)
def test_audit_verify_names_a_record_whose_details_cannot_be_read(
    any_db_env: dict[str, str], details: str
) -> None:
    populate_audit(any_db_env)
    execute_sql(
        any_db_env["SECURELOGIN_DATABASE_URL"],
        "UPDATE audit_records SET details = :details WHERE seq = 2",
        details=details,
    )

    result = run(any_db_env, "audit", "verify")

    assert_broken_at(result, 2)
    assert "cannot be read" in result.output
    assert "Correct4horse" not in result.output


def test_audit_verify_names_a_record_whose_time_is_not_one(upgraded_env: dict[str, str]) -> None:
    """SQLite keeps any text in a time column (PostgreSQL refuses it)."""
    populate_audit(upgraded_env)
    execute_sql(
        upgraded_env["SECURELOGIN_DATABASE_URL"],
        "UPDATE audit_records SET at = 'yesterday' WHERE seq = 3",
    )

    result = run(upgraded_env, "audit", "verify")

    assert_broken_at(result, 3)
    assert "cannot be read" in result.output


def test_audit_verify_names_the_first_bad_record_when_a_later_one_cannot_be_read(
    any_db_env: dict[str, str],
) -> None:
    newest = populate_audit(any_db_env)
    url = any_db_env["SECURELOGIN_DATABASE_URL"]
    execute_sql(url, "UPDATE audit_records SET outcome = 'refused' WHERE seq = 2")
    execute_sql(url, "UPDATE audit_records SET details = 'x' WHERE seq = :seq", seq=newest)

    assert_broken_at(run(any_db_env, "audit", "verify"), 2)
