"""Does a login cost more as the tables grow? 1,000 users against 100,000 users with a
1,000,000-record audit log, on PostgreSQL.

Each size gets a fresh schema, bulk-loaded directly (one precomputed password hash; the
audit records chained exactly as the service chains them, written with COPY), and its own
real ``securelogin serve`` with one worker per core; both stay up, and their rounds are
taken in turn (this shared machine's speed drifts within minutes, so one size measured
after the other measured the drift). Step one (wrk) and the full two-step login (asyncio
client) run at concurrency 8; the figure compared is CPU per login over every round: the
server's and PostgreSQL's own accounting. Target: it grows by at most 10% from the small to
the large database. The audit chain of the large database is verified at the end
(``securelogin audit verify``), so the bulk load is known to be a real chain.

Usage: bench/run scale [--duration 15] [--large-users 100000] [--audit-records 1000000]
Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.databases import database
from bench.fixtures import load_users, new_key
from bench.login import Users, server_env, step_one, two_step
from bench.processes import Server, start_server, wait_idle
from securelogin.domain.audit import AuditEvent, chain
from securelogin.storage.engine import make_engine

GROWTH_TARGET = 0.10
COPY_BATCH = 50_000


def load_audit(url: str, count: int, users: int) -> None:
    """``count`` chained audit records after the current head, written with COPY."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            seq, prev = connection.execute(
                text("SELECT seq, record_hash FROM audit_head WHERE head_id = 1 FOR UPDATE")
            ).one()
            raw: Any = connection.connection.driver_connection
            start = datetime.now(UTC) - timedelta(days=365)
            written = 0
            while written < count:
                buffer = io.StringIO()
                for _ in range(min(COPY_BATCH, count - written)):
                    seq += 1
                    written += 1
                    event = AuditEvent(
                        at=start + timedelta(seconds=written * 30),
                        actor="anonymous",
                        action="login.password",
                        subject=f"bench{written % users + 1:06d}",
                        outcome="invalid_credentials" if written % 7 == 0 else "ok",
                        source="127.0.0.1",
                        details={"platform": "portal"},
                    )
                    record = chain(seq, event, prev)
                    prev = record.record_hash
                    buffer.write(
                        "\t".join(
                            (
                                str(seq),
                                event.at.isoformat(),
                                event.actor,
                                event.action,
                                event.subject or "",
                                event.outcome,
                                event.source or "",
                                '{"platform":"portal"}',
                                record.prev_hash,
                                record.record_hash,
                            )
                        )
                        + "\n"
                    )
                with raw.cursor().copy(
                    "COPY audit_records (seq, at, actor, action, subject, outcome, source,"
                    " details, prev_hash, record_hash) FROM STDIN"
                ) as copy:
                    copy.write(buffer.getvalue())
            connection.execute(
                text("UPDATE audit_head SET seq = :seq, record_hash = :hash WHERE head_id = 1"),
                {"seq": seq, "hash": prev},
            )
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@dataclass
class Sized:
    """One database size: its server and its users, and its rounds' figures."""

    users_count: int
    server: Server
    url: str
    users: Users
    env: dict[str, str]
    rounds: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"step_one": [], "two_step": []}
    )


def start_sized(stack: ExitStack, folder: Path, users_count: int, audit_count: int) -> Sized:
    """A fresh schema of this size, bulk-loaded, and a server on it (stopped by ``stack``)."""
    url = stack.enter_context(database("postgres", folder))
    key = new_key()
    started = time.perf_counter()
    users = Users(load_users(url, key, users_count))
    if audit_count:
        load_audit(url, audit_count, users_count)
    print(
        f"[{users_count} users, {audit_count} audit records] loaded in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    env = server_env(url, key, folder / str(users_count))
    (folder / str(users_count)).mkdir()
    server = start_server(env, workers=os.cpu_count() or 1, folder=folder)
    stack.callback(server.stop)
    step_one(server, url, 8, 2, users_count)  # warm up
    return Sized(users_count, server, url, users, env)


def measure(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], int]:
    """Both sizes side by side, their rounds taken in turn (this machine's speed drifts
    within minutes: taking one size after the other measured the drift); the figures of
    each size's rounds added together, and the large database's audit verify."""
    with tempfile.TemporaryDirectory(prefix="securelogin-scale-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        small = start_sized(stack, folder, args.small_users, 0)
        large = start_sized(stack, folder, args.large_users, args.audit_records)
        seconds = max(1, round(args.duration / args.rounds))
        for _ in range(args.rounds):
            for sized in (small, large):
                wait_idle(small.server.pids() + large.server.pids())
                sized.rounds["step_one"].append(
                    step_one(sized.server, sized.url, 8, seconds, sized.users_count)
                )
            for sized in (small, large):
                wait_idle(small.server.pids() + large.server.pids())
                sized.rounds["two_step"].append(
                    two_step(sized.server, sized.url, 8, seconds, sized.users)
                )
        verified = subprocess.run(
            [str(Path(sys.executable).with_name("securelogin")), "audit", "verify"],
            env=large.env,
            capture_output=True,
            text=True,
        )
        return {"small": added(small.rounds), "large": added(large.rounds)}, verified.returncode


def added(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Each flow's rounds as one measurement: CPU per login over all of its logins."""
    out = {}
    for flow, figures in rounds.items():
        logins = max(1, sum(f["logins"] for f in figures))
        out[flow] = {
            "logins_per_s": sum(f["logins"] for f in figures) / sum(f["seconds"] for f in figures),
            "cpu_ms_per_login": 1000 * sum(f["cpu_s"] for f in figures) / logins,
            "db_cpu_ms_per_login": 1000 * sum(f["db_cpu_s"] for f in figures) / logins,
            "failed": sum(f["failed"] for f in figures),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--small-users", type=int, default=1000)
    parser.add_argument("--large-users", type=int, default=100_000)
    parser.add_argument("--audit-records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each size, in turn")
    args = parser.parse_args()
    results, audit_verify = measure(args)
    small, large = results["small"], results["large"]
    met = True
    print(
        f"\nsecurelogin scale benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, PostgreSQL, concurrency 8"
    )
    print(
        f"{'flow':<10}{'database':<34}{'logins/s':>10}{'server ms':>11}{'db ms':>8}"
        f"{'total ms':>10}{'failed':>8}"
    )
    for flow in ("step_one", "two_step"):
        totals = []
        for label, result in (
            (f"{args.small_users} users", small),
            (f"{args.large_users} users, {args.audit_records} audit", large),
        ):
            f = result[flow]
            total = f["cpu_ms_per_login"] + f["db_cpu_ms_per_login"]
            totals.append(total)
            print(
                f"{flow:<10}{label:<34}{f['logins_per_s']:>10.1f}{f['cpu_ms_per_login']:>11.2f}"
                f"{f['db_cpu_ms_per_login']:>8.2f}{total:>10.2f}{f['failed']:>8}"
            )
            met &= f["failed"] == 0
        growth = totals[1] / totals[0] - 1
        ok = growth <= GROWTH_TARGET
        met &= ok
        print(f"  [{'met' if ok else 'MISSED'}] {flow}: CPU per login grew {growth:+.1%} (<= 10%)")
    ok = audit_verify == 0
    met &= ok
    print(f"  [{'met' if ok else 'MISSED'}] audit verify passes on the large database")
    print("\nall targets met" if met else "\nSOME TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
