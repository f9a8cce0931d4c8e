"""A flood of 10,000 junk requests at a real server process: no 500, no crash, memory flat.

Hypothesis makes the requests: any method, at every route of /openapi.json and of the
portal (path parameters filled with junk) or at made-up paths, with junk query strings,
junk headers (content types, bearer tokens, cookies, forwarded-for), and bodies that are
random bytes, random JSON, or JSON objects of the API's own field names holding values of
the wrong kind, length or alphabet (NUL, surrogates, huge numbers, deep nesting). They
go over keep-alive connections to one ``securelogin serve``: 10,000 of them on PostgreSQL
(the stricter store), 2,000 on SQLite. Hypothesis draws 1,000 requests; the flood sends
mixes of their parts (method of one, path of another, body of a third), which is cheap.

Every answer must be below 500 (the database is up: not even a 503), hold no stack trace,
and the process must stay up. Its resident memory after the flood may exceed the one
after a warm-up of 1,000 such requests by at most 30 MiB.

argon2id runs with small parameters here (SECURELOGIN_ARGON2_*): the junk that happens
to be a well-formed login must not turn this into a hashing benchmark.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.failures.servers import ServerProcess, base_env, database, prepare

pytestmark = pytest.mark.slow

FLOOD = 10_000  # on PostgreSQL, the stricter store (NUL, lengths, types)
SQLITE_FLOOD = 2_000  # the same junk, fewer of it: the whole file stays fast
WARM_UP = 1_000
POOL = 1_000  # hypothesis examples; the flood mixes their parts
PARTS = ("method", "url", "params", "headers", "content")
MIB = 1024 * 1024
RSS_MARGIN = 30 * MIB
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
PORTAL_PATHS = [
    "/",
    "/login",
    "/login/verify",
    "/logout",
    "/help",
    "/online-card",
    "/online-card/{card_id}/print",
    "/online-card/{card_id}/card.pdf",
    "/online-card/{card_id}/activate",
    "/security",
    "/security/totp",
    "/security/devices/{device_id}/activate",
    "/security/orders",
    "/console",
    "/console/login",
    "/console/logout",
    "/console/verifications",
    "/console/verifications/{verification_id}/answer",
    "/console/callers/{username}",
    "/console/callers/{username}/actions/{action}",
    "/static/{name}",
]
FIELD_NAMES = [
    "username",
    "password",
    "platform",
    "login_id",
    "factor_id",
    "response",
    "code",
    "serial",
    "kind",
    "country",
    "pin",
    "email",
    "full_name",
    "security_questions",
    "question",
    "answer",
    "new_password",
    "reason",
    "role",
    "name",
]
USER = "floodme1"


@pytest.fixture(
    params=[
        pytest.param(("postgres", FLOOD), marks=pytest.mark.postgres, id="postgres"),
        pytest.param(("sqlite", SQLITE_FLOOD), id="sqlite"),
    ]
)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    kind, flood_size = request.param
    with database(kind, tmp_path) as url:
        env = base_env(url) | {
            "SECURELOGIN_ARGON2_MEMORY_KIB": "1024",
            "SECURELOGIN_ARGON2_TIME_COST": "1",
        }
        prepare(env, tmp_path, USER)
        process = ServerProcess(env, tmp_path, "server")
        process.start()
        try:
            yield process, flood_size
        finally:
            process.stop()


junk_text = st.text(max_size=80)
any_text = st.one_of(
    junk_text,
    st.text(st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["", "\x00", "abcde123", "ABCDE123", "a" * 5000, "é", "\ud800", "..", "%00"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
api_shaped = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6)


def encode_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=2000),
    json_values.map(encode_json),
    api_shaped.map(encode_json),
    api_shaped.map(lambda value: encode_json(value)[:-1]),  # cut short
    st.just(b"[" * 5000 + b"]" * 5000),  # deep nesting
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)
headers = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "authorization",
            "accept",
            "cookie",
            "x-forwarded-for",
            "content-encoding",
            "transfer-encoding-junk",
            "x-junk",
        ]
    ),
    st.one_of(
        header_values,
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "Bearer sls_" + "a" * 43,
                "Bearer slst_" + "a" * 43,
                "Bearer ",
                "gzip",
            ]
        ),
    ),
    max_size=4,
)


def fill(template: str, values: list[str]) -> str:
    parts = template.split("/")
    filled = [
        quote(values[i % len(values)], safe="", errors="surrogatepass")
        if part.startswith("{")
        else part
        for i, part in enumerate(parts)
    ]
    return "/".join(filled)


def requests(templates: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    paths = st.one_of(
        st.builds(fill, st.sampled_from(templates), st.lists(any_text, min_size=1, max_size=3)),
        st.lists(junk_text, min_size=1, max_size=4).map(
            lambda parts: "/" + "/".join(quote(p, safe="", errors="surrogatepass") for p in parts)
        ),
    )
    query = st.dictionaries(junk_text, junk_text, max_size=3)
    return st.fixed_dictionaries(
        {
            "method": st.sampled_from(METHODS),
            "url": paths,
            "params": query,
            "headers": headers,
            "content": bodies,
        }
    )


def route_templates(client: httpx.Client) -> list[str]:
    schema = client.get("/openapi.json").json()
    return sorted(schema["paths"]) + PORTAL_PATHS


class Flood:
    """Sends junk on keep-alive connections and notes every answer that is not clean."""

    def __init__(self, client: httpx.Client, pool: list[dict[str, Any]]) -> None:
        self.client = client
        self.pool = pool
        self.random = random.Random(FLOOD)  # mixing test input, not a secret
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []

    def send(self, request: dict[str, Any]) -> None:
        try:
            response = self.client.request(**request)
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
            return  # the client itself refuses to send it: not a request at all
        # Any other transport error (the server dropped us) fails the test.
        self.sent += 1
        self.statuses[response.status_code] += 1
        body = response.text
        if response.status_code >= 500 or "Traceback" in body or 'File "/' in body:
            self.bad.append(f"{request!r:.300} -> {response.status_code} {body[:300]}")

    def until(self, count: int) -> None:
        """Send until ``count`` requests have gone out in all: hypothesis's examples, each
        part (method, path, query, headers, body) taken from a different one."""
        while self.sent < count:
            pick = self.random.choice
            self.send({part: pick(self.pool)[part] for part in PARTS})


def junk_pool(strategy: st.SearchStrategy[dict[str, Any]]) -> list[dict[str, Any]]:
    pool: list[dict[str, Any]] = []

    @settings(
        max_examples=POOL,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(request: dict[str, Any]) -> None:
        pool.append(request)

    collect()
    return pool


def test_ten_thousand_junk_requests_get_no_500_no_trace_and_leave_memory_flat(
    server: tuple[ServerProcess, int],
) -> None:
    process, flood_size = server
    with httpx.Client(base_url=process.base_url, timeout=30) as client:
        flood = Flood(client, junk_pool(requests(route_templates(client))))
        flood.until(WARM_UP)
        warm = process.rss_bytes()
        flood.until(WARM_UP + flood_size)
        after = process.rss_bytes()
        assert client.get("/healthz").status_code == 200

    assert process.alive(), process.log()
    assert not flood.bad, "\n".join(flood.bad[:5])
    refused = sum(n for status, n in flood.statuses.items() if 400 <= status < 500)
    assert refused > flood_size // 2, flood.statuses  # it was junk indeed
    assert after - warm <= RSS_MARGIN, f"RSS grew by {(after - warm) / MIB:.1f} MiB"
