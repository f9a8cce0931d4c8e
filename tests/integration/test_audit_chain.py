"""R9.2 as written: the records of a transaction join the chain when it commits.

Appends are chained and written at the commit (storage/audit.py), so a transaction that
rolls back leaves no record and does not move the head, and the records of one
transaction take consecutive places in the order they were appended, even while other
transactions append at the same time.

``verify_audit_chain`` reads the head and walks the records in one read-only unit of work
(one snapshot, no write lock): records committed meanwhile are no break, and the walk
holds no login up.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from securelogin.bootstrap import Application
from securelogin.domain.audit import AuditEvent, chain
from securelogin.services.audit import ChainReport, verify_audit_chain
from securelogin.services.context import Context
from securelogin.storage.audit import SqlAuditLog
from securelogin.storage.tables import audit_records
from tests.clock import FakeClock
from tests.conftest import readable


def event(clock: FakeClock, action: str) -> AuditEvent:
    return AuditEvent(at=clock.now(), actor="test", action=action, subject="abcde123", outcome="ok")


def commit_events(ctx: Context, clock: FakeClock, *actions: str) -> None:
    with ctx.uow() as uow:
        for action in actions:
            uow.audit.append(event(clock, action))
        uow.commit()


def test_a_transactions_records_take_consecutive_places_in_their_order(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        for action in ("first", "second", "third"):
            uow.audit.append(event(clock, action))
        uow.commit()
    with ctx.uow() as uow:
        records = readable(uow.audit.records())
        head = uow.audit.head()
    assert [(r.seq, r.event.action) for r in records] == [
        (1, "first"),
        (2, "second"),
        (3, "third"),
    ]
    assert head == (3, records[-1].record_hash)
    assert verify_audit_chain(ctx).intact


def test_a_rolled_back_transaction_leaves_no_record_and_the_head_unmoved(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        uow.audit.append(event(clock, "kept"))
        uow.commit()
    with ctx.uow() as uow:
        uow.audit.append(event(clock, "rolled back"))  # never committed
    with ctx.uow() as uow:
        assert [r.event.action for r in readable(uow.audit.records())] == ["kept"]
        assert uow.audit.head()[0] == 1
    assert verify_audit_chain(ctx).intact


def test_records_read_in_their_own_transaction_include_those_not_yet_committed(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        uow.audit.append(event(clock, "pending"))
        assert [r.event.action for r in readable(uow.audit.records())] == ["pending"]
        uow.commit()
    assert verify_audit_chain(ctx).intact


def test_simultaneous_transactions_make_one_unbroken_chain(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context

    def append_two(n: int) -> None:
        with ctx.uow() as uow:
            uow.audit.append(event(clock, f"{n}.a"))
            uow.audit.append(event(clock, f"{n}.b"))
            uow.commit()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(append_two, range(40)))
    with ctx.uow() as uow:
        actions = [r.event.action for r in readable(uow.audit.records())]
    assert len(actions) == 80
    for a, b in zip(actions[::2], actions[1::2], strict=True):  # each pair side by side
        assert a.split(".")[0] == b.split(".")[0] and a.endswith(".a") and b.endswith(".b")
    assert verify_audit_chain(ctx).intact


def test_verify_checks_the_chain_up_to_the_head_it_read_while_a_login_commits(
    application: Application, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login that commits its records between the verify's read of the head and its walk
    is no break: the walk sees the chain as it stood at the head (it used to see one record
    past it, on PostgreSQL, and report the chain BROKEN). On SQLite the login is not held
    up by the verify either (it used to wait for the verify's write lock)."""
    ctx = application.context
    commit_events(ctx, clock, "before.a", "before.b")
    read_head = SqlAuditLog.head
    meanwhile: list[threading.Thread] = []
    failed: list[BaseException] = []

    def a_login(actions: tuple[str, ...]) -> None:
        try:
            commit_events(ctx, clock, *actions)
        except BaseException as error:
            failed.append(error)

    def head_then_a_login_commits(log: SqlAuditLog) -> tuple[int, str]:
        head = read_head(log)
        if not meanwhile:  # once: between the verify's read of the head and its walk
            login = threading.Thread(
                target=a_login, args=(("meanwhile.a", "meanwhile.b"),), daemon=True
            )
            meanwhile.append(login)
            login.start()
            login.join(timeout=5)
            assert not login.is_alive(), "the login waited for the verify"
            assert not failed, failed
        return head

    monkeypatch.setattr(SqlAuditLog, "head", head_then_a_login_commits)
    report = verify_audit_chain(ctx)
    monkeypatch.undo()

    assert meanwhile, "the verify read no head"
    assert report == ChainReport(2), report
    assert verify_audit_chain(ctx) == ChainReport(4)


def test_verify_names_a_record_added_past_the_head(
    application: Application, clock: FakeClock
) -> None:
    """Well chained but written behind the service's back, without moving the head."""
    ctx = application.context
    commit_events(ctx, clock, "first", "second")
    with ctx.uow() as uow:
        seq, head_hash = uow.audit.head()
    added = chain(seq + 1, event(clock, "added"), head_hash)
    with application.engine.begin() as connection:
        connection.execute(
            audit_records.insert().values(
                seq=added.seq,
                at=added.event.at,
                actor=added.event.actor,
                action=added.event.action,
                subject=added.event.subject,
                outcome=added.event.outcome,
                source=added.event.source,
                details="{}",
                prev_hash=added.prev_hash,
                record_hash=added.record_hash,
            )
        )

    report = verify_audit_chain(ctx)

    assert (report.records, report.broken_at) == (2, 3), report


def test_a_read_only_unit_of_work_never_commits(application: Application, clock: FakeClock) -> None:
    ctx = application.context
    with ctx.uow(read_only=True) as uow:
        uow.audit.append(event(clock, "never"))
        with pytest.raises(RuntimeError, match="read-only"):
            uow.commit()
    with ctx.uow() as uow:
        assert uow.audit.head()[0] == 0
