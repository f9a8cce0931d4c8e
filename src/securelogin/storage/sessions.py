"""Sessions and login attempts in SQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Connection, bindparam, select, update

from securelogin.domain.login import FactorKind, LoginAttempt, OfferedFactor
from securelogin.domain.sessions import Access, Platform
from securelogin.services.ports import StoredSession
from securelogin.storage.prepared import Prepared
from securelogin.storage.tables import login_attempts, sessions, users

# The statements of every login, built once and prepared (storage/prepared.py).
_SESSION_COLUMNS = (
    "token_digest",
    "user_id",
    "platform",
    "access",
    "factor_kind",
    "credential_ref",
    "created_at",
    "last_seen_at",
    "not_after",
)
_ADD_SESSION = Prepared(sessions.insert(), columns=_SESSION_COLUMNS)
_SESSION_BY_DIGEST = Prepared(
    select(sessions, users.c.username)
    .join(users, users.c.user_id == sessions.c.user_id)
    .where(sessions.c.token_digest == bindparam("p_digest"))
)
_TOUCH = Prepared(
    update(sessions)
    .where(sessions.c.session_id == bindparam("p_session"))
    .values(last_seen_at=bindparam("p_now"))
)
_ATTEMPT_COLUMNS = (
    "login_id",
    "user_id",
    "platform",
    "created_at",
    "expires_at",
    "used_at",
    "factors",
)
_ADD_ATTEMPT = Prepared(login_attempts.insert(), columns=_ATTEMPT_COLUMNS)
_LOGIN_ID: BindParameter[str] = bindparam("p_login_id")
_NOW: BindParameter[datetime] = bindparam("p_now")
_OPEN = (
    login_attempts.c.login_id == _LOGIN_ID,
    login_attempts.c.used_at.is_(None),
    login_attempts.c.expires_at > _NOW,
)
_PEEK = Prepared(
    select(login_attempts, users.c.username)
    .join(users, users.c.user_id == login_attempts.c.user_id)
    .where(*_OPEN)
)
_TAKE = Prepared(update(login_attempts).where(*_OPEN).values(used_at=_NOW))


class SqlSessionRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(
        self,
        *,
        token_digest: str,
        user_id: int,
        platform: Platform,
        access: Access,
        factor_kind: str | None,
        credential_ref: str | None,
        now: datetime,
        not_after: datetime | None = None,
    ) -> None:
        _ADD_SESSION.queue(
            self._c,
            {
                "token_digest": token_digest,
                "user_id": user_id,
                "platform": str(platform),
                "access": str(access),
                "factor_kind": factor_kind,
                "credential_ref": credential_ref,
                "created_at": now,
                "last_seen_at": now,
                "not_after": not_after,
            },
        )

    def get(self, token_digest: str) -> StoredSession | None:
        row = _SESSION_BY_DIGEST.run(self._c, {"p_digest": token_digest}).first()
        return _session(row) if row else None

    def touch(self, session_id: int, now: datetime) -> None:
        _TOUCH.queue(self._c, {"p_session": session_id, "p_now": now})

    def end(self, session_id: int, now: datetime) -> None:
        self._c.execute(
            update(sessions)
            .where(sessions.c.session_id == session_id, sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )

    def open_sessions(self, user_id: int, platform: Platform | None) -> list[StoredSession]:
        query = (
            select(sessions, users.c.username)
            .join(users, users.c.user_id == sessions.c.user_id)
            .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
        )
        if platform is not None:
            query = query.where(sessions.c.platform == str(platform))
        return [_session(row) for row in self._c.execute(query)]

    def end_all(self, user_id: int, now: datetime) -> int:
        return self._end(now, sessions.c.user_id == user_id)

    def end_made_with(self, user_id: int, factor_kinds: list[str], now: datetime) -> int:
        return self._end(
            now, sessions.c.user_id == user_id, sessions.c.factor_kind.in_(factor_kinds)
        )

    def end_opened_with(self, user_id: int, credential_refs: list[str], now: datetime) -> int:
        if not credential_refs:
            return 0
        return self._end(
            now, sessions.c.user_id == user_id, sessions.c.credential_ref.in_(credential_refs)
        )

    def _end(self, now: datetime, *which: ColumnElement[bool]) -> int:
        """End the open sessions that match ``which``; how many."""
        ended = update(sessions).where(sessions.c.ended_at.is_(None), *which)
        return int(self._c.execute(ended.values(ended_at=now)).rowcount)


class SqlLoginAttemptRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, attempt: LoginAttempt) -> None:
        _ADD_ATTEMPT.queue(
            self._c,
            {
                "login_id": attempt.login_id,
                "user_id": attempt.user_id,
                "platform": str(attempt.platform),
                "created_at": attempt.created_at,
                "expires_at": attempt.expires_at,
                "used_at": None,
                "factors": json.dumps([_factor_json(f) for f in attempt.factors]),
            },
        )

    def peek(self, login_id: str, now: datetime) -> LoginAttempt | None:
        """The open attempt, without taking it (to check a response's form first)."""
        row = _PEEK.run(self._c, {"p_login_id": login_id, "p_now": now}).first()
        if row is None:
            return None
        return LoginAttempt(
            row.login_id,
            row.user_id,
            row.username,
            Platform(row.platform),
            row.created_at,
            row.expires_at,
            tuple(_factor(f) for f in json.loads(row.factors)),
        )

    def take_after_next(self, login_id: str, now: datetime) -> Callable[[], bool]:
        """Mark the open attempt used, in one guarded UPDATE (only one taker can ever win),
        sent after the transaction's next statement, in its round trip on PostgreSQL."""
        taking = _TAKE.queue_returning(self._c, {"p_login_id": login_id, "p_now": now}, after=True)
        return lambda: taking.result().rowcount == 1

    def end_all(self, user_id: int, now: datetime) -> int:
        """Mark every open attempt of the user used: none of them can be completed."""
        return int(
            self._c.execute(
                update(login_attempts)
                .where(login_attempts.c.user_id == user_id, login_attempts.c.used_at.is_(None))
                .values(used_at=now)
            ).rowcount
        )


def _session(row: Any) -> StoredSession:
    return StoredSession(
        row.session_id,
        row.token_digest,
        row.user_id,
        row.username,
        Platform(row.platform),
        Access(row.access),
        row.factor_kind,
        row.credential_ref,
        row.created_at,
        row.last_seen_at,
        row.ended_at,
        row.not_after,
    )


def _factor_json(factor: OfferedFactor) -> dict[str, Any]:
    return {
        "factor_id": factor.factor_id,
        "kind": str(factor.kind),
        "label": factor.label,
        "code": factor.challenge_code,
        "credential_id": factor.credential_id,
        "indices": list(factor.challenge_indices) if factor.challenge_indices else None,
    }


def _factor(data: dict[str, Any]) -> OfferedFactor:
    indices = data.get("indices")
    return OfferedFactor(
        data["factor_id"],
        FactorKind(data["kind"]),
        data["label"],
        data.get("code"),
        (indices[0], indices[1]) if indices else None,
        data.get("credential_id", ""),
    )
