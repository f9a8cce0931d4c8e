"""Mail senders: SMTP when ``SECURELOGIN_SMTP_URL`` is set, a local mail folder otherwise."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from securelogin.services.mail import MessageRefusedError, UnbuildableMessageError

SMTP_TIMEOUT_SECONDS = 10
# The server answered *this message* with a refusal: its recipient, or its data.
_REFUSALS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)


def _permanent(error: smtplib.SMTPException) -> bool:
    """A 5xx answer (RFC 5321 §4.2.1); a 4xx one says "try again later" (greylisting)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
    else:
        codes = [getattr(error, "smtp_code", 0)]
    return bool(codes) and all(code >= 500 for code in codes)


def _message(sender: str, to_address: str, subject: str, body: str) -> EmailMessage:
    """The message, or ``UnbuildableMessageError``: the stdlib's header parser raises what it
    likes on some addresses (``a@[b``: AttributeError), and may read one as several."""
    message = EmailMessage()
    message["From"] = sender
    try:
        message["To"] = to_address
        recipients = [address.addr_spec for address in message["To"].addresses]
    except Exception as error:  # whatever the parser raises, it is this address's fault
        raise UnbuildableMessageError(type(error).__name__) from error
    if recipients != [to_address]:
        raise UnbuildableMessageError("AddressReadOtherwise")
    message["Subject"] = subject
    message.set_content(body)
    return message


class SmtpSender:
    """``smtp://user:password@host:port`` (STARTTLS when offered) or ``smtps://…``."""

    def __init__(self, url: str, from_address: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SECURELOGIN_SMTP_URL must look like smtp://host:port")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._from = from_address

    def send(self, to_address: str, subject: str, body: str) -> None:
        message = _message(self._from, to_address, subject, body)
        smtp_class = smtplib.SMTP_SSL if self._tls else smtplib.SMTP
        with smtp_class(self._host, self._port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if not self._tls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if self._user and self._password:
                smtp.login(self._user, self._password)
            try:
                smtp.send_message(message)
            except _REFUSALS as error:
                if not _permanent(error):
                    raise  # temporary: an OSError like an outage, never counted as a refusal
                raise MessageRefusedError(type(error).__name__) from error


class MailFolderSender:
    """Writes each message as an ``.eml`` file (the default without SMTP)."""

    def __init__(self, folder: Path, from_address: str) -> None:
        self._folder = folder
        self._from = from_address

    def send(self, to_address: str, subject: str, body: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        message = _message(self._from, to_address, subject, body)
        name = f"{time.time_ns()}.eml"
        (self._folder / name).write_bytes(message.as_bytes())
