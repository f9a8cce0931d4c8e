"""The ``securelogin`` command line (a contract too: http-api.md, "Command line")."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from securelogin.adapters.hash_slots import private_slots_directory
from securelogin.adapters.malloc import argon2_block_tunables, with_tunables
from securelogin.adapters.secretbox import (
    AesGcmSecretBox,
    parse_key,
    read_key_texts,
    staged_key_file,
    write_key_file,
)
from securelogin.bootstrap import (
    Application,
    build,
    check_schema,
    mail_sender_from,
    process_hash_concurrency,
    secret_box_from,
    secret_key_file,
    upgrade_database,
)
from securelogin.config import ConfigError, Settings
from securelogin.domain.accounts import StaffRole
from securelogin.domain.errors import InvalidRequestError, SecureLoginError
from securelogin.domain.security_questions import QuestionAnswer
from securelogin.services import admin, audit
from securelogin.services.context import Caller
from securelogin.services.mail import flush_outbox
from securelogin.services.secrets_rotation import reseal_all

# Exit codes of refusals: 1 is a generic failure, 2 is click's usage error.
EXIT_CODES = {"invalid_request": 3, "conflict": 4, "service_unavailable": 5}
CLI_CALLER = Caller(actor="operator:cli", source="cli")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _check_secret_key(settings: Settings) -> None:
    """R5.7: a usable key, or a loud refusal (on SQLite, the key file is made if missing)."""
    try:
        secret_box_from(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


class Refusal(click.ClickException):
    def __init__(self, error: SecureLoginError) -> None:
        field = getattr(error, "field", None)
        super().__init__(f"{error.code}: {error.user_message}" + (f" ({field})" if field else ""))
        self.exit_code = EXIT_CODES.get(error.code, 1)  # type: ignore[misc]  # click reads it


def _app(settings: Settings | None = None) -> Application:
    """The wired application, once its database is known to have this version's schema: a
    database never upgraded, or upgraded by a newer version, is refused here with the fix
    named (exit 1), and one out of reach with the service_unavailable code (exit 5)."""
    settings = settings or _settings()
    try:
        check_schema(settings)
        return build(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    except SecureLoginError as error:
        raise Refusal(error) from None


@click.group()
def cli() -> None:
    """securelogin: the Secure Login System."""


@cli.group()
def db() -> None:
    """The database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database named by SECURELOGIN_DATABASE_URL."""
    settings = _settings()
    try:
        upgrade_database(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    except SecureLoginError as error:
        raise Refusal(error) from None
    _check_secret_key(settings)
    click.echo("database is up to date")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Run the HTTP service."""
    _check_secret_key(_settings())  # fail early: no key on PostgreSQL, or a malformed one
    _check_schema_before_serving(_settings())
    os.environ["SECURELOGIN_WORKERS"] = str(workers)
    # Several workers share one bound of a hash per core (adapters/hash_slots.py).
    if workers > 1:
        os.environ.setdefault("SECURELOGIN_HASH_SLOTS_DIR", str(private_slots_directory()))
    # glibc malloc, read by each worker process at its start: one arena, so the thread
    # pool does not keep a heap per thread, and the argon2id blocks of the hashes a worker
    # may run at once kept in its heap, not faulted in again for every hash
    # (adapters/malloc.py).
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")
    settings = _settings()
    blocks = process_hash_concurrency(settings)
    tunables = argon2_block_tunables(settings.argon2_memory_kib, blocks)
    os.environ["GLIBC_TUNABLES"] = with_tunables(os.environ.get("GLIBC_TUNABLES", ""), tunables)
    # This process has loaded the whole command line; uvicorn, which only supervises the
    # workers, takes its place fresh (same process id, so signals reach it), smaller by
    # the 25 MiB of modules it never uses.
    os.execv(  # noqa: S606 - our own interpreter, fixed arguments
        sys.executable,
        [
            sys.executable,
            "-P",  # never import from the working directory (python -m would put it first)
            "-m",
            "uvicorn",
            "securelogin.web.app:app_from_environment",
            "--factory",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--no-proxy-headers",
            "--timeout-keep-alive",
            "5",
            "--log-level",
            "info",
        ],
    )


