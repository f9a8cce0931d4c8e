"""The service calls of the busiest endpoints, run on the application's worker threads.

A service call blocks (the database, an argon2id hash), so it never runs on the event loop.
FastAPI runs a plain ``def`` endpoint through its own wrappers and anyio's thread pool; the
endpoints every login goes through are coroutines instead, and hand their one service call
to a thread pool of their own, which costs about half as much CPU (bench/README.md). Each
request makes exactly one hop to a thread and back.

The pool is smaller than anyio's 40 (which the other endpoints keep): a login spends most
of its time waiting for an argon2id slot, and threads beyond the hashes and transactions
that can make progress only add contenders for the GIL and, on SQLite, for the write lock.
Requests beyond it wait in the pool's queue, which costs nothing. It keeps room for
several times the hashes the process may run, so that logins stuck behind a slow lock
(SQLite's busy timeout is 30 s) leave others room to proceed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from fastapi import FastAPI, Request

P = ParamSpec("P")
R = TypeVar("R")

MIN_WORKER_THREADS = 16
THREADS_PER_HASH = 4  # per hash this process may run at once: its transactions around it


def worker_threads_for(hashes_at_once: int) -> int:
    """How many threads the busiest endpoints get in a process that may run
    ``hashes_at_once`` argon2id hashes at once."""
    return max(MIN_WORKER_THREADS, THREADS_PER_HASH * hashes_at_once)


def install_worker_threads(app: FastAPI, threads: int) -> ThreadPoolExecutor:
    """The app's pool for ``run_blocking`` (shut down by the app's lifespan)."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="securelogin-worker")
    app.state.worker_threads = pool
    return pool


async def run_blocking(
    request: Request, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """``call(*args, **kwargs)`` on one of the app's worker threads; its result or error."""
    pool: ThreadPoolExecutor = request.app.state.worker_threads
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(call, *args, **kwargs))
