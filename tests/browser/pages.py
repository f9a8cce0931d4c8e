"""Helpers for the browser tests: a visitor that checks every page, and the user's tools.

``Visitor`` wraps one Playwright page. Every navigation goes through ``goto`` or
``submit``, which wait for the page to load, run the accessibility check (``A11Y_JS``,
evaluated in the page) and save a screenshot of the key pages. A ``load`` listener counts
the pages the browser loaded, and ``finish`` fails the test if any page was loaded without
being checked, so no page escapes the check.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Error, Locator, Page, Response
from sqlalchemy import select

from securelogin.bootstrap import Application
from securelogin.domain import ocra, otp
from securelogin.domain.accounts import User
from securelogin.storage.tables import devices
from tests.clock import FakeClock

SUITE = ocra.parse_ocra_suite(ocra.CHALLENGE_CARD_SUITE)

# The accessibility check, run in the page. It returns a list of problems (empty: passed):
# 1. every input, select and textarea (not hidden or a button) has a label: label[for],
#    a wrapping label, aria-label or aria-labelledby, with text; ids are unique;
# 2. exactly one h1;
# 3. every visible element with text has a WCAG contrast ratio of at least 4.5 between
#    its colour and its effective background (walking up the ancestors and compositing
#    semi-transparent backgrounds over white);
# 4. no stack trace in the page's text.
A11Y_JS = r"""
() => {
  const problems = [];
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    if (el.getAttribute('name')) d += '[name=' + el.getAttribute('name') + ']';
    if (el.className && typeof el.className === 'string') {
      d += '.' + el.className.trim().replace(/\s+/g, '.');
    }
    const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 50);
    return text ? d + ' "' + text + '"' : d;
  };
  const named = (node) => node !== null && node.textContent.trim().length > 0;
  const notFields = new Set(['hidden', 'submit', 'button', 'reset', 'image']);
  const isField = (el) => el.tagName !== 'INPUT'
    || !notFields.has((el.getAttribute('type') || 'text').toLowerCase());

  // 1. Labels.
  const labels = Array.from(document.querySelectorAll('label'));
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (!isField(el)) continue;
    const byFor = el.id !== '' && labels.some((l) => l.htmlFor === el.id && named(l));
    const wrapped = named(el.closest('label'));
    const aria = (el.getAttribute('aria-label') || '').trim() !== '';
    const refs = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
    const labelledBy = refs.length > 0 && refs.every((id) => named(document.getElementById(id)));
    if (!(byFor || wrapped || aria || labelledBy)) problems.push('no label: ' + describe(el));
  }
  const seen = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (seen.has(el.id)) problems.push('duplicate id: ' + el.id);
    seen.add(el.id);
  }

  // 2. Exactly one h1.
  const h1s = document.querySelectorAll('h1').length;
  if (h1s !== 1) problems.push(h1s + ' h1 elements on the page (want exactly one)');

  // 3. Contrast.
  const parse = (value) => {
    const m = /^rgba?\(([^)]*)\)$/.exec(value.trim());
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    if (p.length < 3 || p.some(Number.isNaN)) return null;
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const backgroundOf = (el) => {
    const layers = [];
    for (let node = el; node !== null; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== 'none') {
        problems.push('background image, contrast not computable: ' + describe(node));
      }
      const colour = parse(style.backgroundColor);
      if (colour === null) {
        problems.push('unreadable background ' + style.backgroundColor + ': ' + describe(node));
      } else if (colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    let result = { r: 255, g: 255, b: 255, a: 1 };  // the canvas
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const channel = (v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const shown = (el) => {
    const style = getComputedStyle(el);
    return style.display !== 'none' && style.visibility !== 'hidden'
      && el.getClientRects().length > 0;
  };
  const hasText = (el) => Array.from(el.childNodes).some(
    (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '');
  const controls = new Set(['INPUT', 'SELECT', 'TEXTAREA']);
  for (const el of document.body.querySelectorAll('*')) {
    if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(el.tagName)) continue;
    const textual = hasText(el) || (controls.has(el.tagName) && isField(el));
    if (!textual || !shown(el)) continue;
    const style = getComputedStyle(el);
    const ink = parse(style.color);
    if (ink === null) {
      problems.push('unreadable colour ' + style.color + ': ' + describe(el));
      continue;
    }
    const paper = backgroundOf(el);
    const seenInk = over(ink, paper);
    const [high, low] = [luminance(seenInk), luminance(paper)].sort((a, b) => b - a);
    const ratio = (high + 0.05) / (low + 0.05);
    if (ratio < 4.5) {
      problems.push('contrast ' + ratio.toFixed(2) + ' < 4.5: ' + describe(el)
        + ' (' + style.color + ' on rgb('
        + [paper.r, paper.g, paper.b].map(Math.round).join(', ') + '))');
    }
  }

  // 4. No stack trace.
  if (/Traceback \(most recent call last\)|File "[^"]*", line \d+/.test(document.body.innerText)) {
    problems.push('the page shows a stack trace');
  }
  return problems;
}
"""


@dataclass
class Screens:
    """Numbered screenshots of one test: test-output/browser/<test>/NN-page.png."""

    folder: Path
    taken: int = 0

    def path_for(self, name: str) -> Path:
        self.taken += 1
        return self.folder / f"{self.taken:02d}-{name}.png"


@dataclass
class Visitor:
    """One person's browser tab; every page it lands on is checked."""

    page: Page
    screens: Screens
    loads: int = 0
    checked: int = 0
    statuses: list[tuple[str, int]] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("load", self._count_load)
        self.page.on("response", self._note_document)
        self.page.on("pageerror", self._note_script_error)

    def _note_script_error(self, error: Error) -> None:
        self.script_errors.append(f"{self.page.url}: {error.message}")

    def _count_load(self, _page: Page) -> None:
        self.loads += 1

    def _note_document(self, response: Response) -> None:
        if response.request.resource_type == "document":
            self.statuses.append((response.url, response.status))

    def goto(self, path: str, name: str | None = None) -> Response:
        response = self.page.goto(path)
        assert response is not None
        self.landed(name)
        return response

    def submit(self, action: Callable[[], Any], name: str | None = None) -> Response:
        """Run ``action`` (a click or a key press) and check the page it leads to."""
        with self.page.expect_navigation() as navigation:
            action()
        self.landed(name)
        return navigation.value

    def click(self, target: str | Locator, name: str | None = None) -> Response:
        locator = self.page.locator(target) if isinstance(target, str) else target
        return self.submit(locator.click, name)

    def landed(self, name: str | None = None) -> None:
        """The page has loaded: check it, and save a screenshot of a key page."""
        self.page.wait_for_load_state("load")
        self.checked += 1
        self.check()
        if name is not None:
            self.shoot(name)

    def check(self) -> None:
        """The accessibility check of the page as it is now (also after a change in it)."""
        problems = self.page.evaluate(A11Y_JS)
        assert problems == [], f"{self.page.url}: {problems}"

    def shoot(self, name: str) -> None:
        self.page.screenshot(path=self.screens.path_for(name), full_page=True)

    def finish(self) -> None:
        """Every page this tab loaded was checked; no server error, no script error."""
        self.page.evaluate("1")  # let the last events arrive
        assert self.loads == self.checked, f"{self.loads} pages loaded, {self.checked} checked"
        assert all(status < 500 for _, status in self.statuses), self.statuses
        assert self.script_errors == []

    # What a person does on the portal's pages.

    def h1(self) -> str:
        return self.page.locator("h1").inner_text()

    def log_in(self, username: str, password: str, name: str | None = None) -> Response:
        self.goto("/login")
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(password)
        return self.click(self.page.get_by_role("button", name="Log in", exact=True), name)

    def factor(self, heading: str | re.Pattern[str]) -> Locator:
        """The second-factor section whose title matches ``heading``."""
        return self.page.locator("section.factor").filter(
            has=self.page.get_by_role("heading", name=heading)
        )

    def answer(self, section: Locator, response: str, name: str | None = None) -> Response:
        section.get_by_label("Response").fill(response)
        return self.click(section.get_by_role("button"), name)

    def log_out(self, name: str | None = None) -> Response:
        return self.click(self.page.get_by_role("button", name=re.compile(r"^Log out")), name)


def factor_titles(visitor: Visitor) -> list[str]:
    return visitor.page.locator("section.factor h2").all_inner_texts()


def challenges(locator: Locator) -> list[str]:
    return [text.strip() for text in locator.locator("strong.challenge").all_inner_texts()]


def card_grid(page: Page) -> dict[int, str]:
    """The values of a printed card page: index -> 3-character value."""
    cells: list[list[str]] = page.locator("table.grid tr").evaluate_all(
        "rows => rows.flatMap(row => Array.from(row.children).map(cell => cell.textContent.trim()))"
    )
    flat = [str(text) for text in cells]
    return {int(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def pairs(values: dict[int, str], indices: list[str]) -> str:
    return "".join(values[int(index)] for index in indices)


# The user's devices, as the tests play them.


def totp_now(secret_base32: str, clock: FakeClock) -> str:
    padded = secret_base32 + "=" * (-len(secret_base32) % 8)
    return otp.totp(base64.b32decode(padded), int(clock.now().timestamp()))


def ocra_response(key: bytes, challenge: str, pin: str) -> str:
    return ocra.ocra_response(SUITE, key, question=challenge, password_hash=ocra.pin_hash(pin))


@dataclass
class Made:
    """What the card factory programs or prints for a mailed device (R5.2)."""

    device_id: str
    secret: bytes

    @property
    def card_values(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in json.loads(self.secret).items()}


def factory_copy(application: Application, serial: str) -> Made:
    """The secret of the device with this serial, as the card factory receives it.

    The portal never shows a physical device's secret to the user (it goes into the
    device); the test reads it from the store with the application's own key, playing
    the factory that programs the card or prints the code card.
    """
    query = select(devices.c.device_id, devices.c.secret_sealed).where(devices.c.serial == serial)
    with application.engine.connect() as connection:
        row = connection.execute(query).one()
    return Made(row.device_id, application.context.box.open(row.secret_sealed, row.device_id))


def user_named(application: Application, username: str) -> User:
    with application.context.uow() as uow:
        user = uow.users.get(username)
    assert user is not None
    return user