def _check_schema_before_serving(settings: Settings) -> None:
    """Refuse to serve a database without this version's schema (every request would fail).
    One out of reach is served all the same: the service answers 503 until it is back."""
    try:
        check_schema(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    except SecureLoginError:
        click.echo(
            "warning: the database cannot be reached, so its schema was not checked; "
            "requests answer 503 until it can be",
            err=True,
        )


@cli.group()
def tokens() -> None:
    """Staff bearer tokens."""


@tokens.command("create")
@click.option("--role", required=True, type=click.Choice([r.value for r in StaffRole]))
@click.option("--name", required=True)
def tokens_create(role: str, name: str) -> None:
    """Create a token; it is printed once, alone on the last line."""
    app = _app()
    try:
        token = admin.create_staff_token(
            app.context, name=name, role=StaffRole(role), caller=CLI_CALLER
        )
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()
    click.echo(f"Created a {role} token for {name}. It is shown only now:")
    click.echo(token)


@tokens.command("revoke")
@click.option("--name", required=True)
@click.option(
    "--role",
    type=click.Choice([r.value for r in StaffRole]),
    help="Only the tokens of this role (default: every token of NAME).",
)
def tokens_revoke(name: str, role: str | None) -> None:
    """Revoke every token of NAME: refused at once by the API and the console (audited)."""
    app = _app()
    try:
        revoked = admin.revoke_staff_tokens(
            app.context, name=name, role=StaffRole(role) if role else None, caller=CLI_CALLER
        )
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()
    for member in revoked:
        click.echo(f"Revoked the {member.role} token of {member.name} (staff {member.staff_id}).")


@cli.group("secrets")
def secrets_group() -> None:
    """The key that encrypts secrets at rest."""


@secrets_group.command("generate")
def secrets_generate() -> None:
    """Print a new value for SECURELOGIN_SECRET_KEY alone on the last line."""
    click.echo(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"))


@secrets_group.command("rotate")
@click.option(
    "--generate",
    is_flag=True,
    help="Make a new key, re-seal everything under it, print it on the last line.",
)
def secrets_rotate(generate: bool) -> None:
    """Re-seal every secret at rest under the current key (or a new one with --generate).

    Without --generate: set SECURELOGIN_SECRET_KEY to the new key and
    SECURELOGIN_OLD_SECRET_KEYS to the old one(s), then run this; see docs/operations.md.
    On the embedded SQLite default, --generate rotates the key file while servers run.
    """
    settings = _settings()
    app = _app(settings)
    key_file = secret_key_file(settings) if not settings.secret_key else None
    try:
        if not generate:
            resealed = reseal_all(app.context, app.context.box, CLI_CALLER)
            click.echo(f"re-sealed {resealed} under the current key")
            if key_file is not None and len(read_key_texts(key_file)) > 1:
                click.echo(f"the older keys in {key_file} (after its first line) may be removed")
            if settings.old_secret_keys:
                click.echo("SECURELOGIN_OLD_SECRET_KEYS may be removed (then restart the servers)")
            return
        key_text = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
        pending = _stage_key(key_file, key_text)
        resealed = reseal_all(app.context, AesGcmSecretBox(parse_key(key_text)), CLI_CALLER)
        if key_file is not None and pending is not None:
            pending.replace(key_file)
            click.echo(f"re-sealed {resealed}; the new key is first in {key_file}")
            click.echo("running servers read it there; the old key stays below it until removed")
        else:
            click.echo(f"re-sealed {resealed} under a new key that running servers do not hold:")
            click.echo(
                "restart every server now with SECURELOGIN_SECRET_KEY set to it and the old "
                "key in SECURELOGIN_OLD_SECRET_KEYS, then run secrets rotate once more"
            )
        click.echo(key_text)
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()


def _stage_key(key_file: Path | None, key_text: str) -> Path | None:
    """Write the new key file beside the old one before any secret moves, so that no key is
    ever lost: the new key first, then every key of the old file and of a staged file left
    by a rotation that did not finish (its secrets may be sealed under it)."""
    if key_file is None:
        return None
    pending = staged_key_file(key_file)
    kept = [*read_key_texts(key_file)]
    if pending.exists():
        kept += read_key_texts(pending)
    write_key_file(pending, list(dict.fromkeys([key_text, *kept])))
    return pending


@cli.group()
def mail() -> None:
    """The notification outbox (R6.7)."""


@mail.command("flush")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def mail_flush(limit: int) -> None:
    """Send the pending e-mails (SMTP if SECURELOGIN_SMTP_URL is set, else the mail folder)."""
    settings = _settings()
    try:
        sender = mail_sender_from(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    app = _app(settings)
    try:
        report = flush_outbox(app.context, sender, limit, max(1, settings.mail_max_attempts))
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()
    click.echo(f"sent {report.sent}, failed {report.failed}, given up {report.given_up}")
    if report.failed or report.given_up:
        sys.exit(1)


@cli.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Exit 0 if the chain is intact; otherwise name the first bad record."""
    app = _app()
    try:
        report = audit.verify_audit_chain(app.context)
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()
    if not report.intact:
        click.echo(f"audit chain BROKEN at record {report.broken_at}: {report.reason}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {report.records} records")


@cli.group()
def users() -> None:
    """Users."""


@users.command("create")
@click.argument("json_file", type=click.File("r"), default="-")
def users_create(json_file: Any) -> None:
    """Create a user from a JSON body, as POST /api/v1/admin/users takes (stdin by default)."""
    try:
        details = _user_details(json.load(json_file))
    except (ValueError, KeyError, TypeError) as error:
        raise Refusal(InvalidRequestError(f"The JSON body is not valid: {error}")) from None
    app = _app()
    try:
        username = admin.create_user(app.context, details, CLI_CALLER)
    except SecureLoginError as error:
        raise Refusal(error) from None
    finally:
        app.dispose()
    click.echo(username)


def _user_details(body: dict[str, Any]) -> admin.UserDetails:
    questions = [
        QuestionAnswer(str(q["question"]), str(q["answer"])) for q in body["security_questions"]
    ]
    return admin.UserDetails(
        username=body.get("username"),
        prefix=body.get("prefix"),
        password=str(body["password"]),
        email=str(body["email"]),
        country=str(body["country"]),
        full_name=str(body["full_name"]),
        security_questions=questions,
    )


def main() -> None:
    cli(prog_name="securelogin")
