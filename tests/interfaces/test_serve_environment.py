"""`securelogin serve` hands uvicorn the settings its workers start with.

The command ends by replacing itself with uvicorn (``os.execv``); here that call is caught
in-process, so what is checked is exactly the command line and environment uvicorn, and
so each worker, would get: httptools and uvloop, one malloc arena, and the glibc tunables
that keep the argon2id blocks of the hashes a worker may run in its heap
(adapters/malloc.py), beside an operator's own tunables. (glibc reads GLIBC_TUNABLES when
a process starts and rewrites its copy in /proc/PID/environ, so the workers' environment
as /proc shows it is no witness; bench/ shows the effect: no page faults per login.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from securelogin.adapters.hash_slots import SHARED_MEMORY, on_memory_filesystem
from securelogin.adapters.malloc import MIB
from securelogin.cli import main as cli_main
from tests.conftest import upgrade_database


class ReplacedError(Exception):
    """The process would have become uvicorn here."""


def serve_as_it_would_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str
) -> tuple[list[str], dict[str, str]]:
    seen: dict[str, Any] = {}

    def execv(_path: str, argv: list[str]) -> None:
        seen["argv"], seen["env"] = argv, dict(os.environ)
        raise ReplacedError()

    monkeypatch.setattr(os, "execv", execv)  # the os module cli/main.py calls execv on
    for name in ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "SECURELOGIN_HASH_SLOTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    env = {"SECURELOGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", **env}
    upgrade_database(env["SECURELOGIN_DATABASE_URL"])  # serve refuses a database without it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_main.cli, ["serve", *args])
    assert isinstance(result.exception, ReplacedError), result.output
    return seen["argv"], seen["env"]


def tunables_of(environment: dict[str, str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in environment["GLIBC_TUNABLES"].split(":"))


def test_workers_get_one_arena_and_room_for_the_blocks_they_may_hash_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, environment = serve_as_it_would_exec(
        tmp_path, monkeypatch, {"SECURELOGIN_HASH_CONCURRENCY": "2"}, "--workers", "2"
    )

    block = 19 * MIB + MIB  # the default argon2id block, and malloc's margin above it
    assert environment["MALLOC_ARENA_MAX"] == "1"
    assert tunables_of(environment) == {
        "glibc.malloc.mmap_threshold": str(block),
        "glibc.malloc.trim_threshold": str(3 * block),  # the 2 a worker may hold, and one
    }
    assert environment["SECURELOGIN_WORKERS"] == "2"
    assert argv[argv.index("--http") + 1] == "httptools"
    assert argv[argv.index("--loop") + 1] == "uvloop"


def test_an_operators_own_tunables_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, environment = serve_as_it_would_exec(
        tmp_path,
        monkeypatch,
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.malloc.tcache_count=7"},
    )

    tunables = tunables_of(environment)
    assert tunables["glibc.malloc.trim_threshold"] == "1"  # theirs, not ours
    assert tunables["glibc.malloc.tcache_count"] == "7"
    assert tunables["glibc.malloc.mmap_threshold"] == str(20 * MIB)


def test_workers_share_slots_in_memory_where_their_argon2id_blocks_can_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, environment = serve_as_it_would_exec(tmp_path, monkeypatch, {}, "--workers", "2")

    folder = Path(environment["SECURELOGIN_HASH_SLOTS_DIR"])
    assert folder.name == "hash-slots"
    if on_memory_filesystem(SHARED_MEMORY):  # Linux: /dev/shm, a tmpfs
        assert folder.parent.parent == SHARED_MEMORY
        assert on_memory_filesystem(folder)  # so the slots' blocks live beside them
