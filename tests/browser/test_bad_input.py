"""Bad input through the browser (issue 5): what a person sees when a form is wrong.

Missing or oversized fields re-render the form with the message beside the field and what
was typed kept, never a password or PIN; a forged or missing CSRF token gets the 403 page;
another user's device or card is "not found"; the contract's login messages are shown as
written. No page shows a stack trace (the check of pages.A11Y_JS, run on every page).

SQLite only (see conftest.py).
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from securelogin.domain.devices import DeviceKind
from securelogin.services import devices, online_cards
from securelogin.services.context import Caller
from tests.browser.conftest import Served
from tests.browser.pages import Visitor, user_named
from tests.conftest import PASSWORD, make_user

USER = "abcde123"
OTHER = "other123"


def field_of(page: Page, name: str) -> Locator:
    """The .field block holding the input ``name``: its label, input and message."""
    return page.locator("div.field", has=page.locator(f"[name={name}]"))


def test_a_missing_or_oversized_login_field_is_named_beside_it_and_input_is_kept(
    served: Served, visitor: Visitor
) -> None:
    page = visitor.page
    visitor.goto("/login")
    page.get_by_label("User name").fill(USER)
    visitor.click(page.get_by_role("button", name="Log in", exact=True), "missing-password")
    password = field_of(page, "password")
    expect(password.locator(".error")).to_have_text("Enter your password.")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Password")).to_have_attribute("aria-describedby", "password-error")
    expect(page.get_by_label("User name")).to_have_value(USER)  # kept
    expect(field_of(page, "username").locator(".error")).to_have_count(0)

    page.get_by_label("User name").fill("")
    page.get_by_label("Password").fill("Secret4you")
    visitor.click(page.get_by_role("button", name="Log in", exact=True), "missing-user-name")
    expect(field_of(page, "username").locator(".error")).to_have_text("Enter your user name.")
    expect(page.get_by_label("Password")).to_have_value("")  # a password is never sent back
    assert "Secret4you" not in page.content()

    long_name = "a" * 65
    page.get_by_label("User name").evaluate("input => input.removeAttribute('maxlength')")
    page.get_by_label("User name").fill(long_name)
    page.get_by_label("Password").fill("Secret4you")
    visitor.click(page.get_by_role("button", name="Log in", exact=True), "oversized-user-name")
    expect(field_of(page, "username").locator(".error")).to_have_text(
        "The user name is at most 64 characters."
    )
    expect(page.get_by_label("User name")).to_have_value(long_name)
    expect(page.get_by_label("Password")).to_have_value("")


def test_a_wrong_order_form_keeps_the_choices_but_never_the_pins(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    page = visitor.page
    visitor.log_in(USER, PASSWORD)
    page.get_by_label("Challenge card (with a 4-digit PIN)").check()
    page.get_by_label("PIN for a challenge card (4 digits)").fill("2468")
    page.get_by_label("PIN again").fill("2469")
    page.get_by_label("Shipping country").select_option("DE")
    refused = visitor.click(page.get_by_role("button", name="Order"), "pins-differ")
    assert refused.status == 400
    expect(field_of(page, "pin_again").locator(".error")).to_have_text(
        "The two PINs are not the same."
    )
    expect(page.get_by_label("Shipping country")).to_have_value("DE")
    expect(page.get_by_label("Challenge card (with a 4-digit PIN)")).to_be_checked()
    expect(page.get_by_label("PIN for a challenge card (4 digits)")).to_have_value("")
    expect(page.get_by_label("PIN again")).to_have_value("")
    assert "2469" not in page.content()
    expect(page.locator("tbody tr")).to_have_count(0)  # nothing was ordered


def test_the_contract_messages_are_shown_as_written_and_help_is_one_link_away(
    served: Served, visitor: Visitor
) -> None:
    make_user(served.application, USER)
    page = visitor.page
    refused = visitor.log_in("abc-123", PASSWORD, "bad-character")
    assert refused.status == 400
    expect(field_of(page, "username").locator(".error")).to_have_text("BAD CHARACTER")

    refused = visitor.log_in(USER.capitalize(), PASSWORD, "caps-lock")
    assert refused.status == 401
    expect(field_of(page, "username").locator(".error")).to_have_text(
        "Invalid user name password combination"
    )
    expect(page.get_by_role("alert").filter(has_text="Caps Lock")).to_be_visible()

    visitor.click(page.get_by_role("link", name="Trouble logging in?").last, "help")
    assert page.url.endswith("/help")
    expect(page.locator("h2")).to_have_text("Which best describes your situation?")
    for situation in ("BAD CHARACTER", "Invalid user name password combination", "Login failed"):
        summary = page.locator("summary", has_text=situation)
        expect(summary).to_have_count(1)
        summary.click()  # opening an answer is not a navigation
        expect(page.locator("details[open]", has=summary).locator("p")).to_be_visible()
    visitor.check()  # the opened answers pass the contrast check too
    visitor.shoot("help-answers")


def test_a_forged_or_missing_csrf_token_gets_the_403_page(served: Served, visitor: Visitor) -> None:
    make_user(served.application, USER)
    page = visitor.page
    visitor.goto("/login")
    page.locator("input[name=csrf]").evaluate("field => { field.value = 'A'.repeat(43); }")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    refused = visitor.click(page.get_by_role("button", name="Log in", exact=True), "forged")
    assert refused.status == 403
    assert visitor.h1() == "Not allowed"
    expect(page.locator("main")).to_contain_text("This form has expired or did not come from us.")
    assert not any(c["name"] == "sl_session" for c in page.context.cookies())

    visitor.log_in(USER, PASSWORD)  # a real session; then a form without its token
    assert page.url.endswith("/security")
    page.get_by_label("Security code card (printed)").check()
    page.locator("form[action='/security/orders'] input[name=csrf]").evaluate(
        "field => field.remove()"
    )
    refused = visitor.click(page.get_by_role("button", name="Order"), "missing")
    assert refused.status == 403
    assert visitor.h1() == "Not allowed"
    visitor.goto("/security")
    expect(page.locator("tbody tr")).to_have_count(0)  # nothing was ordered


def test_another_users_device_and_card_are_not_found(served: Served, visitor: Visitor) -> None:
    make_user(served.application, USER)
    make_user(served.application, OTHER)
    other = user_named(served.application, OTHER)
    ctx, caller = served.application.context, Caller("test")
    placed = devices.order_device(
        ctx, other, kind=DeviceKind.CODE_CARD, pin=None, country="US", caller=caller
    )
    card = online_cards.request_card(ctx, other, caller)
    page = visitor.page
    visitor.log_in(USER, PASSWORD)

    refused = visitor.goto(f"/security/devices/{placed.device.device_id}/activate", "device")
    assert refused.status == 404
    assert placed.device.serial not in page.content()
    refused = visitor.goto(f"/online-card/{card.card.card_id}/print", "card")
    assert refused.status == 404
    expect(page.locator("table.grid")).to_have_count(0)
    pdf = page.request.get(f"/online-card/{card.card.card_id}/card.pdf")
    assert pdf.status == 404
    assert not pdf.body().startswith(b"%PDF")
    refused = visitor.goto("/no/such/page", "no-such-page")
    assert refused.status == 404
    assert visitor.h1() == "Page not found"
    assert re.search(r"Traceback|File \"", page.content()) is None
