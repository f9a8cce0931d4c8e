"""R9.2 as written: the records of a transaction join the chain when it commits.

Appends are chained and written at the commit (storage/audit.py), so a transaction that
rolls back leaves no record and does not move the head, and the records of one
transaction take consecutive places in the order they were appended, even while other
transactions append at the same time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from securelogin.bootstrap import Application
from securelogin.domain.audit import AuditEvent
from securelogin.services.audit import verify_audit_chain
from tests.clock import FakeClock


def event(clock: FakeClock, action: str) -> AuditEvent:
    return AuditEvent(at=clock.now(), actor="test", action=action, subject="abcde123", outcome="ok")


def test_a_transactions_records_take_consecutive_places_in_their_order(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        for action in ("first", "second", "third"):
            uow.audit.append(event(clock, action))
        uow.commit()
    with ctx.uow() as uow:
        records = list(uow.audit.records())
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
        assert [r.event.action for r in uow.audit.records()] == ["kept"]
        assert uow.audit.head()[0] == 1
    assert verify_audit_chain(ctx).intact


def test_records_read_in_their_own_transaction_include_those_not_yet_committed(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        uow.audit.append(event(clock, "pending"))
        assert [r.event.action for r in uow.audit.records()] == ["pending"]
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
        actions = [r.event.action for r in uow.audit.records()]
    assert len(actions) == 80
    for a, b in zip(actions[::2], actions[1::2], strict=True):  # each pair side by side
        assert a.split(".")[0] == b.split(".")[0] and a.endswith(".a") and b.endswith(".b")
    assert verify_audit_chain(ctx).intact
