"""Everything a login costs but the hash: server CPU per step with a trivially cheap argon2id.

Not a target of its own: the figure that says where step one's and step two's CPU goes
when the 85% and 2 ms targets are missed. The real ``securelogin serve`` runs with argon2id
at 8 KiB and 1 iteration (its users' hashes made with the same parameters, so nothing is
re-hashed), so that a verify costs microseconds; every step one then costs its non-hashing
work only. For each database it prints the server CPU per step one and per step two (and
PostgreSQL's, by ``application_name``), split between the event loop threads and the
worker threads from the server's own per-thread accounting (/proc/PID/task/TID/stat).

Below, for each database, what a transaction costs the unit of work by itself (storage/
unit_of_work.py: a pooled connection, its BEGIN and COMMIT, no statement), in CPU of the
calling thread, beside what the driver alone spends on the same BEGIN and COMMIT.

Usage: bench/run overhead [--databases sqlite,postgres] [--logins 2000] [--lanes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type
from sqlalchemy import text

from bench.client import Connection
from bench.databases import database
from bench.fixtures import PASSWORD, load_users, new_key
from bench.login import database_pids, server_env
from bench.processes import Server, cpu_seconds, start_server, thread_cpu, wait_idle
from securelogin.domain.otp import totp
from securelogin.storage.engine import make_engine
from securelogin.storage.unit_of_work import unit_of_work_factory

TRANSACTIONS = 3000

CHEAP = {"SECURELOGIN_ARGON2_MEMORY_KIB": "8", "SECURELOGIN_ARGON2_TIME_COST": "1"}


class Split:
    """CPU of the server (loop threads and the others) and of PostgreSQL, over a phase."""

    def __init__(self, server: Server, url: str) -> None:
        self.server, self.url = server, url

    def __enter__(self) -> Split:
        wait_idle(self.server.pids())
        self._threads = thread_cpu(self.server.pids())
        self._db = {pid: cpu_seconds([pid]) for pid in database_pids(self.url)}
        return self

    def __exit__(self, *_: object) -> None:
        now = thread_cpu(self.server.pids())
        spent = {key: value - self._threads.get(key, 0.0) for key, value in now.items()}
        self.loop = sum(v for (pid, tid), v in spent.items() if pid == tid)
        self.others = sum(v for (pid, tid), v in spent.items() if pid != tid)
        self.db = sum(
            cpu_seconds([pid]) - self._db.get(pid, 0.0) for pid in database_pids(self.url)
        )


def in_lanes(server: Server, lanes: int, work: list[Any], one: Any) -> list[Any]:
    """``one(connection, item)`` for every item, ``lanes`` connections at once."""
    port = int(server.base_url.rsplit(":", 1)[1])
    results: list[Any] = []

    async def lane(share: list[Any]) -> None:
        connection = Connection("127.0.0.1", port)
        for item in share:
            results.append(await one(connection, item))
        await connection.close()

    async def run() -> None:
        await asyncio.gather(*(lane(work[i::lanes]) for i in range(lanes)))

    asyncio.run(run())
    return results


def cheapen(url: str) -> dict[str, str]:
    """Give every bench user a hash made with the cheap parameters; the server's
    environment for those parameters (so that nothing is re-hashed)."""
    cheap = PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    )
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET password_hash = :h"), {"h": cheap.hash(PASSWORD)})
    engine.dispose()
    return CHEAP


def run_database(kind: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="securelogin-overhead-") as scratch:
        folder = Path(scratch)
        with database(kind, folder) as url:
            key = new_key()
            secrets = load_users(url, key, args.logins + 200)
            server = start_server(
                {**server_env(url, key, folder), **cheapen(url)},
                workers=args.workers,
                folder=folder,
            )
            try:
                names = sorted(secrets)

                async def first(connection: Connection, username: str) -> tuple[str, str, str]:
                    reply = await connection.post(
                        "/api/v1/logins",
                        {"username": username, "password": PASSWORD, "platform": "portal"},
                    )
                    return username, reply.body["login_id"], reply.body["factors"][0]["factor_id"]

                async def second(connection: Connection, attempt: tuple[str, str, str]) -> int:
                    username, login_id, factor_id = attempt
                    reply = await connection.post(
                        f"/api/v1/logins/{login_id}/response",
                        {
                            "factor_id": factor_id,
                            "response": totp(secrets[username], int(time.time())),
                        },
                    )
                    return reply.status

                in_lanes(server, args.lanes, names[:200], first)  # warm up
                with Split(server, url) as one:
                    attempts = in_lanes(server, args.lanes, names[200:], first)
                with Split(server, url) as two:
                    statuses = in_lanes(server, args.lanes, attempts, second)
            finally:
                server.stop()
    for label, split, count in (("step one", one, len(attempts)), ("step two", two, len(statuses))):
        per = 1000 / max(1, count)
        print(
            f"{kind:<9}{label:<10}{count:>7}{(split.loop + split.others) * per:>10.2f}"
            f"{split.loop * per:>10.2f}{split.others * per:>10.2f}{split.db * per:>8.2f}"
        )
    if any(status != 200 for status in statuses):
        print(f"  step two answered {sorted(set(statuses))}")


def transaction_cost(kind: str) -> tuple[float, float]:
    """µs of CPU per empty unit of work, and per BEGIN and COMMIT sent by the driver alone
    (SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL the driver's BEGIN comes with a
    transaction's first statement, so an empty unit of work sends none)."""
    with tempfile.TemporaryDirectory(prefix="securelogin-overhead-") as scratch:
        with database(kind, Path(scratch)) as url:
            engine = make_engine(url)
            new_unit_of_work = unit_of_work_factory(engine)

            def empty() -> None:
                with new_unit_of_work() as uow:
                    uow.commit()

            with engine.connect() as connection:
                driver = connection.connection.dbapi_connection
                assert driver is not None
                begin = "BEGIN IMMEDIATE" if kind == "sqlite" else "BEGIN"
                if kind != "sqlite":
                    driver.autocommit = True

                def alone() -> None:
                    driver.execute(begin)
                    driver.execute("COMMIT")

                figures = [_cpu_us(empty), _cpu_us(alone), _cpu_us(empty), _cpu_us(alone)]
                if kind != "sqlite":
                    driver.autocommit = False
            engine.dispose()
    return min(figures[0], figures[2]), min(figures[1], figures[3])


def _cpu_us(call: Any) -> float:
    started = time.thread_time()
    for _ in range(TRANSACTIONS):
        call()
    return 1e6 * (time.thread_time() - started) / TRANSACTIONS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--logins", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=4, help="simultaneous clients")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{'database':<9}{'step':<10}{'logins':>7}{'cpu ms':>10}{'loop ms':>10}"
        f"{'others ms':>10}{'db ms':>8}"
    )
    for kind in args.databases.split(","):
        run_database(kind, args)
    for kind in args.databases.split(","):
        ours, driver = transaction_cost(kind)
        print(
            f"{kind}: a unit of work with no statement {ours:.1f} µs of CPU; the driver's"
            f" BEGIN and COMMIT alone {driver:.1f} µs (the better of two runs of"
            f" {TRANSACTIONS} each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
