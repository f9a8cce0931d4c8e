"""Fixtures of the browser tests: Debian's chromium, and the app served for real.

- ``chromium``: Playwright (sync API) drives ``/usr/bin/chromium``, headless, with
  ``--no-sandbox``; Playwright's own browsers are never downloaded. Without the binary
  the tests are skipped, except under ``CI=true`` where that is a failure. The browser is
  launched once for the browser tests (package scope: Playwright's sync API keeps an
  asyncio loop marked as running in the main thread, so it is stopped as soon as the
  browser tests end and cannot disturb later tests).
- ``served``: the real ASGI app (``create_app``) on a fresh SQLite database, served by
  uvicorn in a background thread on a free port of 127.0.0.1, with the injected
  ``FakeClock`` (time moves only when a test moves it) and a fast argon2id hasher.
  SQLite only: the rules themselves are tested on SQLite and PostgreSQL elsewhere; these
  tests are about the pages.
- ``visitors``: a new browser context (cookies of one person) per call, time zone
  Europe/Zurich and locale en-GB, each page checked by ``pages.Visitor``; screenshots go
  to ``test-output/browser/<test name>/NN-page.png`` under the project's root.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain.accounts import StaffRole
from securelogin.services import admin
from securelogin.services.context import Caller
from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.web.app import create_app
from tests.browser.pages import Screens, Visitor
from tests.clock import FakeClock
from tests.conftest import TEST_SECRET_KEY
from tests.databases import sqlite_url

CHROMIUM = Path("/usr/bin/chromium")
TIME_ZONE = "Europe/Zurich"


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (scripts/install-system-packages installs it)")
        pytest.skip(f"{CHROMIUM} is missing (scripts/install-system-packages installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Served:
    """The running app: its address, its services (for setting up users) and its clock."""

    base_url: str
    application: Application
    clock: FakeClock

    def agent_token(self, name: str = "Agent Smith") -> str:
        return admin.create_staff_token(
            self.application.context, name=name, role=StaffRole.AGENT, caller=Caller("test")
        )


@pytest.fixture
def served(tmp_path: Path, fast_hasher: Argon2Hasher) -> Iterator[Served]:
    url = sqlite_url(tmp_path)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    settings = Settings(
        database_url=url, secret_key=TEST_SECRET_KEY, mail_dir=str(tmp_path / "mail")
    )
    clock = FakeClock()
    application = build(settings, clock=clock, hasher=fast_hasher)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # connections wait in the backlog until uvicorn accepts them
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, application),
            log_level="warning",
            access_log=False,
            ws="none",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", application, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
        application.dispose()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = request.config.rootpath / "test-output" / "browser" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Screens(folder)


@pytest.fixture
def visitors(
    chromium: Browser, served: Served, screens: Screens
) -> Iterator[Callable[[], Visitor]]:
    """``visitors()`` opens a new person's browser (own cookies) on the served app."""
    opened: list[Visitor] = []

    def open_visitor() -> Visitor:
        context = chromium.new_context(
            base_url=served.base_url,
            timezone_id=TIME_ZONE,
            locale="en-GB",
            viewport={"width": 1000, "height": 800},
        )
        context.set_default_timeout(10_000)
        visitor = Visitor(context.new_page(), screens)
        opened.append(visitor)
        return visitor

    yield open_visitor
    try:
        for visitor in opened:
            visitor.finish()
    finally:
        for visitor in opened:
            visitor.page.context.close()


@pytest.fixture
def visitor(visitors: Callable[[], Visitor]) -> Visitor:
    return visitors()
