"""Notifications (R6.7): the outbox, and ``securelogin mail flush`` delivering it.

Events are caused over HTTP (TestClient, the application's clock moved by ``clock``) on
SQLite and PostgreSQL; the outbox is then flushed by the command line (click's CliRunner,
configured only by ``SECURELOGIN_*`` variables as an operator would) into a real SMTP
server that the test starts on loopback (aiosmtpd), or into the local mail folder.
No message may hold a secret: not the passcode, the reset code, the password or a card value.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from securelogin.bootstrap import Application
from securelogin.cli.main import cli
from securelogin.services.audit import verify_audit_chain
from securelogin.storage.tables import outbox, users
from tests.clock import FakeClock
from tests.conftest import PASSWORD, TEST_SECRET_KEY, make_user, readable
from tests.interfaces.test_http_agent import (
    DAY,
    HOUR,
    USERNAME,
    Agent,
    bearer,
    enrol_code_card,
    error_of,
    first_step,
    new_agent_token,
    password_only_token,
)

ADDRESS = f"{USERNAME}@example.com"
SENDER = "alerts@broker.example"
NEW_PASSWORD = "Battery7staple"
NOT_YOU = "If this was not you, call Client Services"

# How the sender behaves does not depend on the database: those tests run on SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# ---- a real SMTP server on loopback ------------------------------------------------------


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        return str(self.message.get_content())


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what it accepted; refuses at DATA when told to.

    Its methods run on the controller's thread and finish before the server answers 250,
    and smtplib waits for that answer: once a flush returns, what it sent is here.
    """

    refuse_with: str | None = None
    refuse_addresses: set[str] = field(default_factory=set)
    received: list[Delivered] = field(default_factory=list)
    refused: int = 0

    async def handle_RCPT(  # noqa: N802 (aiosmtpd names its hooks so)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse_addresses:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse_with is not None:
            self.refused += 1
            return self.refuse_with
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    controller: Controller | None = None
    options: dict[str, Any] = field(default_factory=dict)  # aiosmtpd's SMTP(...) parameters

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(Inbox(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stopped_smtp() -> Iterator[SmtpServer]:
    """A port where no SMTP server listens (yet): the test starts it when it likes."""
    server = SmtpServer(Inbox(), free_port())
    try:
        yield server
    finally:
        server.stop()


# ---- the command line, configured from the environment -----------------------------------


def flush(database_url: str, *args: str, **settings: str) -> Result:
    env = {
        "SECURELOGIN_DATABASE_URL": database_url,
        "SECURELOGIN_SECRET_KEY": str(TEST_SECRET_KEY),
        "SECURELOGIN_SMTP_URL": "",
        "SECURELOGIN_MAIL_DIR": "",
        "SECURELOGIN_MAIL_FROM": "",
    }
    env.update({f"SECURELOGIN_{name.upper()}": value for name, value in settings.items()})
    return CliRunner().invoke(cli, ["mail", "flush", *args], env=env, catch_exceptions=False)


def flushed(
    database_url: str,
    sent: int,
    failed: int = 0,
    *args: str,
    given_up: int = 0,
    **settings: str,
) -> Result:
    result = flush(database_url, *args, **settings)
    expected = f"sent {sent}, failed {failed}, given up {given_up}"
    assert expected in result.output, result.output
    assert result.exit_code == (1 if failed or given_up else 0), result.output
    return result


@dataclass(frozen=True)
class OutboxRow:
    to_address: str
    subject: str
    body: str
    sent: bool
    attempts: int
    last_error: str | None
    given_up: bool = False


def outbox_rows(application: Application) -> list[OutboxRow]:
    with application.engine.connect() as connection:
        rows = connection.execute(select(outbox).order_by(outbox.c.message_id)).all()
    return [
        OutboxRow(
            r.to_address,
            r.subject,
            r.body,
            r.sent_at is not None,
            r.attempts,
            r.last_error,
            r.given_up_at is not None,
        )
        for r in rows
    ]


def audited(application: Application, action: str) -> list[Any]:
    """The audit events of ``action``, after checking that the chain is intact (R9.2)."""
    ctx = application.context
    assert verify_audit_chain(ctx).intact
    with ctx.uow() as uow:
        return [r.event for r in readable(uow.audit.records()) if r.event.action == action]


def set_stored_address(application: Application, username: str, address: str) -> None:
    """An address written before the strict check (domain/email_addresses.py) existed."""
    with application.engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == username).values(email=address))


def subjects(application: Application) -> list[str]:
    return [row.subject for row in outbox_rows(application)]


def assert_tells_no_secret(text: str, *secrets: str) -> None:
    for secret in (PASSWORD, NEW_PASSWORD, *secrets):
        assert secret not in text, f"a secret is in the message: {text!r}"


def card_secrets(values: dict[str, str]) -> list[str]:
    """What would give a card away: values of neighbouring indices typed together.

    (One 3-character value alone may well occur in a serial number or the text by chance.)
    """
    return [values[str(i)] + values[str(i + 1)] for i in range(1, 100)]


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USERNAME)


