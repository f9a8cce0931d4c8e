"""Delivering the outbox (R6.7): each message is marked sent only after it was handed over.

One message can never hold back the others: every message is tried on its own, and one
that can never be delivered is *given up* (recorded, audited, never tried again):

- at once, when its address is not one we would accept today (rows written before the
  check of domain/email_addresses.py) or the message cannot be built from it;
- when the mail server refuses it for good (its recipient or its content, a 5xx answer:
  ``MessageRefusedError``) for the ``max_attempts``th time. Only such refusals count
  towards that (``refusals``), not the tries an outage or a 4xx "try later" failed.

Any other failure (the server or the mail folder cannot be reached) is not the message's
fault: the message stays pending however long it lasts, and goes out once the server is
back. Messages never tried go before those that failed (``Outbox.pending``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from securelogin.domain.email_addresses import is_deliverable
from securelogin.services.attempts import audit
from securelogin.services.context import Caller, Context
from securelogin.services.ports import OutboxMessage

BATCH = 100
MAX_ATTEMPTS = 10  # ours: a message refused for good 10 times is given up
MAILER = Caller(actor="system:mail")


class UnbuildableMessageError(ValueError):
    """The message cannot be made from what is stored (its address): retrying cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageRefusedError(OSError):
    """The mail server refused this message for good (its recipient or its data: a 5xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MailSender(Protocol):
    def send(self, to_address: str, subject: str, body: str) -> None:
        """Hand one message over; raise ``UnbuildableMessageError``, ``MessageRefusedError``, or any
        other OSError when the server or the folder cannot take it now."""
        ...


@dataclass(frozen=True)
class FlushReport:
    sent: int
    failed: int
    given_up: int = 0


class _Outcome(Enum):
    SENT = "sent"
    FAILED = "failed"
    GIVEN_UP = "given_up"


def flush_outbox(
    ctx: Context, sender: MailSender, limit: int = BATCH, max_attempts: int = MAX_ATTEMPTS
) -> FlushReport:
    """Send pending messages, those never tried first; a message that fails stays pending
    until it is given up (module docstring).

    No transaction is held while talking to the mail server (that would block logins on
    SQLite): messages are read, sent, then marked one by one. Delivery is at least once:
    a crash between sending and marking sends that message again on the next flush.
    """
    with ctx.uow() as uow:
        pending = uow.outbox.pending(limit)
    outcomes = [_deliver(ctx, sender, message, max_attempts) for message in pending]
    return FlushReport(
        outcomes.count(_Outcome.SENT),
        outcomes.count(_Outcome.FAILED),
        outcomes.count(_Outcome.GIVEN_UP),
    )


def _deliver(
    ctx: Context, sender: MailSender, message: OutboxMessage, max_attempts: int
) -> _Outcome:
    if not is_deliverable(message.to_address):
        return _give_up(ctx, message, "invalid_address", "InvalidAddress")
    try:
        sender.send(message.to_address, message.subject, message.body)
    except UnbuildableMessageError as error:
        return _give_up(ctx, message, "unbuildable", error.reason)
    except MessageRefusedError as error:
        if message.refusals + 1 >= max_attempts:
            return _give_up(ctx, message, "refused", error.reason)
        return _mark_failed(ctx, message, error.reason, refused=True)
    except OSError as error:
        return _mark_failed(ctx, message, type(error).__name__, refused=False)
    with ctx.uow() as uow:
        uow.outbox.mark_sent(message.message_id, ctx.clock.now())
        uow.commit()
    return _Outcome.SENT


def _mark_failed(ctx: Context, message: OutboxMessage, error: str, *, refused: bool) -> _Outcome:
    with ctx.uow() as uow:
        uow.outbox.mark_failed(message.message_id, error, refused=refused)
        uow.commit()
    return _Outcome.FAILED


def _give_up(ctx: Context, message: OutboxMessage, why: str, error: str) -> _Outcome:
    """Never tried again; audited, since the user was not told of a security event."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        if uow.outbox.give_up(message.message_id, now, error):
            user = uow.users.get_by_id(message.user_id)
            audit(
                uow,
                now,
                user.username if user else None,
                MAILER,
                "notification.given_up",
                why,
                {
                    "message_id": message.message_id,
                    "subject": message.subject,
                    "attempts": message.attempts + 1,
                    "error": error,
                },
            )
        uow.commit()
    return _Outcome.GIVEN_UP
