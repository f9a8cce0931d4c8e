"""The service calls of the busiest endpoints, run on the application's worker threads.

A service call blocks (the database, an argon2id hash), so it never runs on the event loop.
FastAPI runs a plain ``def`` endpoint through its own wrappers and anyio's thread pool; the
endpoints every login goes through are coroutines instead, and hand their one service call
to a thread pool of their own, which costs about half as much CPU (bench/README.md). Each
request makes exactly one hop to a thread and back.

The pool is far smaller than anyio's 40 (which the other endpoints keep): two threads for
each hash the process may run at once, one to hash and one for the transactions of the
logins around it. A login holds its thread from its first transaction to its last, so
every login admitted to a hash can finish it; the others wait in the pool's queue, which
costs nothing. Every thread beyond those adds a contender for the GIL: at concurrency 8
and 64, 4 threads per worker on a 2-core machine left step one 1.5 points of the argon2id
ceiling more than 16 did (bench/README.md), with the same hashes in flight.

What the smaller pool gives up: a request keeps its thread while it waits, for a hash or
for a row lock another transaction holds, so a few such waits at once (four on two cores)
hold up that worker's other logins and session checks until one ends; 16 threads let more
of them pass. None of these waits is long: a slot turns over with every hash, the row
locks a login waits for are held only for a transaction's statements (hashes run outside
transactions, but for the rare second check in services/login.py), and SQLite's one writer
makes every login wait for a long write whatever the pool.
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

MIN_WORKER_THREADS = 2
THREADS_PER_HASH = 2  # per hash this process may run at once: the hash, and the transactions


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