@pytest.fixture
def agent(client: TestClient, application: Application, user: str) -> Agent:
    return Agent(client, new_agent_token(application, "amy"))


# ---- which events write a message, in their own transaction ------------------------------


def test_a_new_user_has_no_message(application: Application, user: str) -> None:
    assert outbox_rows(application) == []


def test_issuing_a_temporary_passcode_writes_one_message_without_the_passcode(
    application: Application, agent: Agent, clock: FakeClock
) -> None:
    passcode = agent.passcode()
    (row,) = outbox_rows(application)
    assert row.to_address == ADDRESS
    assert row.subject == "A temporary passcode was issued for your account"
    assert clock.now().strftime("%Y-%m-%d %H:%M UTC") in row.body
    assert NOT_YOU in row.body
    assert not row.sent and row.attempts == 0
    assert_tells_no_secret(row.subject + row.body, passcode)


def test_a_refused_passcode_writes_no_message(
    application: Application, agent: Agent, clock: FakeClock
) -> None:
    agent.passcode()
    clock.advance(HOUR)
    error_of(agent.issue_passcode(agent.verify()), 409, "consecutive_temporary_passcode")
    assert subjects(application) == ["A temporary passcode was issued for your account"]


def test_the_tenth_failed_login_writes_the_lock_message_once(
    client: TestClient, application: Application, user: str, clock: FakeClock
) -> None:
    for _ in range(9):
        error_of(first_step(client, password="Wrong4horse"), 401, "invalid_credentials")
    assert outbox_rows(application) == []
    locked_at = clock.now()
    error_of(first_step(client, password="Wrong4horse"), 401, "invalid_credentials")
    error_of(first_step(client, password="Wrong4horse"), 423, "account_locked")
    error_of(first_step(client), 423, "account_locked")
    (row,) = outbox_rows(application)
    assert row.subject == "Your account is locked"
    assert (locked_at + 24 * HOUR).strftime("%Y-%m-%d %H:%M UTC") in row.body
    assert_tells_no_secret(row.body, "Wrong4horse")


def test_a_password_reset_writes_a_message_without_the_code(
    client: TestClient, application: Application, agent: Agent
) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    assert outbox_rows(application) == []  # giving the code is not a change yet
    wrong = {"username": USERNAME, "reset_code": "WRONGWRONG23", "new_password": NEW_PASSWORD}
    error_of(client.post("/api/v1/password-resets", json=wrong), 401, "invalid_credentials")
    assert outbox_rows(application) == []  # a refused reset tells nothing
    right = {**wrong, "reset_code": code}
    assert client.post("/api/v1/password-resets", json=right).status_code == 204
    (row,) = outbox_rows(application)
    assert row.subject == "Your password was changed"
    assert_tells_no_secret(row.body, code)


