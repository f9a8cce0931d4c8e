"""Sessions and login attempts in SQL."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, select, update

from securelogin.domain.login import FactorKind, LoginAttempt, OfferedFactor
from securelogin.domain.sessions import Access, Platform
from securelogin.services.ports import StoredSession
from securelogin.storage.tables import login_attempts, sessions, users

# The statements of every login, built once (building costs more than executing).
_ADD_SESSION = sessions.insert().returning(sessions.c.session_id)
_ADD_ATTEMPT = login_attempts.insert()
_LOGIN_ID: BindParameter[str] = bindparam("p_login_id")
_NOW: BindParameter[datetime] = bindparam("p_now")
_OPEN = (
    login_attempts.c.login_id == _LOGIN_ID,
    login_attempts.c.used_at.is_(None),
    login_attempts.c.expires_at > _NOW,
)
_PEEK = select(login_attempts.c.login_id).where(*_OPEN)
_TAKE = update(login_attempts).where(*_OPEN).values(used_at=_NOW)
_LOAD = (
    select(login_attempts, users.c.username)
    .join(users, users.c.user_id == login_attempts.c.user_id)
    .where(login_attempts.c.login_id == _LOGIN_ID)
)


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
    ) -> int:
        return int(
            self._c.execute(
                _ADD_SESSION,
                {
                    "token_digest": token_digest,
                    "user_id": user_id,
                    "platform": str(platform),
                    "access": str(access),
                    "factor_kind": factor_kind,
                    "credential_ref": credential_ref,
                    "created_at": now,
                    "last_seen_at": now,
                },
            ).scalar_one()
        )

    def get(self, token_digest: str) -> StoredSession | None:
        row = self._c.execute(
            select(sessions, users.c.username)
            .join(users, users.c.user_id == sessions.c.user_id)
            .where(sessions.c.token_digest == token_digest)
        ).first()
        return _session(row._mapping) if row else None

    def touch(self, session_id: int, now: datetime) -> None:
        self._c.execute(
            update(sessions).where(sessions.c.session_id == session_id).values(last_seen_at=now)
        )

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
        return [_session(row._mapping) for row in self._c.execute(query)]

    def end_all(self, user_id: int, now: datetime) -> int:
        return int(
            self._c.execute(
                update(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            ).rowcount
        )

    def end_made_with(self, user_id: int, factor_kinds: list[str], now: datetime) -> int:
        return int(
            self._c.execute(
                update(sessions)
                .where(
                    sessions.c.user_id == user_id,
                    sessions.c.ended_at.is_(None),
                    sessions.c.factor_kind.in_(factor_kinds),
                )
                .values(ended_at=now)
            ).rowcount
        )


class SqlLoginAttemptRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, attempt: LoginAttempt) -> None:
        self._c.execute(
            _ADD_ATTEMPT,
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
        row = self._c.execute(_PEEK, {"p_login_id": login_id, "p_now": now}).first()
        return self._load(login_id) if row else None

    def take(self, login_id: str, now: datetime) -> LoginAttempt | None:
        """Mark used and return, in one guarded UPDATE: only one taker can ever win."""
        taken = self._c.execute(_TAKE, {"p_login_id": login_id, "p_now": now}).rowcount
        if taken != 1:
            return None
        return self._load(login_id)

    def _load(self, login_id: str) -> LoginAttempt:
        row = self._c.execute(_LOAD, {"p_login_id": login_id}).one()._mapping
        factors = tuple(_factor(f) for f in json.loads(row["factors"]))
        return LoginAttempt(
            row["login_id"],
            row["user_id"],
            row["username"],
            Platform(row["platform"]),
            row["created_at"],
            row["expires_at"],
            factors,
        )


def _session(row: Any) -> StoredSession:
    return StoredSession(
        row["session_id"],
        row["token_digest"],
        row["user_id"],
        row["username"],
        Platform(row["platform"]),
        Access(row["access"]),
        row["factor_kind"],
        row["credential_ref"],
        row["created_at"],
        row["last_seen_at"],
        row["ended_at"],
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
