"""The audit log (R9): records and the hash chain that proves none was changed or removed.

Each record's ``record_hash`` is SHA-256 over a canonical JSON of its fields and the hash
of the record before it. The chain starts at ``GENESIS_HASH``. The store keeps a head (the
last sequence number and hash) beside the records, so removing the newest record is found
too.

A stored row that cannot be read back as an event at all (details that are not a JSON
object or hold a key that is never written, a time that is not one) is an
``UnreadableRecord``: only a change made behind the service's back stores one, so it
breaks the chain where it stands instead of stopping the walk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

GENESIS_HASH = "0" * 64

# Keys in ``details`` that must never be written: a last line of defence (R9.1).
SECRET_DETAIL_KEYS = frozenset(
    {
        "password",
        "new_password",
        "token",
        "passcode",
        "reset_code",
        "response",
        "secret",
        "pin",
        "answer",
        "values",
        "key",
    }
)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it gets its place in the chain."""

    at: datetime
    actor: str  # "user:NAME", "agent:NAME", "admin:NAME", "system", "anonymous"
    action: str  # e.g. "login.password", "account.locked", "session.created"
    subject: str | None  # the username concerned (as typed, for login attempts)
    outcome: str  # e.g. "ok", "invalid_credentials", "account_locked"
    source: str | None = None  # the client's address
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        leaked = SECRET_DETAIL_KEYS.intersection(self.details)
        if leaked:
            raise ValueError(f"audit details may not hold secrets: {sorted(leaked)}")


@dataclass(frozen=True)
class AuditRecord:
    """An event in its place in the chain."""

    seq: int
    event: AuditEvent
    prev_hash: str
    record_hash: str


@dataclass(frozen=True)
class UnreadableRecord:
    """A stored record that cannot be read back as an event, and why (never its content:
    what was written there may be anything, a secret too)."""

    seq: int
    reason: str


# A record as read back from the store.
StoredRecord: TypeAlias = AuditRecord | UnreadableRecord


def canonical_timestamp(at: datetime) -> str:
    """One text form for a UTC instant, microseconds included."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    """SHA-256 of the canonical JSON of a record's fields and the previous hash."""
    body = {
        "seq": seq,
        "at": canonical_timestamp(event.at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "source": event.source,
        "details": dict(event.details),
        "prev": prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def chain(seq: int, event: AuditEvent, prev_hash: str) -> AuditRecord:
    """Give an event its place after the record whose hash is ``prev_hash``."""
    return AuditRecord(seq, event, prev_hash, record_hash(seq, event, prev_hash))


def first_broken_record(
    records: Iterable[StoredRecord], head_seq: int, head_hash: str
) -> tuple[int, str] | None:
    """The first record (sequence number, reason) that breaks the chain, or None.

    ``records`` must come in sequence order, and be the records as they stood when the head
    was read (one snapshot). A removed record shows as a gap; a changed one as a hash that
    does not match its fields, or as a record that cannot be read; a removed newest record
    as a head that does not match the last record; a record added after the head without
    moving it as a record past the head.
    """
    expected_seq, prev = 1, GENESIS_HASH
    for record in records:
        if record.seq != expected_seq:
            return expected_seq, f"record {expected_seq} is missing"
        if isinstance(record, UnreadableRecord):
            return record.seq, f"it cannot be read: {record.reason}"
        if record.prev_hash != prev:
            return record.seq, "its link to the previous record does not match"
        if record_hash(record.seq, record.event, record.prev_hash) != record.record_hash:
            return record.seq, "its content does not match its hash"
        expected_seq, prev = record.seq + 1, record.record_hash
    if head_seq < expected_seq - 1:
        return head_seq + 1, f"record {head_seq + 1} lies past the head (record {head_seq})"
    if head_seq != expected_seq - 1 or head_hash != prev:
        return expected_seq, f"record {expected_seq} (the newest) is missing or changed"
    return None