def test_marking_a_device_lost_writes_a_message(
    client: TestClient, application: Application, agent: Agent
) -> None:
    device = enrol_code_card(client)
    before = len(outbox_rows(application))
    assert agent.mark(agent.verify(), device["device_id"]).status_code == 200
    rows = outbox_rows(application)
    assert len(rows) == before + 1
    assert rows[-1].subject == "A security device was deactivated"
    assert "code_card" in rows[-1].body
    assert_tells_no_secret(rows[-1].body, *card_secrets(device["provisioning"]["values"]))


def test_ordering_a_device_writes_a_message_without_its_provisioning(
    client: TestClient, application: Application, agent: Agent
) -> None:
    """R6.7: "whenever a device is ... ordered", by the user or by an agent."""
    token = password_only_token(client)
    by_user = client.post(
        "/api/v1/devices/orders",
        headers=bearer(token),
        json={"kind": "code_card", "country": "US"},
    )
    assert by_user.status_code == 201, by_user.text
    by_agent = agent.order(agent.verify())
    assert by_agent.status_code == 201, by_agent.text
    rows = outbox_rows(application)
    assert [r.subject for r in rows] == ["A security device was ordered"] * 2
    for row, order in zip(rows, (by_user.json(), by_agent.json()), strict=True):
        assert_tells_no_secret(row.body, *card_secrets(order["provisioning"]["values"]))


def test_activating_a_device_by_hand_writes_a_message(
    client: TestClient, application: Application, user: str
) -> None:
    """R6.7: "whenever a device is activated" (here by its owner)."""
    device = enrol_code_card(client)
    activated = [
        r for r in outbox_rows(application) if r.subject == "A security device was activated"
    ]
    assert len(activated) == 1
    assert_tells_no_secret(activated[0].body, *card_secrets(device["provisioning"]["values"]))


def test_a_device_activating_by_itself_writes_a_message(
    client: TestClient, application: Application, agent: Agent, clock: FakeClock
) -> None:
    enrol_code_card(client)
    agent.passcode()
    agent.order(agent.verify())
    before = subjects(application).count("A security device was activated")
    clock.advance(14 * DAY)
    first_step(client)  # the login notices the replacement has activated by itself (R5.4)
    assert subjects(application).count("A security device was activated") == before + 1


# ---- delivery over SMTP ------------------------------------------------------------------


def test_flush_delivers_each_message_over_smtp_to_the_user(
    client: TestClient,
    application: Application,
    agent: Agent,
    smtp: SmtpServer,
    database_url: str,
) -> None:
    passcode = agent.passcode()
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    reset = {"username": USERNAME, "reset_code": code, "new_password": NEW_PASSWORD}
    assert client.post("/api/v1/password-resets", json=reset).status_code == 204
    for _ in range(10):
        first_step(client, password="Wrong4horse")
    expected = [
        "A temporary passcode was issued for your account",
        "Your password was changed",
        "Your account is locked",
    ]
    assert subjects(application) == expected

    flushed(database_url, sent=3, smtp_url=smtp.url, mail_from=SENDER)

    assert [d.message["Subject"] for d in smtp.inbox.received] == expected  # oldest first
    for delivered, row in zip(smtp.inbox.received, outbox_rows(application), strict=True):
        assert delivered.rcpt_tos == [ADDRESS]
        assert delivered.mail_from == SENDER
        assert delivered.message["To"] == ADDRESS
        assert delivered.message["From"] == SENDER
        assert delivered.body.replace("\r\n", "\n").strip() == row.body.strip()
        assert "Dear Ada Client" in delivered.body
        assert f"username: {USERNAME}" in delivered.body
        assert NOT_YOU in delivered.body
        assert_tells_no_secret(delivered.message.as_string(), passcode, code)
        assert row.sent and row.attempts == 1 and row.last_error is None


