"""Delivering the outbox (R6.7): each message is marked sent only after it was handed over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from securelogin.services.context import Context

BATCH = 100


class MailSender(Protocol):
    def send(self, to_address: str, subject: str, body: str) -> None:
        """Hand one message over, or raise OSError."""
        ...


@dataclass(frozen=True)
class FlushReport:
    sent: int
    failed: int


def flush_outbox(ctx: Context, sender: MailSender, limit: int = BATCH) -> FlushReport:
    """Send pending messages, oldest first; a message that fails stays pending.

    No transaction is held while talking to the mail server (that would block logins on
    SQLite): messages are read, sent, then marked one by one. Delivery is at least once:
    a crash between sending and marking sends that message again on the next flush.
    """
    sent = failed = 0
    with ctx.uow() as uow:
        pending = uow.outbox.pending(limit)
    for message in pending:
        try:
            sender.send(message.to_address, message.subject, message.body)
        except OSError as error:
            with ctx.uow() as uow:
                uow.outbox.mark_failed(message.message_id, type(error).__name__)
                uow.commit()
            failed += 1
            continue
        with ctx.uow() as uow:
            uow.outbox.mark_sent(message.message_id, ctx.clock.now())
            uow.commit()
        sent += 1
    return FlushReport(sent, failed)
