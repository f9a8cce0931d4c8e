"""`securelogin serve` writes one access line per request, with route templates only.

The line is written by the application (web/app.py, EdgeMiddleware), not by uvicorn, whose
own access log is off; under uvicorn nothing would show it unless the server gives
securelogin's logger a handler. A login id in a path is a capability (R9), so the line
names the route template, never the path as sent.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import httpx

from tests.databases import sqlite_url
from tests.failures.servers import ServerProcess, base_env, prepare, running


def test_every_request_gets_an_access_line_naming_its_route_not_its_path(
    tmp_path: Path,
) -> None:
    env = base_env(sqlite_url(tmp_path))
    prepare(env, tmp_path)
    capability = secrets.token_urlsafe(24)
    with running(ServerProcess(env, tmp_path, "server")) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            unknown = client.post(
                "/api/v1/logins",
                json={
                    "username": "nobody123",
                    "password": "not the password",
                    "platform": "portal",
                },
            )
            assert unknown.status_code == 401
            answer = client.post(
                f"/api/v1/logins/{capability}/response",
                json={"factor_id": "x", "response": "123456"},
            )
            assert answer.status_code >= 400
        deadline = time.monotonic() + 10
        while "/response" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # the line is written as the answer goes out; bounded
        log = server.log()
    line = re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO securelogin\.access"
        r" (?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) \d+\.\dms"
    )
    access = [
        m.group("method", "route", "status") for m in map(line.fullmatch, log.splitlines()) if m
    ]
    assert ("GET", "/healthz", "200") in access
    assert ("POST", "/api/v1/logins", "401") in access
    assert ("POST", "/api/v1/logins/{login_id}/response", str(answer.status_code)) in access
    assert capability not in log
