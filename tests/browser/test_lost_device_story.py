"""The lost-device story in the browser: the Client Services console and the Client Portal.

A client loses their challenge card. An agent signs in to the console with a staff token,
looks the caller up, verifies them with the question shown, marks the card lost and issues
a temporary passcode (shown once). The client logs in with it on the portal (full access);
on day 3 the same passcode gives only the restricted portal, with its banner and the
online card page; the client requests, prints (page and PDF) and activates an online card
and logs in with it; the agent orders a replacement; it arrives, the client activates it,
and the temporary credentials end (R5.5, R6, R7, R8).

Time moves with the injected FakeClock. SQLite only (see conftest.py); the same story
runs against a real server on both databases in tests/acceptance/test_lost_device_story.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from playwright.sync_api import expect

from securelogin.domain.devices import DeviceKind
from securelogin.services import devices
from securelogin.services.context import Caller
from tests.browser.conftest import Served
from tests.browser.pages import (
    Visitor,
    card_grid,
    challenges,
    factor_titles,
    factory_copy,
    ocra_response,
    pairs,
    user_named,
)
from tests.conftest import PASSWORD, QUESTIONS, make_user

USER = "story123"
PIN = "2468"
NEW_PIN = "1357"
ANSWERS = {q["question"]: q["answer"] for q in QUESTIONS}


def lost_card_owner(served: Served) -> str:
    """A client whose challenge card is active; returns its serial."""
    make_user(served.application, USER)
    user = user_named(served.application, USER)
    ctx, caller = served.application.context, Caller("test")
    placed = devices.order_device(
        ctx, user, kind=DeviceKind.CHALLENGE_CARD, pin=PIN, country="US", caller=caller
    )
    key = factory_copy(served.application, placed.device.serial).secret
    code, _ = devices.activation_challenge(ctx, user, placed.device.device_id)
    assert code is not None
    devices.activate_device(
        ctx,
        user,
        placed.device.device_id,
        serial=placed.device.serial,
        response=ocra_response(key, code, PIN),
        caller=caller,
    )
    return placed.device.serial


def verify_caller(agent: Visitor, lookup: str, name: str | None = None) -> None:
    """Find the caller and check their answer to the question the console shows."""
    page = agent.page
    agent.goto("/console")
    page.get_by_label("User name or e-mail address").fill(lookup)
    agent.click(page.get_by_role("button", name="Start verification"), name and f"{name}-question")
    question = page.locator(".big-question").inner_text().strip()
    assert question in ANSWERS  # one of the caller's own questions, shown to the agent
    page.get_by_label("The caller's answer, exactly as said").fill(ANSWERS[question])
    agent.click(page.get_by_role("button", name="Check the answer"), name)
    assert agent.h1() == f"Caller {USER}"


def test_lost_card_temporary_passcode_restricted_portal_online_card_and_replacement(
    served: Served, visitors: Callable[[], Visitor]
) -> None:
    lost_serial = lost_card_owner(served)
    agent, client = visitors(), visitors()
    clock = served.clock
    console, portal = agent.page, client.page

    # The agent signs in with a staff token and verifies the caller.
    agent.goto("/console/login", "console-sign-in")
    console.get_by_label("Agent token").fill(served.agent_token())
    agent.click(console.get_by_role("button", name="Sign in"), "console-find-caller")
    verify_caller(agent, f"{USER}@example.com", "console-caller")
    verified = console.get_by_role("status").filter(has_text="Verified")
    until = verified.locator("time").get_attribute("datetime")
    assert until == (clock.now() + timedelta(minutes=15)).isoformat()  # R8.2: 15 minutes
    expect(console.locator("tbody tr", has_text=lost_serial)).to_contain_text("active")

    # The card is marked lost; a temporary passcode is issued and shown once, large.
    row = console.locator("tbody tr", has_text=lost_serial)
    row.get_by_label(f"Reason for {lost_serial}").select_option("lost")
    agent.click(row.get_by_role("button", name=re.compile("^Mark")), "console-card-lost")
    expect(console.get_by_role("status").filter(has_text="marked")).to_be_visible()
    expect(console.locator("tbody tr", has_text=lost_serial)).to_contain_text("lost")
    issued = agent.click(
        console.get_by_role("button", name="Issue a temporary passcode"), "console-passcode"
    )
    assert issued.headers["cache-control"] == "no-store"
    passcode = console.locator("p.big").inner_text().strip()
    assert re.fullmatch(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}", passcode)  # R6.2
    windows = [t.get_attribute("datetime") for t in console.locator("main time").all()]
    issued_at = clock.now()
    assert windows == [
        (issued_at + timedelta(days=2)).isoformat(),  # full access
        (issued_at + timedelta(days=12)).isoformat(),  # then the online card page only
    ]

    # Day 1: the client logs in with the passcode; lower case is refused with a hint.
    client.log_in(USER, PASSWORD, "verify-passcode")
    assert factor_titles(client) == ["Temporary passcode"]
    section = client.factor("Temporary passcode")
    refused = client.answer(section, passcode.lower(), "passcode-lower-case")
    assert refused.status == 401
    expect(section.get_by_role("alert")).to_contain_text("Login failed")
    client.answer(client.factor("Temporary passcode"), passcode, "full-access-day-1")
    assert portal.url.endswith("/security")

    # Day 3: the session is long gone; the passcode now gives only the online card page.
    clock.advance(timedelta(days=2, hours=1))
    client.log_in(USER, PASSWORD)
    client.answer(client.factor("Temporary passcode"), passcode, "restricted-portal")
    assert portal.url.endswith("/online-card")
    banner = portal.get_by_role("note")
    expect(banner).to_contain_text("Limited access.")
    expect(banner).to_contain_text("more than 2 days old")
    nav = portal.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Secure Login System")).to_have_count(0)
    client.goto("/security")  # only the online card page is open to this session
    assert portal.url.endswith("/online-card")

    # The client requests the online card, prints it (PDF and print page), activates it.
    shown = client.click(
        portal.get_by_role("button", name="Get an online security code card"), "online-card"
    )
    assert shown.headers["cache-control"] == "no-store"
    values = card_grid(portal)
    assert sorted(values) == list(range(1, 101))  # R7.1: index numbers 1 to 100
    assert all(re.fullmatch(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{3}", v) for v in values.values())
    expect(portal.locator(".printable")).to_contain_text(f"User name: {USER}")
    pdf_link = portal.get_by_role("link", name="download the PDF")
    pdf = portal.request.get(pdf_link.get_attribute("href") or "")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["cache-control"] == "no-store"
    assert pdf.body().startswith(b"%PDF-")
    card_path = (pdf_link.get_attribute("href") or "").removesuffix("/card.pdf")
    client.goto(f"{card_path}/print", "print-page")
    assert card_grid(portal) == values  # the same card, printable again until activation
    portal.emulate_media(media="print")
    expect(portal.locator("header.top")).to_be_hidden()
    expect(portal.locator("form.noprint")).to_be_hidden()
    expect(portal.locator("table.grid")).to_be_visible()
    client.shoot("print-styled")
    portal.emulate_media(media="screen")
    label = portal.locator("label[for=response]").inner_text()
    indices = re.findall(r"\d+", label)
    assert len(indices) == 2 and indices[0] != indices[1]  # R7.3: two different indices
    portal.get_by_label(label).fill(pairs(values, indices))
    client.click(portal.get_by_role("button", name="Activate the card"), "online-card-active")
    notice = portal.get_by_role("status")
    expect(notice).to_contain_text("Your online security code card is active until")
    expires = (clock.now() + timedelta(days=21)).strftime("%Y-%m-%d %H:%M")  # R7.3
    expect(notice).to_contain_text(expires)
    client.log_out()

    # The online card gives full access again.
    client.log_in(USER, PASSWORD, "verify-online-card")
    online = client.factor(re.compile("^Online card"))
    client.answer(online, pairs(values, challenges(online)), "full-access-online-card")
    assert portal.url.endswith("/security")

    # The agent (a new verification: the first one has expired) orders a replacement.
    agent.goto("/console")
    verify_caller(agent, USER)
    expect(console.locator("main")).to_contain_text("Temporary passcode issued")
    expect(console.locator("main")).to_contain_text("expires")  # the online card's expiry
    console.get_by_label("Challenge card", exact=True).check()
    console.get_by_label("PIN chosen by the caller (challenge card)").fill(NEW_PIN)
    console.get_by_label("PIN again").fill(NEW_PIN)
    console.get_by_label("Shipping country").select_option("US")
    agent.click(console.get_by_role("button", name="Order", exact=True), "console-ordered")
    ordered = console.get_by_role("status").filter(has_text="Ordered")
    arrival = (clock.now() + timedelta(days=2)).strftime("%Y-%m-%d")
    expect(ordered).to_contain_text(f"expected by {arrival}")
    found = re.search(r"serial (\d+)", ordered.inner_text())
    assert found is not None
    serial = found.group(1)
    key = factory_copy(served.application, serial).secret

    # The client sees it mailed; it arrives two days later and is activated.
    client.goto("/security", "replacement-mailed")
    row = portal.locator("tbody tr", has_text=serial)
    expect(row.locator(".state")).to_have_text("mailed")
    clock.advance(timedelta(days=2))
    client.log_in(USER, PASSWORD)
    online = client.factor(re.compile("^Online card"))
    client.answer(online, pairs(values, challenges(online)))
    row = portal.locator("tbody tr", has_text=serial)
    client.click(row.get_by_role("link", name=re.compile("^Activate")), "activate-replacement")
    code = challenges(portal.locator("main"))
    portal.get_by_label("Serial number (printed on the device)").fill(serial)
    portal.get_by_label("Response").fill(ocra_response(key, code[0], NEW_PIN))
    client.click(portal.get_by_role("button", name="Activate"), "replacement-active")
    # The session made with the online card ended with it (R5.5): back to the login page.
    assert portal.url.endswith("/login?message=device_active")
    expect(portal.get_by_role("status")).to_contain_text("Your device is active")

    # The temporary credentials have ended: only the new card is offered.
    client.log_in(USER, PASSWORD, "verify-replacement")
    assert factor_titles(client) == [f"Card {serial[-5:]}"]
    card = client.factor(f"Card {serial[-5:]}")
    client.answer(card, ocra_response(key, challenges(card)[0], NEW_PIN), "signed-in")
    assert portal.url.endswith("/security")
    expect(portal.locator("tbody tr", has_text=serial).locator(".state")).to_have_text("active")

    # The console agrees.
    verify_caller(agent, USER, "console-after")
    expect(console.locator("main")).to_contain_text("No usable temporary passcode.")
