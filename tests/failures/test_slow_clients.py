"""500 slow clients trickling login bodies byte by byte do not block anyone else's login.

Each of 500 raw connections sends complete headers for a login request, then its body one
byte at a time, a byte every second, never finishing. While they trickle, other clients
log in (a wrong password and a right one) and get their answers. The server reads every
body within a time limit (web/limits.py read_whole_body: 10 s): each slow connection is answered
``408 request_timeout`` and closed (or reset, when a byte crosses the close); none is
held for ever. The process stays up.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from securelogin.web.portal.pages import CSRF_COOKIE, CSRF_FIELD
from tests.conftest import PASSWORD
from tests.failures.servers import ServerProcess, base_env, database, error_code, prepare

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 500
BODY_TIMEOUT_SECONDS = 10  # web/app.py EdgeMiddleware, web/limits.py
CUT_WITHIN_SECONDS = 45  # generous: the bound is that they are cut, not how fast
TRICKLE_PAUSE_SECONDS = 1.0
USER = "patient1"
NORMAL_LOGINS = 6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with database("sqlite", tmp_path) as url:
        env = base_env(url)
        prepare(env, tmp_path, USER)
        process = ServerProcess(env, tmp_path, "server")
        process.start()
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * SLOW_CLIENTS))
    if wanted < 2 * SLOW_CLIENTS + 100:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} is too low for {SLOW_CLIENTS} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def login_request(port: int, body: bytes) -> bytes:
    return (
        f"POST /api/v1/logins HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


async def trickle(port: int, body: bytes, started: asyncio.Event) -> tuple[str, float]:
    """Headers at once, then the body a byte a second; what the server said, and when."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    try:
        writer.write(login_request(port, body))
        await writer.drain()
        started.set()
        answer = asyncio.ensure_future(reader.read(4096))
        for byte in body[:-1]:  # never the last one
            done, _ = await asyncio.wait({answer}, timeout=TRICKLE_PAUSE_SECONDS)
            if done:
                break
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
        reply = await asyncio.wait_for(answer, CUT_WITHIN_SECONDS)
        # The connection must end after the refusal: read to EOF.
        while chunk := await asyncio.wait_for(reader.read(4096), CUT_WITHIN_SECONDS):
            reply += chunk
        return reply.decode(errors="replace"), time.monotonic() - began
    except (ConnectionError, TimeoutError) as error:
        return f"error: {error!r}", time.monotonic() - began
    finally:
        writer.close()


async def normal_logins(base_url: str) -> list[tuple[int, str]]:
    outcomes = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for number in range(NORMAL_LOGINS):
            password = PASSWORD if number % 2 else "Wrong4password"
            response = await client.post(
                "/api/v1/logins",
                json={"username": USER, "password": password, "platform": "portal"},
            )
            outcomes.append((response.status_code, error_code(response)))
    return outcomes


async def scenario(server: ServerProcess) -> tuple[list[tuple[str, float]], list[tuple[int, str]]]:
    body = json.dumps({"username": "slowpoke1", "password": "Slow4poke!", "platform": "portal"})
    events = [asyncio.Event() for _ in range(SLOW_CLIENTS)]
    slow = [asyncio.ensure_future(trickle(server.port, body.encode(), event)) for event in events]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), 60)
    # All 500 are connected and trickling: now the others log in, and are answered while
    # every slow client is still held (had they waited for the slow ones to be cut off,
    # some of those would be done by now).
    fast = await asyncio.wait_for(normal_logins(server.base_url), 60)
    assert not any(task.done() for task in slow), "the logins waited for the slow clients"
    return await asyncio.gather(*slow), fast


def test_five_hundred_slow_bodies_block_no_login_and_are_cut_off(server: ServerProcess) -> None:
    slow, fast = asyncio.run(scenario(server))

    assert fast == [
        (401, "invalid_credentials") if n % 2 == 0 else (200, "ok") for n in range(NORMAL_LOGINS)
    ]
    statuses = Counter(
        reply.split(" ", 2)[1] if reply.startswith("HTTP/") else reply[:60] for reply, _ in slow
    )
    # Every one is cut off: a 408, or a reset when its next byte crossed the server's close
    # (TCP answers data sent to a closed socket with RST, which can discard the 408 unread).
    reset = "error: ConnectionResetError(104, 'Connection reset by peer')"
    assert set(statuses) <= {"408", reset}, statuses
    assert statuses["408"] > 0, statuses
    for reply, seconds in slow:
        if reply.startswith("HTTP/"):
            assert '"request_timeout"' in reply
            assert "connection: close" in reply.lower()
        assert seconds < CUT_WITHIN_SECONDS
    assert server.alive(), server.log()


def test_a_login_form_cut_short_by_its_client_leaving_is_not_counted(
    server: ServerProcess,
) -> None:
    """A portal login form whose client closes the connection halfway through its
    password: the server does not act on what arrived (web/limits.py, ClientGoneError),
    so part of a password is no counted failure. Its access line says 499."""
    form = urlencode({CSRF_FIELD: "t0ken", "username": USER, "password": PASSWORD}).encode()
    head = (
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\nCookie: {CSRF_COOKIE}=t0ken\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(head + form[:-3])
        time.sleep(0.5)  # the server reads what came; then the client is gone
    deadline = time.monotonic() + 10
    while "POST (no route) 499" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the server's access line, bounded by the deadline
    assert "POST (no route) 499" in server.log(), server.log()

    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        wrong = {"username": USER, "password": "Wrong4password", "platform": "portal"}
        refusals = [client.post("/api/v1/logins", json=wrong).status_code for _ in range(9)]
        right = client.post(
            "/api/v1/logins", json={"username": USER, "password": PASSWORD, "platform": "portal"}
        )
    assert refusals == [401] * 9
    assert right.status_code == 200, right.text  # nine failures counted, not ten: not locked
    assert server.alive(), server.log()
