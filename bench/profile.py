"""Where the machine's time goes during step one: perf's split, and context switches.

Not a target of its own: the measurement behind "What the figures say" in bench/README.md.
It starts the real server as ``bench/run login`` does, drives step one with ``wrk`` at one
concurrency, and meanwhile samples the whole machine with ``perf record -e cpu-clock -a``
(Debian's linux-perf; the software clock, which works where the hardware counters of a
virtual machine do not). It prints the share of the samples in argon2id (libargon2 and
libc's memset that wipes its blocks), the server's Python, the kernel on the server's
behalf, the server's other libraries, PostgreSQL, the rest of the machine and idle; then
each also in milliseconds of a core per login; then the server's context switches per
login (``/proc/PID/task/TID/status``), and the logins per second of the sampled phase
(sampling costs a little of them). With ``--cheap``, the server and its users' hashes use
``bench/run overhead``'s trivially cheap argon2id: the same work without the hashes
beside it, for comparison.

Usage: bench/run profile [--database sqlite|postgres] [--concurrency 8] [--seconds 15]
                         [--cheap]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.ceiling import verifies_per_second
from bench.databases import database
from bench.fixtures import load_users, new_key
from bench.login import server_env, step_one
from bench.overhead import cheapen
from bench.processes import context_switches, start_server, wait_idle

ARGON2 = "_ffi.abi3.so"  # argon2-cffi's module, which holds libargon2
WIPE = "__memset"  # libc's memset, which libargon2 calls to wipe its blocks
PYTHON_COMM = "python"
CORES = os.cpu_count() or 1  # the server runs one worker per core, as bench/run login's


def perf_shares(data: Path) -> dict[str, float]:
    """Per cent of the samples by where they fell (see the module's docstring)."""
    by_dso = _report(data, "comm,dso")
    wipe = sum(
        share
        for (comm, dso, symbol), share in _report(data, "comm,dso,sym").items()
        if comm == PYTHON_COMM and dso.startswith("libc") and symbol.startswith(WIPE)
    )
    shares: dict[str, float] = defaultdict(float)
    for (comm, dso, _), share in by_dso.items():
        if comm == PYTHON_COMM:
            if dso == ARGON2:
                shares["argon2id"] += share
            elif dso.startswith("libpython"):
                shares["the server's Python"] += share
            elif dso == "[kernel.kallsyms]":
                shares["the kernel, for the server"] += share
            else:
                shares["the server's other libraries"] += share
        elif comm == "postgres":
            shares["PostgreSQL"] += share
        elif comm == "swapper":
            shares["idle"] += share
        else:
            shares["the rest of the machine"] += share
    shares["argon2id"] += wipe
    shares["the server's other libraries"] -= wipe
    return dict(shares)


def _report(data: Path, keys: str) -> dict[tuple[str, str, str], float]:
    report = ["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none"]
    out = subprocess.run(
        [*report, "--sort", keys],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[tuple[str, str, str], float] = {}
    for line in out.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)(?:\s+\[.\]\s+(\S+))?", line)
        if match and not line.lstrip().startswith("#"):
            key = (match.group(2), match.group(3), match.group(4) or "")
            found[key] = found.get(key, 0.0) + float(match.group(1))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--cheap", action="store_true", help="argon2id at 8 KiB, 1 iteration")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("bench/run profile: needs perf (Debian's linux-perf)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="securelogin-bench-") as scratch:
        folder = Path(scratch)
        with database(args.database, folder) as url:
            key = new_key()
            load_users(url, key, args.users)
            env = {**server_env(url, key, folder), **(cheapen(url) if args.cheap else {})}
            server = start_server(env, workers=CORES, folder=folder)
            try:
                step_one(server, url, 8, 2, args.users)  # warm up every worker
                wait_idle(server.pids())
                ceiling = verifies_per_second(3.0)
                wait_idle(server.pids())
                data = folder / "perf.data"
                before = context_switches(server.pids())
                record = ["perf", "record", "-e", "cpu-clock", "-F", "997", "-a", "-o", str(data)]
                perf = subprocess.Popen(
                    [*record, "--", "sleep", str(max(1, args.seconds - 2))],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                phase = step_one(server, url, args.concurrency, args.seconds, args.users)
                perf.wait()
                after = context_switches(server.pids())
            finally:
                server.stop()
            shares = perf_shares(data)
    logins = max(1, int(phase["requests"]))
    hash_kind = "a cheap argon2id" if args.cheap else "the service's argon2id"
    print(
        f"step one on {args.database} with {hash_kind}, concurrency {args.concurrency},"
        f" {args.seconds} s: {phase['logins_per_s']:.1f} logins/s while sampled"
    )
    per_login = 1000 * CORES / max(1e-9, phase["logins_per_s"]) / 100  # ms of a core per 1%
    for name, share in sorted(shares.items(), key=lambda item: -item[1]):
        if share >= 0.05:
            print(f"  {share:5.1f}%  {share * per_login:6.2f} ms per login  {name}")
    print(
        f"  the service's argon2id in a bare loop, just before: {ceiling:.1f} verifies/s,"
        f" {1000 * CORES / ceiling:.2f} ms of a core each"
    )
    voluntary, involuntary = (after[i] - before[i] for i in range(2))
    print(
        f"  context switches of the server's threads per login: {voluntary / logins:.1f}"
        f" voluntary, {involuntary / logins:.1f} involuntary"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
