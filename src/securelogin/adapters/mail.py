"""Mail senders: SMTP when ``SECURELOGIN_SMTP_URL`` is set, a local mail folder otherwise."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

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


class StartTlsNotOfferedError(OSError):
    """The server did not offer STARTTLS where it is required: nothing was sent, no
    credential either. Not this message's fault (the server's settings, or someone on the
    path who removed STARTTLS from the EHLO reply): it stays pending, as in an outage."""


STARTTLS_MODES = ("required", "when-offered")


class SmtpSender:
    """``smtps://…`` (TLS from the start) or ``smtp://[user:password@]host:port``, which
    upgrades with STARTTLS: required when a user and password are given (they are never
    sent in the clear), otherwise used when offered unless ``?starttls=required``."""

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
        self._require_starttls = self._starttls_required(parse_qs(parts.query))

    def _starttls_required(self, options: dict[str, list[str]]) -> bool:
        unknown = sorted(set(options) - {"starttls"})
        if unknown:
            raise ValueError(f"SECURELOGIN_SMTP_URL: unknown option {unknown[0]}")
        modes = options.get("starttls", [])
        if len(modes) > 1 or not set(modes) <= set(STARTTLS_MODES):
            raise ValueError("SECURELOGIN_SMTP_URL: starttls is required or when-offered")
        if modes and self._tls:
            raise ValueError("SECURELOGIN_SMTP_URL: smtps:// is TLS from the start, no starttls")
        credentials = bool(self._user and self._password)
        if credentials and modes == ["when-offered"]:
            raise ValueError(
                "SECURELOGIN_SMTP_URL: a user and password are sent only after STARTTLS"
            )
        return not self._tls and (credentials or modes == ["required"])

    def send(self, to_address: str, subject: str, body: str) -> None:
        message = _message(self._from, to_address, subject, body)
        smtp_class = smtplib.SMTP_SSL if self._tls else smtplib.SMTP
        with smtp_class(self._host, self._port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if not self._tls:
                smtp.ehlo_or_helo_if_needed()  # has_extn knows only what an EHLO told
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                elif self._require_starttls:
                    raise StartTlsNotOfferedError("the server did not offer STARTTLS")
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