def test_flushing_twice_sends_each_message_once(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    agent.passcode()
    flushed(database_url, sent=1, smtp_url=smtp.url)
    flushed(database_url, sent=0, smtp_url=smtp.url)
    assert len(smtp.inbox.received) == 1
    (row,) = outbox_rows(application)
    assert row.sent and row.attempts == 1


def test_only_new_messages_go_out_on_the_next_flush(
    client: TestClient, application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    agent.passcode()
    flushed(database_url, sent=1, smtp_url=smtp.url)
    for _ in range(10):
        first_step(client, password="Wrong4horse")
    flushed(database_url, sent=1, smtp_url=smtp.url)
    assert [d.message["Subject"] for d in smtp.inbox.received] == [
        "A temporary passcode was issued for your account",
        "Your account is locked",
    ]


@SQLITE_ONLY
def test_a_server_that_is_down_leaves_the_messages_pending_until_it_is_back(
    application: Application, agent: Agent, stopped_smtp: SmtpServer, database_url: str
) -> None:
    agent.passcode()
    result = flushed(database_url, sent=0, failed=1, smtp_url=stopped_smtp.url)
    assert "Traceback" not in result.output
    (row,) = outbox_rows(application)
    assert not row.sent
    assert row.attempts == 1
    assert row.last_error == "ConnectionRefusedError"

    # An outage is not the message's fault: however long it lasts, nothing is given up.
    flushed(database_url, sent=0, failed=1, smtp_url=stopped_smtp.url, mail_max_attempts="1")
    assert outbox_rows(application)[0].attempts == 2
    assert not outbox_rows(application)[0].given_up

    stopped_smtp.start()
    flushed(database_url, sent=1, smtp_url=stopped_smtp.url)
    (delivered,) = stopped_smtp.inbox.received
    assert delivered.rcpt_tos == [ADDRESS]
    (row,) = outbox_rows(application)
    assert row.sent and row.attempts == 3 and row.last_error is None


@SQLITE_ONLY
@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param("451 4.3.0 Try again later", id="temporary"),
        pytest.param("554 5.7.1 Rejected", id="permanent"),
    ],
)
def test_a_server_that_refuses_leaves_the_messages_pending(
    client: TestClient,
    application: Application,
    agent: Agent,
    smtp: SmtpServer,
    database_url: str,
    refusal: str,
) -> None:
    agent.passcode()
    for _ in range(10):
        first_step(client, password="Wrong4horse")
    smtp.inbox.refuse_with = refusal
    result = flushed(database_url, sent=0, failed=2, smtp_url=smtp.url)
    assert "Traceback" not in result.output
    assert smtp.inbox.refused == 2  # each message was tried: one refusal stops no other
    assert smtp.inbox.received == []
    rows = outbox_rows(application)
    assert [(r.sent, r.attempts, r.last_error) for r in rows] == [
        (False, 1, "SMTPDataError"),
        (False, 1, "SMTPDataError"),
    ]

    smtp.inbox.refuse_with = None
    flushed(database_url, sent=2, smtp_url=smtp.url)
    assert len(smtp.inbox.received) == 2
    assert all(r.sent and r.last_error is None for r in outbox_rows(application))


