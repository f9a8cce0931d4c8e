"""R5.7: ``securelogin secrets rotate`` moves every sealed secret to the new key.

What is sealed (storage/tables.py): a device's secret and PIN hash, bound to the device id,
and an online security code card's values, bound to the card id. After a rotation, with
the old key gone, every one of them still works: a code card logs in, an issued online card
prints and activates, an activated one logs in. The rotation is one transaction: a secret
that does not open leaves every secret as it was.

With the key in the environment (SQLite and PostgreSQL) the operator restarts the servers
with the new key (docs/operations.md). On the embedded SQLite default, ``--generate``
rewrites the key file under a server that keeps running, and that server keeps working:
it opens what the rotation re-sealed and seals with the new key from then on.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.adapters.secretbox import (
    AesGcmSecretBox,
    UnknownKeyError,
    key_id,
    parse_key,
    read_key_texts,
    staged_key_file,
)
from securelogin.bootstrap import Application, build
from securelogin.cli.main import cli
from securelogin.config import Secret, Settings
from securelogin.services.context import Caller
from securelogin.services.secrets_rotation import reseal_all
from securelogin.storage.tables import devices, online_cards
from securelogin.web.app import create_app
from tests.clock import FakeClock
from tests.conftest import TEST_SECRET_KEY, make_user, upgrade_database
from tests.databases import sqlite_url
from tests.interfaces.test_http_agent import (
    DEVICES,
    OTHER,
    USERNAME,
    Agent,
    bearer,
    card_response,
    code_card_answer,
    enrol_code_card,
    log_in,
    new_agent_token,
    password_only_token,
    session_of,
)
from tests.interfaces.test_http_recovery import (
    ONLINE_CARD,
    activate_card,
    passcode_login,
    request_card,
    token_of,
)

THIRD = "klmno789"
FOURTH = "pqrst246"
FAST_HASHING = {"SECURELOGIN_ARGON2_MEMORY_KIB": "1024", "SECURELOGIN_ARGON2_TIME_COST": "1"}


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


@dataclass
class Issued:
    """What the users hold, made before the rotation."""

    issued: dict[str, Any]  # USERNAME's online card, printed but not activated
    session: dict[str, str]  # USERNAME's passcode session, which may print and activate it
    active: dict[str, Any]  # OTHER's online card, activated
    device: dict[str, Any]  # THIRD's code card, activated


def issue_everything(client: TestClient, application: Application) -> Issued:
    """Two users lost their code card: Client Services gave each a temporary passcode, with
    which they requested an online card (R6, R7); one of them activated it."""
    agent = Agent(client, new_agent_token(application))
    sessions = {}
    for username in (USERNAME, OTHER):
        make_user(application, username)
        enrol_code_card(client, username)
        passcode = agent.passcode(username)
        sessions[username] = token_of(passcode_login(client, passcode, username=username))
    issued = request_card(client, sessions[USERNAME])
    active = request_card(client, sessions[OTHER])
    assert activate_card(client, sessions[OTHER], active).status_code == 200
    make_user(application, THIRD)
    return Issued(issued, sessions[USERNAME], active, enrol_code_card(client, THIRD))


def card_login(client: TestClient, username: str, card: dict[str, Any]) -> dict[str, Any]:
    values = card["values"]
    return session_of(
        log_in(
            client,
            "online_card",
            lambda factor: card_response(values, factor["challenge"]["indices"]),
            username=username,
        )
    )


def assert_everything_works(client: TestClient, held: Issued) -> None:
    """Each sealed secret opens: the issued card prints and activates, both cards and the
    code card log in (each a 500 when its secret does not open)."""
    pdf = client.get(f"{ONLINE_CARD}/{held.issued['card_id']}.pdf", headers=held.session)
    assert pdf.status_code == 200, pdf.text
    activated = activate_card(client, held.session, held.issued)
    assert activated.status_code == 200, activated.text
    assert card_login(client, USERNAME, held.issued)["factor_kind"] == "online_card"
    assert card_login(client, OTHER, held.active)["factor_kind"] == "online_card"
    code_card = session_of(
        log_in(client, "code_card", code_card_answer(held.device), username=THIRD)
    )
    assert code_card["factor_kind"] == "code_card"


def sealed_values(application: Application) -> list[str]:
    with application.engine.connect() as connection:
        rows = connection.execute(select(devices.c.secret_sealed, devices.c.pin_sealed)).all()
        cards = connection.execute(select(online_cards.c.values_sealed)).scalars().all()
    return [value for row in rows for value in row if value is not None] + list(cards)


def key_ids(application: Application) -> set[str]:
    return {value.split(".")[1] for value in sealed_values(application)}


def rotate(env: dict[str, str | None], *options: str) -> Result:
    return CliRunner().invoke(
        cli, ["secrets", "rotate", *options], env={**FAST_HASHING, **env}, catch_exceptions=False
    )


@contextmanager
def server(
    settings: Settings, clock: FakeClock, hasher: Argon2Hasher
) -> Iterator[tuple[TestClient, Application]]:
    application = build(settings, clock=clock, hasher=hasher)
    try:
        with TestClient(create_app(settings, application)) as client:
            yield client, application
    finally:
        application.dispose()


def rotated_audit(client: TestClient, admin_token: str) -> dict[str, Any]:
    reply = client.get("/api/v1/admin/audit", headers=bearer(admin_token))
    assert reply.status_code == 200, reply.text
    (record,) = [r for r in reply.json()["records"] if r["action"] == "secrets.rotated"]
    details: dict[str, Any] = record["details"]
    return details


# ---- the key in the environment (SQLite and PostgreSQL) ----------------------------------


def test_after_a_rotation_every_secret_works_under_the_new_key_with_the_old_one_gone(
    client: TestClient,
    application: Application,
    database_url: str,
    clock: FakeClock,
    fast_hasher: Argon2Hasher,
    admin_token: str,
) -> None:
    held = issue_everything(client, application)
    key = new_key()

    result = rotate(
        {
            "SECURELOGIN_DATABASE_URL": database_url,
            "SECURELOGIN_SECRET_KEY": key,
            "SECURELOGIN_OLD_SECRET_KEYS": str(TEST_SECRET_KEY),
        }
    )

    assert result.exit_code == 0, result.output
    restarted = Settings(database_url=database_url, secret_key=Secret(key))  # old key gone
    with server(restarted, clock, fast_hasher) as (after, _):
        assert_everything_works(after, held)
        assert rotated_audit(after, admin_token) == {"devices": 3, "online_cards": 2}
    assert key_ids(application) == {key_id(parse_key(key))}
    assert "re-sealed 3 devices and 2 online cards under the current key" in result.output
    assert "SECURELOGIN_OLD_SECRET_KEYS may be removed" in result.output


def test_a_rotation_is_all_or_nothing_a_secret_that_does_not_open_moves_none(
    client: TestClient, application: Application, database_url: str, fast_hasher: Argon2Hasher
) -> None:
    held = issue_everything(client, application)
    unknown = AesGcmSecretBox(os.urandom(32))  # the last card, sealed under a lost key
    stray = unknown.seal(b"{}", held.active["card_id"])
    with application.engine.begin() as connection:
        connection.execute(
            online_cards.update()
            .where(online_cards.c.card_id == held.active["card_id"])
            .values(values_sealed=stray)
        )
    before = sealed_values(application)
    new_box = AesGcmSecretBox(os.urandom(32))

    with pytest.raises(UnknownKeyError):
        reseal_all(application.context, new_box, Caller("test"))

    assert sealed_values(application) == before  # the devices re-sealed first too


# ---- the key file of the embedded SQLite default -----------------------------------------


@pytest.fixture
def key_file_settings(tmp_path: Path) -> Settings:
    url = sqlite_url(tmp_path)
    upgrade_database(url)
    return Settings(database_url=url)  # no SECURELOGIN_SECRET_KEY: the key file


def test_rotate_generate_rewrites_the_key_file_under_a_running_server_which_keeps_working(
    key_file_settings: Settings, tmp_path: Path, clock: FakeClock, fast_hasher: Argon2Hasher
) -> None:
    env: dict[str, str | None] = {
        "SECURELOGIN_DATABASE_URL": key_file_settings.database_url,
        "SECURELOGIN_SECRET_KEY": None,
        "SECURELOGIN_OLD_SECRET_KEYS": None,
    }
    key_file = tmp_path / "securelogin.db.key"
    with server(key_file_settings, clock, fast_hasher) as (running, application):
        (old,) = read_key_texts(key_file)
        held = issue_everything(running, application)

        result = rotate(env, "--generate")

        assert result.exit_code == 0, result.output
        new = result.output.splitlines()[-1]
        # The server started before the rotation opens what it re-sealed...
        assert_everything_works(running, held)
        # ...and seals a new secret under the new key.
        make_user(application, FOURTH)
        token = password_only_token(running, FOURTH)
        order = {"kind": "code_card", "country": "US"}
        ordered = running.post(f"{DEVICES}/orders", headers=bearer(token), json=order)
        assert ordered.status_code == 201, ordered.text
        assert key_ids(application) == {key_id(parse_key(new))}
        # The key file: the new key first, the old one kept below it, this user's only.
        assert read_key_texts(key_file) == [new, old]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not staged_key_file(key_file).exists()
        assert "re-sealed 3 devices and 2 online cards" in result.output
        # The operator re-seals once more, then removes the old key: all still works.
        again = rotate(env)
        assert again.exit_code == 0, again.output
        assert "re-sealed 4 devices and 2 online cards under the current key" in again.output
        assert f"the older keys in {key_file}" in again.output
        key_file.write_text(new + "\n")
        assert card_login(running, OTHER, held.active)["factor_kind"] == "online_card"
    with server(key_file_settings, clock, fast_hasher) as (restarted, _):
        assert card_login(restarted, USERNAME, held.issued)["factor_kind"] == "online_card"
        code_card = code_card_answer(held.device)
        assert session_of(log_in(restarted, "code_card", code_card, username=THIRD))
