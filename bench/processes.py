"""Starting the real server for a benchmark, and reading its processes' own accounting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            queue.extend(int(c) for c in children.read_text().split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def thread_cpu(pids: list[int]) -> dict[tuple[int, int], float]:
    """CPU seconds of every thread of the processes, by (process, thread); a process's
    first thread (thread id = process id) is its event loop."""
    found = {}
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            found[(pid, int(stat.parent.name))] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def context_switches(pids: list[int]) -> tuple[int, int]:
    """Voluntary and involuntary context switches of every thread of the processes."""
    voluntary = involuntary = 0
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                text = status.read_text()
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


def machine_cpu(cores: tuple[int, ...] | None = None) -> tuple[float, float]:
    """CPU seconds the machine's ``cores`` (default: all) have been busy (everything but
    idle and I/O wait), and CPU seconds they have had in all, summed (/proc/stat)."""
    names = {"cpu"} if cores is None else {f"cpu{core}" for core in cores}
    busy = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            continue
        name, *values = line.split()
        if name in names:
            fields = [int(x) for x in values]
            busy += sum(fields) - fields[3] - fields[4]
            total += sum(fields)
    return busy / CLOCK_TICKS, total / CLOCK_TICKS


def minor_faults(pids: list[int]) -> int:
    """Minor page faults (memory first touched) of the processes so far."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
        except FileNotFoundError:
            continue
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except FileNotFoundError:
            continue
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size: each shared page counted once across the processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (FileNotFoundError, PermissionError):
            continue
    return total


def wait_idle(pids: list[int], quiet: float = 0.5, timeout: float = 120) -> None:
    """Wait until the processes use under 5% of a core for ``quiet`` seconds: requests
    queued by the previous measurement are answered before the next one starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pids)
        time.sleep(quiet)
        if cpu_seconds(pids) - before < 0.05 * quiet:
            return
    raise RuntimeError("the server did not become idle")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    cores: tuple[int, ...] | None = None  # the cores it runs on, when it was given some

    def pids(self) -> list[int]:
        return tree(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(
    env: dict[str, str], workers: int, folder: Path, cores: tuple[int, ...] | None = None
) -> Server:
    """``securelogin serve``, on ``cores`` only when given (``taskset``, which becomes the
    server: the same process id)."""
    port = free_port()
    securelogin = str(Path(sys.executable).with_name("securelogin"))
    log = (folder / f"server-{port}.log").open("wb")
    on_cores = [] if cores is None else ["taskset", "--cpu-list", ",".join(map(str, cores))]
    process = subprocess.Popen(
        [*on_cores, securelogin, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                time.sleep(1.0)  # let every worker finish starting
                return Server(process, base_url, cores)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")
