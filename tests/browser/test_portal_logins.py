"""Logging in to the Client Portal in a browser, as a person would (issue 5).

Each kind of permanent device is enrolled or ordered and activated through the portal's
own pages, then used for a full login; the lockout after 10 failures shows its end time in
the reader's time zone; a login works with the keyboard alone. Temporary passcodes and
online cards are used in test_lost_device_story.py.

SQLite only (see conftest.py): the rules are tested on both databases elsewhere.
Every page visited passes the accessibility check of pages.A11Y_JS.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from securelogin.domain.devices import DeviceKind
from securelogin.services import devices
from securelogin.services.context import Caller
from tests.browser.conftest import Served
from tests.browser.pages import (
    Visitor,
    challenges,
    factor_titles,
    factory_copy,
    ocra_response,
    pairs,
    totp_now,
    user_named,
)
from tests.conftest import PASSWORD, make_user

USER = "abcde123"
PIN = "2468"
STEP = timedelta(seconds=30)


def test_login_with_an_authenticator_app_enrolled_on_the_security_page(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    page = visitor.page

    visitor.log_in(USER, PASSWORD, "security-no-device")  # never enrolled: password alone
    assert page.url.endswith("/security")
    expect(page.get_by_text("You have no security device yet")).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sl_session"]["httpOnly"] and cookies["sl_session"]["sameSite"] == "Strict"
    assert cookies["sl_csrf"]["httpOnly"] and cookies["sl_csrf"]["sameSite"] == "Strict"

    enrol = page.locator(
        "section", has=page.get_by_role("heading", name="Add an authenticator app")
    )
    shown = visitor.click(enrol.get_by_role("button", name="Start"), "totp-qr-code")
    assert shown.headers["cache-control"] == "no-store"  # the page shows a secret
    qr = page.get_by_role("img", name=re.compile("QR code"))
    assert (qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    secret = page.locator("code.secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # 160 bits, base32 (R5.1)

    page.get_by_label("6-digit code").fill(totp_now(secret, served.clock))
    visitor.click(page.get_by_role("button", name="Activate"), "totp-active")
    expect(page.get_by_role("status")).to_have_text("Your device is active.")
    row = page.locator("tbody tr", has_text="Authenticator app")
    expect(row.locator(".state")).to_have_text("active")
    visitor.log_out("logged-out")
    expect(page.get_by_role("status")).to_have_text("You have logged out.")

    served.clock.advance(STEP)  # the activation's step is used (R5): the next code is new
    visitor.log_in(USER, PASSWORD, "verify-authenticator")
    assert page.url.endswith("/login/verify")
    assert factor_titles(visitor) == ["Authenticator app"]
    app = visitor.factor("Authenticator app")
    expect(app).to_contain_text("Type the 6-digit code your authenticator app shows now.")
    visitor.answer(app, totp_now(secret, served.clock), "signed-in")
    assert page.url.endswith("/security")
    expect(page.get_by_role("button", name=f"Log out ({USER})")).to_be_visible()


def test_login_with_a_challenge_card_ordered_and_activated_on_the_portal(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    page = visitor.page
    visitor.log_in(USER, PASSWORD)

    page.get_by_label("Challenge card (with a 4-digit PIN)").check()
    page.get_by_label("PIN for a challenge card (4 digits)").fill(PIN)
    page.get_by_label("PIN again").fill(PIN)
    page.get_by_label("Shipping country").select_option("US")
    ordered = visitor.click(page.get_by_role("button", name="Order"), "ordered")
    assert ordered.headers["cache-control"] == "no-store"
    assert visitor.h1() == "Your device is on its way"
    serial = re.search(r"Serial number (\d+)", page.locator("main").inner_text())
    assert serial is not None
    times = page.locator("main time")
    assert times.nth(0).get_attribute("datetime") == served.clock.now().isoformat()  # mailed
    arrival = (served.clock.now() + timedelta(days=2)).isoformat()  # R5.3: US, 2 days
    assert times.nth(1).get_attribute("datetime") == arrival
    made = factory_copy(served.application, serial.group(1))

    visitor.goto("/security", "security-mailed")
    row = page.locator("tbody tr", has_text=serial.group(1))
    expect(row.locator(".state")).to_have_text("mailed")
    assert row.locator("time").nth(1).get_attribute("datetime") == arrival
    visitor.click(row.get_by_role("link", name=re.compile("^Activate")), "activate-challenge")
    code = challenges(page.locator("main"))
    assert len(code) == 1 and re.fullmatch(r"\d{6}", code[0])
    page.get_by_label("Serial number (printed on the device)").fill(serial.group(1))
    page.get_by_label("Response").fill(ocra_response(made.secret, code[0], PIN))
    visitor.click(page.get_by_role("button", name="Activate"), "challenge-card-active")
    expect(page.get_by_role("status")).to_have_text("Your device is active.")
    expect(page.locator("tbody tr", has_text=serial.group(1)).locator(".state")).to_have_text(
        "active"
    )
    visitor.log_out()

    visitor.log_in(USER, PASSWORD, "verify-challenge-card")
    card = visitor.factor(f"Card {serial.group(1)[-5:]}")
    expect(card).to_contain_text("Turn on the card and type your 4-digit PIN.")
    challenge = challenges(card)
    assert len(challenge) == 1 and re.fullmatch(r"\d{6}", challenge[0])  # QN06
    visitor.answer(card, ocra_response(made.secret, challenge[0], PIN), "signed-in")
    assert page.url.endswith("/security")


def test_login_with_a_code_card_mailed_abroad(served: Served, visitor: Visitor) -> None:
    make_user(served.application, USER)
    page = visitor.page
    visitor.log_in(USER, PASSWORD)

    page.get_by_label("Security code card (printed)").check()
    page.get_by_label("Shipping country").select_option("DE")
    visitor.click(page.get_by_role("button", name="Order"), "ordered")
    serial = re.search(r"Serial number (\d+)", page.locator("main").inner_text())
    assert serial is not None
    arrival = (served.clock.now() + timedelta(days=14)).isoformat()  # R5.3: abroad, 14 days
    assert page.locator("main time").nth(1).get_attribute("datetime") == arrival
    printed = factory_copy(served.application, serial.group(1)).card_values
    assert len(printed) == 100

    visitor.goto("/security")
    row = page.locator("tbody tr", has_text=serial.group(1))
    visitor.click(row.get_by_role("link", name=re.compile("^Activate")), "activate-code-card")
    indices = challenges(page.locator("main"))
    assert len(indices) == 2 and indices[0] != indices[1]
    page.get_by_label("Serial number (printed on the device)").fill(serial.group(1))
    page.get_by_label("Response").fill(pairs(printed, indices))
    visitor.click(page.get_by_role("button", name="Activate"))
    expect(page.get_by_role("status")).to_have_text("Your device is active.")
    visitor.log_out()

    visitor.log_in(USER, PASSWORD, "verify-code-card")
    card = visitor.factor(f"Code card {serial.group(1)[-5:]}")
    asked = challenges(card)
    assert len(asked) == 2 and all(1 <= int(i) <= 100 for i in asked)
    visitor.answer(card, pairs(printed, asked), "signed-in")
    assert page.url.endswith("/security")


def test_ten_failures_lock_the_login_and_the_page_tells_when_it_ends_in_local_time(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    page = visitor.page
    for attempt in range(1, 11):
        if attempt > 1:
            served.clock.advance(timedelta(minutes=1))
        visitor.log_in(USER, f"Wrong{attempt}pass", "failed" if attempt == 1 else None)
        if attempt < 10:
            expect(page.locator("#username-error")).to_have_text(
                "Invalid user name password combination"
            )
            expect(page.get_by_label("Password")).to_have_value("")
    last_failure = served.clock.now()

    served.clock.advance(timedelta(hours=1))
    locked = visitor.log_in(USER, PASSWORD, "locked")  # the right password: still refused
    assert locked.status == 423
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed login attempts.")
    expect(alert).to_contain_text("Nobody, not even Client Services, can lift the lock early.")
    until = alert.locator("time")
    ends = last_failure + timedelta(hours=24)  # R3.3: 24 h after the last failed attempt
    assert until.get_attribute("datetime") == ends.isoformat()
    # 2026-03-03 09:39 UTC, shown in the reader's time zone (Europe/Zurich, CET = UTC+1).
    assert ends.strftime("%Y-%m-%d %H:%M") == "2026-03-03 09:39"
    expect(until).to_have_text(re.compile(r"3 Mar 2026.*10:39.*(CET|GMT\+1)"))
    assert page.url.endswith("/login")


def test_login_with_the_keyboard_alone_picking_the_second_device(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    user = user_named(served.application, USER)
    ctx, caller = served.application.context, Caller("test")
    placed = devices.order_device(
        ctx, user, kind=DeviceKind.CODE_CARD, pin=None, country="US", caller=caller
    )
    printed = factory_copy(served.application, placed.device.serial).card_values
    _, indices = devices.activation_challenge(ctx, user, placed.device.device_id)
    assert indices is not None
    devices.activate_device(
        ctx,
        user,
        placed.device.device_id,
        serial=placed.device.serial,
        response=printed[indices[0]] + printed[indices[1]],
        caller=caller,
    )
    enrolment = devices.enrol_totp(ctx, user, caller)
    devices.activate_device(
        ctx,
        user,
        enrolment.device.device_id,
        serial=None,
        response=totp_now(enrolment.secret, served.clock),
        caller=caller,
    )
    page = visitor.page
    keyboard = page.keyboard

    def focused() -> str:
        return str(page.evaluate("document.activeElement && document.activeElement.id"))

    visitor.goto("/login", "login")
    assert focused() == "username"  # autofocus: no click needed
    keyboard.type(USER)
    keyboard.press("Tab")
    assert focused() == "password"
    keyboard.type(PASSWORD)
    visitor.submit(lambda: keyboard.press("Enter"), "verify-picker")
    titles = factor_titles(visitor)
    assert len(titles) == 2, titles  # the device picker: one section per device
    second = titles[1]
    assert focused() == "response-1"
    for _ in range(2):  # past the first device's button, into the second device's field
        keyboard.press("Tab")
    assert focused() == "response-2"
    if second.startswith("Code card"):
        response = pairs(printed, challenges(visitor.factor(second)))
    else:
        served.clock.advance(STEP)
        response = totp_now(enrolment.secret, served.clock)
    keyboard.type(response)
    visitor.submit(lambda: keyboard.press("Enter"), "signed-in")
    assert page.url.endswith("/security")
