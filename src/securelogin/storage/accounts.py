"""Users and staff in SQL.

A user's read by name may be sent ahead (``read_ahead``), with the statement the
transaction sends next: on PostgreSQL a password login's admission reads the stored hash
in the round trip that locks and tallies, not in one of its own (services/attempts.py).
Any write through this repository forgets what was read ahead."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError

from securelogin.domain.accounts import NewUser, StaffMember, StaffRole, User
from securelogin.domain.errors import ConflictError
from securelogin.storage.prepared import Ahead, Prepared
from securelogin.storage.tables import security_answers, staff, users

# Looked up by every login: built once.
_USERNAME: BindParameter[str] = bindparam("p_username")
_USER_ID: BindParameter[int] = bindparam("p_user_id")
_BY_USERNAME = Prepared(select(users).where(users.c.username == _USERNAME))
_BY_ID = select(users).where(users.c.user_id == _USER_ID)


class SqlUserRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._ahead: dict[str, Ahead] = {}  # reads of get sent ahead, by username

    def add(self, user: NewUser) -> int:
        self._ahead.clear()
        try:
            return int(
                self._c.execute(
                    users.insert()
                    .values(
                        username=user.username,
                        password_hash=user.password_hash,
                        email=user.email,
                        country=user.country,
                        full_name=user.full_name,
                        created_at=user.created_at,
                    )
                    .returning(users.c.user_id)
                ).scalar_one()
            )
        except IntegrityError as error:
            raise ConflictError(message="That username is taken.") from error

    def read_ahead(self, username: str) -> None:
        self._ahead[username] = _BY_USERNAME.ahead(self._c, {"p_username": username})

    def get(self, username: str) -> User | None:
        ahead = self._ahead.pop(username, None)
        found = ahead.result() if ahead else _BY_USERNAME.run(self._c, {"p_username": username})
        row = found.first()
        return _user(row) if row else None

    def get_by_id(self, user_id: int) -> User | None:
        row = self._c.execute(_BY_ID, {"p_user_id": user_id}).first()
        return _user(row) if row else None

    def exists(self, username: str) -> bool:
        return bool(
            self._c.execute(select(exists().where(users.c.username == username))).scalar_one()
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self._ahead.clear()
        self._c.execute(
            update(users).where(users.c.user_id == user_id).values(password_hash=password_hash)
        )

    def add_security_answers(self, user_id: int, answers: list[tuple[str, str]]) -> None:
        self._ahead.clear()
        self._c.execute(
            security_answers.insert(),
            [
                {"user_id": user_id, "question": question, "answer_hash": answer_hash}
                for question, answer_hash in answers
            ],
        )

    def security_answers(self, user_id: int) -> list[tuple[int, str, str]]:
        rows = self._c.execute(
            select(security_answers)
            .where(security_answers.c.user_id == user_id)
            .order_by(security_answers.c.answer_id)
        )
        return [(row.answer_id, row.question, row.answer_hash) for row in rows]

    def by_email(self, email: str) -> list[User]:
        rows = self._c.execute(
            select(users).where(users.c.email == email).order_by(users.c.user_id)
        )
        return [_user(row) for row in rows]

    def lock(self, user_id: int) -> None:
        self._ahead.clear()
        self._c.execute(
            select(users.c.user_id).where(users.c.user_id == user_id).with_for_update()
        ).first()


class SqlStaffRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, *, name: str, role: StaffRole, token_digest: str, now: datetime) -> int:
        return int(
            self._c.execute(
                staff.insert()
                .values(name=name, role=str(role), token_digest=token_digest, created_at=now)
                .returning(staff.c.staff_id)
            ).scalar_one()
        )

    def by_token(self, token_digest: str) -> StaffMember | None:
        row = self._c.execute(
            select(staff).where(staff.c.token_digest == token_digest, staff.c.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        return StaffMember(row.staff_id, row.name, StaffRole(row.role))

    def revoke(self, *, name: str, role: StaffRole | None, now: datetime) -> list[StaffMember]:
        statement = update(staff).where(staff.c.name == name, staff.c.revoked_at.is_(None))
        if role is not None:
            statement = statement.where(staff.c.role == str(role))
        rows = self._c.execute(
            statement.values(revoked_at=now).returning(staff.c.staff_id, staff.c.name, staff.c.role)
        ).all()
        members = [StaffMember(row.staff_id, row.name, StaffRole(row.role)) for row in rows]
        return sorted(members, key=lambda member: member.staff_id)


def _user(row: Any) -> User:
    return User(
        row.user_id,
        row.username,
        row.password_hash,
        row.email,
        row.country,
        row.full_name,
        row.created_at,
    )
