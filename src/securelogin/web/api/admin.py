"""Operators (admin token): users and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from securelogin.domain.accounts import StaffRole
from securelogin.domain.audit import StoredRecord, UnreadableRecord
from securelogin.domain.security_questions import QuestionAnswer
from securelogin.services import admin, audit
from securelogin.web.auth import context_of, require_staff, staff_caller
from securelogin.web.schemas import CreateUserRequest

router = APIRouter(prefix="/api/v1/admin")


@router.post("/users", status_code=201)
def create_user(body: CreateUserRequest, request: Request) -> dict[str, str]:
    member = require_staff(request, StaffRole.ADMIN)
    details = admin.UserDetails(
        username=body.username,
        prefix=body.prefix,
        password=body.password,
        email=body.email,
        country=body.country,
        full_name=body.full_name,
        security_questions=[QuestionAnswer(q.question, q.answer) for q in body.security_questions],
    )
    username = admin.create_user(context_of(request), details, staff_caller(request, member))
    return {"username": username}


@router.get("/audit")
def read_audit(
    request: Request,
    username: str | None = Query(default=None, max_length=64, pattern=r"^[A-Za-z0-9]+$"),
) -> dict[str, Any]:
    require_staff(request, StaffRole.ADMIN)
    records = audit.audit_records(context_of(request), username)
    return {"records": [record_body(record) for record in records]}


def record_body(record: StoredRecord) -> dict[str, Any]:
    """A record as listed; one that cannot be read back (only a change made behind the
    service's back stores one) is listed in its place as its ``seq`` and why, never what is
    stored there: ``securelogin audit verify`` names it as the break in the chain."""
    if isinstance(record, UnreadableRecord):
        return {"seq": record.seq, "unreadable": record.reason}
    event = record.event
    return {
        "seq": record.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "source": event.source,
        "details": dict(event.details),
        "prev_hash": record.prev_hash,
        "record_hash": record.record_hash,
    }
