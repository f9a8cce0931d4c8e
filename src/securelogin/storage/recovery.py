"""Temporary credentials, verifications, reset codes and the outbox, in SQL.

Single-use and state changes are guarded UPDATEs (``WHERE used_at IS NULL`` …): of two
racing requests, exactly one sees ``rowcount == 1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, desc, exists, select, update

from securelogin.domain.online_cards import OnlineCard
from securelogin.services.ports import OutboxMessage, StoredPasscode, StoredVerification
from securelogin.storage.prepared import Prepared
from securelogin.storage.tables import (
    online_cards,
    outbox,
    reset_codes,
    temporary_passcodes,
    verifications,
)

# Looked up by every login that plans a second factor: built once.
_OWNER: BindParameter[int] = bindparam("p_user_id")
_LATEST_PASSCODE = Prepared(
    select(temporary_passcodes)
    .where(temporary_passcodes.c.user_id == _OWNER)
    .order_by(desc(temporary_passcodes.c.issued_at))
    .limit(1)
)
_CURRENT_CARD = Prepared(
    select(online_cards)
    .where(online_cards.c.user_id == _OWNER, online_cards.c.ended_at.is_(None))
    .order_by(desc(online_cards.c.issued_at))
    .limit(1)
)


class SqlPasscodeRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, passcode: StoredPasscode) -> None:
        self._c.execute(
            temporary_passcodes.insert().values(
                passcode_id=passcode.passcode_id,
                user_id=passcode.user_id,
                code_hash=passcode.code_hash,
                issued_at=passcode.issued_at,
                issued_by=passcode.issued_by,
                ended_at=passcode.ended_at,
            )
        )

    def latest(self, user_id: int) -> StoredPasscode | None:
        row = _LATEST_PASSCODE.run(self._c, {"p_user_id": user_id}).first()
        if row is None:
            return None
        return StoredPasscode(
            row.passcode_id, row.user_id, row.code_hash, row.issued_at, row.issued_by, row.ended_at
        )

    def end_all(self, user_id: int, at: datetime, reason: str) -> int:
        return int(
            self._c.execute(
                update(temporary_passcodes)
                .where(
                    temporary_passcodes.c.user_id == user_id,
                    temporary_passcodes.c.ended_at.is_(None),
                )
                .values(ended_at=at, ended_reason=reason)
            ).rowcount
        )


class SqlOnlineCardRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, card_id: str, user_id: int, values_sealed: str, issued_at: datetime) -> None:
        self._c.execute(
            online_cards.insert().values(
                card_id=card_id, user_id=user_id, values_sealed=values_sealed, issued_at=issued_at
            )
        )

    def get(self, card_id: str) -> OnlineCard | None:
        row = self._c.execute(select(online_cards).where(online_cards.c.card_id == card_id)).first()
        return _card(row) if row else None

    def current(self, user_id: int) -> OnlineCard | None:
        row = _CURRENT_CARD.run(self._c, {"p_user_id": user_id}).first()
        return _card(row) if row else None

    def values_sealed(self, card_id: str) -> str:
        return str(
            self._c.execute(
                select(online_cards.c.values_sealed).where(online_cards.c.card_id == card_id)
            ).scalar_one()
        )

    def set_activation_challenge(self, card_id: str, challenge: str | None) -> None:
        self._c.execute(
            update(online_cards)
            .where(online_cards.c.card_id == card_id)
            .values(activation_challenge=challenge)
        )

    def take_activation_challenge(self, card_id: str) -> str | None:
        current = self._c.execute(
            select(online_cards.c.activation_challenge).where(online_cards.c.card_id == card_id)
        ).scalar_one_or_none()
        if current is None:
            return None
        taken = self._c.execute(
            update(online_cards)
            .where(
                online_cards.c.card_id == card_id,
                online_cards.c.activation_challenge == current,
            )
            .values(activation_challenge=None)
        ).rowcount
        return str(current) if taken == 1 else None

    def activate(self, card_id: str, at: datetime, expires_at: datetime) -> bool:
        return bool(
            self._c.execute(
                update(online_cards)
                .where(
                    online_cards.c.card_id == card_id,
                    online_cards.c.activated_at.is_(None),
                    online_cards.c.ended_at.is_(None),
                )
                .values(activated_at=at, expires_at=expires_at)
            ).rowcount
            == 1
        )

    def end_all(self, user_id: int, at: datetime, reason: str) -> int:
        return int(
            self._c.execute(
                update(online_cards)
                .where(
                    online_cards.c.user_id == user_id,
                    online_cards.c.ended_at.is_(None),
                )
                .values(ended_at=at, ended_reason=reason)
            ).rowcount
        )

    def all_secrets(self) -> Iterator[tuple[str, str]]:
        rows = self._c.execute(
            select(online_cards.c.card_id, online_cards.c.values_sealed).order_by(
                online_cards.c.card_id
            )
        )
        for row in rows.all():
            yield row.card_id, row.values_sealed

    def reseal(self, card_id: str, values_sealed: str) -> None:
        self._c.execute(
            update(online_cards)
            .where(online_cards.c.card_id == card_id)
            .values(values_sealed=values_sealed)
        )


class SqlVerificationRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, verification: StoredVerification) -> None:
        self._c.execute(
            verifications.insert().values(
                verification_id=verification.verification_id,
                staff_id=verification.staff_id,
                user_id=verification.user_id,
                answer_id=verification.answer_id,
                by_email=int(verification.by_email),
                started_at=verification.started_at,
            )
        )

    def get(self, verification_id: str) -> StoredVerification | None:
        row = self._c.execute(
            select(verifications).where(verifications.c.verification_id == verification_id)
        ).first()
        return _verification(row) if row else None

    def settle(self, verification_id: str, outcome: str, at: datetime) -> bool:
        return bool(
            self._c.execute(
                update(verifications)
                .where(
                    verifications.c.verification_id == verification_id,
                    verifications.c.outcome.is_(None),
                )
                .values(outcome=outcome, answered_at=at)
            ).rowcount
            == 1
        )

    def failures_since(self, user_id: int, since: datetime) -> list[datetime]:
        rows = self._c.execute(
            select(verifications.c.answered_at).where(
                verifications.c.user_id == user_id,
                verifications.c.outcome == "failed",
                verifications.c.answered_at >= since,
            )
        )
        return [row.answered_at for row in rows]

    def newest_unanswered(self, user_id: int, since: datetime) -> StoredVerification | None:
        # A user has few verifications: ix_verifications_user_id finds them all.
        later = verifications.alias("answered_later")
        answered_later = exists().where(
            later.c.user_id == user_id, later.c.answered_at > verifications.c.started_at
        )
        row = self._c.execute(
            select(verifications)
            .where(
                verifications.c.user_id == user_id,
                verifications.c.outcome.is_(None),
                verifications.c.started_at >= since,
                ~answered_later,
            )
            .order_by(desc(verifications.c.started_at))
            .limit(1)
        ).first()
        return _verification(row) if row else None


class SqlResetCodeRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(
        self,
        code_id: str,
        user_id: int,
        code_hash: str,
        issued_at: datetime,
        expires_at: datetime,
        issued_by: str,
    ) -> None:
        self._c.execute(
            reset_codes.insert().values(
                code_id=code_id,
                user_id=user_id,
                code_hash=code_hash,
                issued_at=issued_at,
                expires_at=expires_at,
                issued_by=issued_by,
            )
        )

    def newest_open(self, user_id: int, now: datetime) -> tuple[str, str] | None:
        row = self._c.execute(
            select(reset_codes.c.code_id, reset_codes.c.code_hash)
            .where(
                reset_codes.c.user_id == user_id,
                reset_codes.c.used_at.is_(None),
                reset_codes.c.ended_at.is_(None),
                reset_codes.c.expires_at > now,
            )
            .order_by(desc(reset_codes.c.issued_at), desc(reset_codes.c.code_id))
            .limit(1)
        ).first()
        return (row.code_id, row.code_hash) if row else None

    def use(self, code_id: str, at: datetime) -> bool:
        return bool(
            self._c.execute(
                update(reset_codes)
                .where(
                    reset_codes.c.code_id == code_id,
                    reset_codes.c.used_at.is_(None),
                    reset_codes.c.ended_at.is_(None),
                    reset_codes.c.expires_at > at,
                )
                .values(used_at=at)
            ).rowcount
            == 1
        )

    def end_open(self, user_id: int, at: datetime) -> int:
        result = self._c.execute(
            update(reset_codes)
            .where(
                reset_codes.c.user_id == user_id,
                reset_codes.c.used_at.is_(None),
                reset_codes.c.ended_at.is_(None),
            )
            .values(ended_at=at)
        )
        return int(result.rowcount)


class SqlOutbox:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, user_id: int, to_address: str, subject: str, body: str, now: datetime) -> None:
        self._c.execute(
            outbox.insert().values(
                user_id=user_id,
                to_address=to_address,
                subject=subject,
                body=body,
                created_at=now,
                attempts=0,
            )
        )

    def pending(self, limit: int) -> list[OutboxMessage]:
        rows = self._c.execute(
            select(outbox)
            .where(outbox.c.sent_at.is_(None), outbox.c.given_up_at.is_(None))
            .order_by(outbox.c.attempts, outbox.c.message_id)
            .limit(limit)
        )
        return [
            OutboxMessage(
                r.message_id, r.user_id, r.to_address, r.subject, r.body, r.attempts, r.refusals
            )
            for r in rows
        ]

    def mark_sent(self, message_id: int, at: datetime) -> None:
        self._c.execute(
            update(outbox)
            .where(
                outbox.c.message_id == message_id,
                outbox.c.sent_at.is_(None),
                outbox.c.given_up_at.is_(None),  # an overlapping flush gave it up meanwhile
            )
            .values(sent_at=at, attempts=outbox.c.attempts + 1, last_error=None)
        )

    def mark_failed(self, message_id: int, error: str, *, refused: bool) -> None:
        self._c.execute(
            update(outbox)
            .where(outbox.c.message_id == message_id)
            .values(
                attempts=outbox.c.attempts + 1,
                refusals=outbox.c.refusals + (1 if refused else 0),
                last_error=error[:200],
            )
        )

    def give_up(self, message_id: int, at: datetime, error: str) -> bool:
        result = self._c.execute(
            update(outbox)
            .where(
                outbox.c.message_id == message_id,
                outbox.c.sent_at.is_(None),
                outbox.c.given_up_at.is_(None),
            )
            .values(given_up_at=at, attempts=outbox.c.attempts + 1, last_error=error[:200])
        )
        return bool(result.rowcount == 1)


def _verification(row: Any) -> StoredVerification:
    return StoredVerification(
        row.verification_id,
        row.staff_id,
        row.user_id,
        row.answer_id,
        bool(row.by_email),
        row.started_at,
        row.outcome,
        row.answered_at,
    )


def _card(row: Any) -> OnlineCard:
    return OnlineCard(
        row.card_id, row.user_id, row.issued_at, row.activated_at, row.expires_at, row.ended_at
    )
