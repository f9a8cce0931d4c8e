"""CPU per step of a login without the web layer, and against another checkout in one run.

Not a target of its own: the figure for a change to what a login does in the database (a
round trip, a statement), which under load is smaller than this machine's drift. The
services run in-process (``login.start_login``, then ``login_response.answer_second_factor``
with the user's TOTP code), one login after another, with a trivially cheap argon2id (the
users' hashes made with the same parameters, as in ``bench/run overhead``), so a step
costs its non-hashing work only: the CPU of the calling thread (on SQLite the database's
work included) and, on PostgreSQL, the CPU of the backend serving it.

With ``--against REV`` the same is run with the services of another commit (checked out in
a temporary git worktree, removed afterwards), each round in two child processes, one per
checkout, in alternating order, against one database loaded once (the two must share its
schema). It prints every round, then the medians of each checkout and their ratio.

Usage: bench/run steps [--database postgres|sqlite] [--logins 1000] [--rounds 4]
                       [--against REV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WARM_UP = 20  # logins per child before measuring (statements prepared, caches filled)
FIGURES = ("step one", "step one db", "step two", "step two db")


def child(url: str, key: str, first: int, count: int, secrets_file: Path) -> dict[str, float]:
    """Run in the child process: ``count`` two-step logins of users from ``first`` on, with
    the services of whichever checkout is first on ``sys.path``; ms of CPU per step."""
    import time

    from sqlalchemy import text

    from bench.fixtures import PASSWORD
    from bench.overhead import CHEAP
    from securelogin.bootstrap import build
    from securelogin.config import Settings
    from securelogin.domain.otp import totp
    from securelogin.domain.sessions import Platform
    from securelogin.services import login, login_response
    from securelogin.services.context import Caller

    secrets = {name: bytes.fromhex(s) for name, s in json.loads(secrets_file.read_text()).items()}
    environ = {"SECURELOGIN_DATABASE_URL": url, "SECURELOGIN_SECRET_KEY": key, **CHEAP}
    application = build(Settings.from_env(environ))
    ctx = application.context
    backend_pid = None
    if url.startswith("postgresql"):
        with application.engine.connect() as connection:  # the pool's one connection
            backend_pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def backend_cpu() -> float:
        if backend_pid is None:
            return 0.0
        fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def step_one(name: str) -> login.SecondFactorNeeded:
        started = login.start_login(
            ctx, username=name, password=PASSWORD, platform=Platform.PORTAL, caller=Caller()
        )
        assert isinstance(started, login.SecondFactorNeeded), started
        return started

    def step_two(name: str, started: login.SecondFactorNeeded) -> None:
        login_response.answer_second_factor(
            ctx,
            login_id=started.login_id,
            factor_id=started.factors[0].factor_id,
            response=totp(secrets[name], int(time.time())),
            caller=Caller(),
        )

    names = sorted(secrets)[first : first + count]
    for name in names[:WARM_UP]:
        step_two(name, step_one(name))
    names = names[WARM_UP:]
    cpu0, db0 = time.thread_time(), backend_cpu()
    attempts = [step_one(name) for name in names]
    cpu1, db1 = time.thread_time(), backend_cpu()
    for name, started in zip(names, attempts, strict=True):
        step_two(name, started)
    cpu2, db2 = time.thread_time(), backend_cpu()
    application.dispose()
    per = 1000 / len(names)
    return dict(
        zip(
            FIGURES,
            ((cpu1 - cpu0) * per, (db1 - db0) * per, (cpu2 - cpu1) * per, (db2 - db1) * per),
            strict=True,
        )
    )


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of ``revision``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="securelogin-steps-") as scratch:
        path = Path(scratch) / "against"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), revision],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )


def run_child(source: Path, url: str, key: str, first: int, count: int, secrets: Path) -> Any:
    """One child process with ``source``'s services (and this checkout's bench module)."""
    environ = {**os.environ, "PYTHONPATH": f"{source / 'src'}{os.pathsep}{ROOT}"}
    arguments = [url, key, str(first), str(count), str(secrets)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.steps", "--child", *arguments],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the child with {source} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="postgres", choices=("postgres", "sqlite"))
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--against", metavar="REV", help="another commit to compare with")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, key, first, count, secrets = args.child
        print(json.dumps(child(url, key, int(first), int(count), Path(secrets))))
        return 0

    from bench.databases import database
    from bench.fixtures import load_users, new_key
    from bench.overhead import cheapen

    with tempfile.TemporaryDirectory(prefix="securelogin-steps-") as scratch:
        folder = Path(scratch)
        with database(args.database, folder) as url, _checkouts(args.against) as checkouts:
            key = new_key()
            per_child = args.logins + WARM_UP
            secrets = load_users(url, key, per_child * args.rounds * len(checkouts))
            cheapen(url)
            secrets_file = folder / "secrets.json"
            secrets_file.write_text(json.dumps({n: s.hex() for n, s in secrets.items()}))
            print(f"steps, {args.database}, {args.logins} logins a run, cheap argon2id")
            print(f"{'round':<7}{'checkout':<22}" + "".join(f"{f:>13}" for f in FIGURES))
            results: dict[str, list[dict[str, float]]] = {label: [] for label in checkouts}
            first = 0
            for number in range(args.rounds):
                order = list(checkouts.items())
                if number % 2:
                    order.reverse()  # alternate which runs first: drift falls on both
                for label, source in order:
                    figures = run_child(source, url, key, first, per_child, secrets_file)
                    first += per_child
                    results[label].append(figures)
                    print(
                        f"{number + 1:<7}{label:<22}"
                        + "".join(f"{figures[f]:>13.3f}" for f in FIGURES),
                        flush=True,
                    )
    medians = {
        label: {f: statistics.median(run[f] for run in runs) for f in FIGURES}
        for label, runs in results.items()
    }
    for label, figures in medians.items():
        print(f"{'median':<7}{label:<22}" + "".join(f"{figures[f]:>13.3f}" for f in FIGURES))
    if len(medians) == 2:
        (_, this), (other_label, other) = medians.items()
        ratios = "".join(
            f"{(this[f] / other[f] if other[f] else float('nan')):>13.3f}" for f in FIGURES
        )
        print(f"{'ratio':<7}{('this / ' + other_label)[:21]:<22}{ratios}")
    return 0


@contextmanager
def _checkouts(against: str | None) -> Iterator[dict[str, Path]]:
    this = {"this checkout": ROOT}
    if against is None:
        yield this
        return
    with worktree(against) as path:
        yield {**this, against[:21]: path}


if __name__ == "__main__":
    sys.exit(main())