@SQLITE_ONLY
def test_one_refused_message_does_not_hold_back_the_others(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    make_user(application, "fghij456")
    agent.passcode()
    agent.passcode("fghij456")

    smtp.inbox.refuse_addresses = {ADDRESS}
    flushed(database_url, sent=1, failed=1, smtp_url=smtp.url)
    (delivered,) = smtp.inbox.received
    assert delivered.rcpt_tos == ["fghij456@example.com"]
    assert [(r.to_address, r.sent, r.last_error) for r in outbox_rows(application)] == [
        (ADDRESS, False, "SMTPRecipientsRefused"),
        ("fghij456@example.com", True, None),
    ]


@pytest.mark.parametrize(
    "stored", ["a@[b", "a,fghij456@example.com", "ada@localhost", '"ada"@example.com']
)
def test_a_stored_address_we_would_refuse_today_is_given_up_and_holds_back_no_one(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str, stored: str
) -> None:
    """One address the header parser chokes on (``a@[b``: AttributeError in CPython), or
    reads as someone else's, was written before the strict check: the oldest message, it
    must neither stop the flush nor stay first in every later one (R6.7)."""
    make_user(application, "fghij456")
    set_stored_address(application, USERNAME, stored)
    agent.passcode()
    agent.passcode("fghij456")

    flushed(database_url, sent=1, given_up=1, smtp_url=smtp.url)
    (delivered,) = smtp.inbox.received
    assert delivered.rcpt_tos == ["fghij456@example.com"]
    assert [(r.to_address, r.sent, r.given_up, r.last_error) for r in outbox_rows(application)] == [
        (stored, False, True, "InvalidAddress"),
        ("fghij456@example.com", True, False, None),
    ]
    (given_up,) = audited(application, "notification.given_up")
    assert (given_up.actor, given_up.subject, given_up.outcome) == (
        "system:mail",
        USERNAME,
        "invalid_address",
    )
    assert given_up.details["subject"] == "A temporary passcode was issued for your account"

    flushed(database_url, sent=0, smtp_url=smtp.url)
    assert len(smtp.inbox.received) == 1


@SQLITE_ONLY
def test_a_message_the_server_keeps_refusing_is_given_up_after_the_last_attempt(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    agent.passcode()
    smtp.inbox.refuse_addresses = {ADDRESS}  # 550 at RCPT: a permanent refusal
    flushed(database_url, sent=0, failed=1, smtp_url=smtp.url, mail_max_attempts="3")
    flushed(database_url, sent=0, failed=1, smtp_url=smtp.url, mail_max_attempts="3")
    assert audited(application, "notification.given_up") == []
    flushed(database_url, sent=0, given_up=1, smtp_url=smtp.url, mail_max_attempts="3")
    (row,) = outbox_rows(application)
    assert (row.sent, row.given_up, row.attempts, row.last_error) == (
        False,
        True,
        3,
        "SMTPRecipientsRefused",
    )
    (given_up,) = audited(application, "notification.given_up")
    assert given_up.outcome == "refused"
    assert given_up.details["attempts"] == 3

    smtp.inbox.refuse_addresses = set()
    flushed(database_url, sent=0, smtp_url=smtp.url, mail_max_attempts="3")
    assert smtp.inbox.received == []  # given up is never tried again


@SQLITE_ONLY
def test_messages_never_tried_go_before_those_that_failed(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    """Refused messages cannot fill every batch while a new one waits behind them."""
    make_user(application, "fghij456")
    agent.passcode()
    make_user(application, "klmno789")
    agent.passcode("klmno789")
    smtp.inbox.refuse_addresses = {ADDRESS, "klmno789@example.com"}
    flushed(database_url, 0, 2, "--limit", "2", smtp_url=smtp.url)

    agent.passcode("fghij456")  # newer than both refused messages
    flushed(database_url, 1, 1, "--limit", "2", smtp_url=smtp.url)
    (delivered,) = smtp.inbox.received
    assert delivered.rcpt_tos == ["fghij456@example.com"]


@SQLITE_ONLY
def test_a_malformed_smtp_url_is_refused_clearly_and_sends_nothing(
    application: Application, agent: Agent, database_url: str
) -> None:
    agent.passcode()
    result = flush(database_url, smtp_url="http://127.0.0.1:25")
    assert result.exit_code != 0
    assert "SECURELOGIN_SMTP_URL" in result.output
    assert "Traceback" not in result.output
    (row,) = outbox_rows(application)
    assert not row.sent and row.attempts == 0


# ---- TLS to the SMTP server (adapters/mail.py) -------------------------------------------

MAIL_USER = "notifier"
MAIL_PASSWORD = "Mail4secret"


@dataclass
class Logins:
    """aiosmtpd authenticator: notes every AUTH it is sent (the user, and whether the
    connection was TLS by then), and accepts it."""

    seen: list[tuple[str, bool]] = field(default_factory=list)

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.seen.append((auth_data.login.decode(), session.ssl is not None))
        return AuthResult(success=True)


def with_credentials(server: SmtpServer) -> str:
    return f"smtp://{MAIL_USER}:{MAIL_PASSWORD}@127.0.0.1:{server.port}"


def trusted_tls_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that this process trusts (through
    SSL_CERT_FILE, which ssl.create_default_context reads, as the sender's does)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securelogin test SMTP")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@SQLITE_ONLY
def test_with_credentials_a_server_offering_no_starttls_gets_no_password_and_no_message(
    application: Application, agent: Agent, database_url: str
) -> None:
    """Anyone on the path can strip STARTTLS from the EHLO reply: the server here offers
    AUTH in the clear instead, and is sent neither the login nor the message. Not the
    message's fault: it stays pending however often it fails so, never given up."""
    agent.passcode()
    logins = Logins()
    server = SmtpServer(
        Inbox(), free_port(), options={"authenticator": logins, "auth_require_tls": False}
    )
    server.start()
    try:
        result = flushed(database_url, sent=0, failed=1, smtp_url=with_credentials(server))
        flushed(database_url, 0, 1, smtp_url=with_credentials(server), mail_max_attempts="1")
    finally:
        server.stop()

    assert "Traceback" not in result.output
    assert logins.seen == []  # no AUTH was sent at all
    assert server.inbox.received == []
    (row,) = outbox_rows(application)
    assert (row.sent, row.given_up, row.attempts) == (False, False, 2)
    assert row.last_error == "StartTlsNotOfferedError"


@SQLITE_ONLY
def test_with_credentials_the_login_and_the_message_go_over_starttls(
    application: Application,
    agent: Agent,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STARTTLS is negotiated before AUTH (the server offers AUTH only after it, as it
    should). It never was: STARTTLS was looked for before any EHLO had said it is there."""
    agent.passcode()
    logins = Logins()
    context = trusted_tls_context(tmp_path, monkeypatch)
    server = SmtpServer(
        Inbox(),
        free_port(),
        options={"authenticator": logins, "tls_context": context, "require_starttls": True},
    )
    server.start()
    try:
        flushed(database_url, sent=1, smtp_url=with_credentials(server))
    finally:
        server.stop()

    assert logins.seen == [(MAIL_USER, True)]
    (delivered,) = server.inbox.received
    assert delivered.rcpt_tos == [ADDRESS]


@SQLITE_ONLY
def test_starttls_can_be_required_without_credentials_too(
    application: Application, agent: Agent, smtp: SmtpServer, database_url: str
) -> None:
    agent.passcode()
    flushed(database_url, sent=0, failed=1, smtp_url=f"{smtp.url}?starttls=required")
    assert smtp.inbox.received == []
    assert outbox_rows(application)[0].last_error == "StartTlsNotOfferedError"

    flushed(database_url, sent=1, smtp_url=f"{smtp.url}?starttls=when-offered")  # as without
    assert len(smtp.inbox.received) == 1


@SQLITE_ONLY
@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            f"smtp://{MAIL_USER}:{MAIL_PASSWORD}@127.0.0.1:25?starttls=when-offered",
            id="credentials-when-offered",
        ),
        pytest.param("smtp://127.0.0.1:25?starttls=never", id="unknown-mode"),
        pytest.param("smtp://127.0.0.1:25?tls=off", id="unknown-option"),
        pytest.param("smtps://127.0.0.1:465?starttls=required", id="smtps"),
    ],
)
def test_an_smtp_url_that_would_weaken_or_misstate_tls_is_refused_clearly(
    application: Application, agent: Agent, database_url: str, url: str
) -> None:
    agent.passcode()
    result = flush(database_url, smtp_url=url)
    assert result.exit_code != 0
    assert "SECURELOGIN_SMTP_URL" in result.output
    assert MAIL_PASSWORD not in result.output
    assert "Traceback" not in result.output
    (row,) = outbox_rows(application)
    assert not row.sent and row.attempts == 0


# ---- delivery to the mail folder (no SMTP server configured) ------------------------------


@SQLITE_ONLY
def test_without_an_smtp_url_flush_writes_each_message_to_the_mail_folder(
    client: TestClient,
    application: Application,
    agent: Agent,
    database_url: str,
    tmp_path: Path,
) -> None:
    passcode = agent.passcode()
    for _ in range(10):
        first_step(client, password="Wrong4horse")
    folder = tmp_path / "outgoing"
    flushed(database_url, sent=2, mail_dir=str(folder), mail_from=SENDER)
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 2
    messages = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    assert sorted(str(m["Subject"]) for m in messages) == [
        "A temporary passcode was issued for your account",
        "Your account is locked",
    ]
    for message in messages:
        assert message["To"] == ADDRESS
        assert message["From"] == SENDER
        assert NOT_YOU in str(message.get_content())
        assert_tells_no_secret(message.as_string(), passcode)
    assert all(r.sent for r in outbox_rows(application))

    flushed(database_url, sent=0, mail_dir=str(folder))
    assert len(list(folder.glob("*.eml"))) == 2


@SQLITE_ONLY
def test_the_default_mail_folder_is_var_mail_in_the_working_directory(
    application: Application,
    agent: Agent,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent.passcode()
    monkeypatch.chdir(tmp_path)
    flushed(database_url, sent=1)
    (path,) = (tmp_path / "var" / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["From"] == "securelogin@localhost"


@SQLITE_ONLY
def test_a_mail_folder_that_cannot_be_written_leaves_the_messages_pending(
    application: Application, agent: Agent, database_url: str, tmp_path: Path
) -> None:
    agent.passcode()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be\n")
    result = flushed(database_url, sent=0, failed=1, mail_dir=str(blocker / "mail"))
    assert "Traceback" not in result.output
    (row,) = outbox_rows(application)
    assert not row.sent and row.attempts == 1


@SQLITE_ONLY
def test_nothing_to_send_is_a_success(application: Application, database_url: str) -> None:
    flushed(database_url, sent=0)


@SQLITE_ONLY
def test_a_try_again_later_or_an_outage_never_counts_towards_giving_up(
    application: Application,
    agent: Agent,
    smtp: SmtpServer,
    stopped_smtp: SmtpServer,
    database_url: str,
) -> None:
    agent.passcode()
    smtp.inbox.refuse_with = "451 4.7.1 Greylisted, try again later"  # 4xx: temporary
    for _ in range(3):
        flushed(database_url, sent=0, failed=1, smtp_url=smtp.url, mail_max_attempts="2")
    flushed(database_url, sent=0, failed=1, smtp_url=stopped_smtp.url, mail_max_attempts="2")
    (row,) = outbox_rows(application)
    assert (row.attempts, row.given_up) == (4, False)

    smtp.inbox.refuse_with = "554 5.7.1 Rejected"  # 5xx: the first refusal for good
    flushed(database_url, sent=0, failed=1, smtp_url=smtp.url, mail_max_attempts="2")
    assert not outbox_rows(application)[0].given_up
    flushed(database_url, sent=0, given_up=1, smtp_url=smtp.url, mail_max_attempts="2")
    assert outbox_rows(application)[0].given_up
    assert audited(application, "notification.given_up")[0].details["attempts"] == 6


@SQLITE_ONLY
def test_a_message_given_up_by_an_overlapping_flush_is_not_marked_sent(
    application: Application, agent: Agent
) -> None:
    agent.passcode()
    with application.context.uow() as uow:
        (message,) = uow.outbox.pending(10)
        now = application.context.clock.now()
        assert uow.outbox.give_up(message.message_id, now, "SMTPRecipientsRefused")
        uow.outbox.mark_sent(message.message_id, now)  # the other flush's send finished
        uow.commit()
    (row,) = outbox_rows(application)
    assert row.given_up and not row.sent
