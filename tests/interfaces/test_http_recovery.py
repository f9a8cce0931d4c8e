"""Getting back in over HTTP (R6.3, R6.6, R7, R5.5, R8.3): what a temporary passcode gives
at each door and when, what a ``card_print_only`` session may do, the online security code
card, reactivation, and password reset.

Complements test_http_agent.py (the agent's side). Every test runs through the ASGI app
(TestClient) on SQLite and on PostgreSQL; time moves only with the application's clock
(``clock``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from securelogin.bootstrap import Application
from securelogin.domain.errors import ConflictError
from securelogin.services import online_cards
from securelogin.services.context import Caller
from tests.clock import FakeClock
from tests.conftest import PASSWORD, make_user, user_body
from tests.interfaces.test_http_agent import (
    AGENT,
    DAY,
    DEVICES,
    HOUR,
    LOGINS,
    MINUTE,
    OTHER,
    SECOND,
    SESSION,
    USERNAME,
    Agent,
    activate_code_card,
    bearer,
    card_response,
    code_card_answer,
    enrol_code_card,
    error_of,
    first_step,
    log_in,
    new_agent_token,
    offered_kinds,
    parse_time,
    password_only_token,
    session_of,
    wrong_card_response,
)
from tests.interfaces.test_http_second_factor import counted_failures

ONLINE_CARD = "/api/v1/online-card"
RESETS = "/api/v1/password-resets"
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
NEW_PASSWORD = "Battery7staple"
WRONG_CODE_MESSAGE = "Invalid user name or reset code"


# ---- helpers -----------------------------------------------------------------------------


def passcode_login(
    client: TestClient, passcode: str, platform: str = "portal", username: str = USERNAME
) -> Any:
    return log_in(client, "temporary_passcode", passcode, platform, username)


def card_login(client: TestClient, values: dict[str, str], platform: str = "portal") -> Any:
    return log_in(
        client,
        "online_card",
        lambda factor: card_response(values, factor["challenge"]["indices"]),
        platform,
    )


def token_of(reply: Any) -> dict[str, str]:
    return bearer(session_of(reply)["token"])


def request_card(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    reply = client.post(ONLINE_CARD, headers=headers)
    assert reply.status_code == 201, reply.text
    card: dict[str, Any] = reply.json()
    return card


def activate_card(
    client: TestClient, headers: dict[str, str], card: dict[str, Any], response: str | None = None
) -> Any:
    """Answer the card's latest activation challenge (the right values unless told)."""
    challenge = client.get(f"{ONLINE_CARD}/{card['card_id']}/activation", headers=headers)
    assert challenge.status_code == 200, challenge.text
    indices = challenge.json()["challenge"]["indices"]
    return client.post(
        f"{ONLINE_CARD}/{card['card_id']}/activation",
        headers=headers,
        json={"response": response or card_response(card["values"], indices)},
    )


def is_ended(client: TestClient, headers: dict[str, str]) -> bool:
    reply = client.get(SESSION, headers=headers)
    if reply.status_code == 401:
        error_of(reply, 401, "unauthenticated")
        return True
    assert reply.status_code == 200, reply.text
    return False


def reset(client: TestClient, code: str, password: str = NEW_PASSWORD, **extra: str) -> Any:
    body = {"username": USERNAME, "reset_code": code, "new_password": password, **extra}
    return client.post(RESETS, json=body)


@dataclass
class Recovering:
    """A user who lost a code card: its order, the temporary passcode, when it was issued."""

    device: dict[str, Any]
    passcode: str
    issued_at: Any


@pytest.fixture
def user(application: Application) -> str:
    return make_user(application, USERNAME)


@pytest.fixture
def agent(client: TestClient, application: Application, user: str) -> Agent:
    return Agent(client, new_agent_token(application, "amy"))


@pytest.fixture
def recovering(client: TestClient, agent: Agent, clock: FakeClock) -> Recovering:
    device = enrol_code_card(client)
    return Recovering(device, agent.passcode(), clock.now())


@pytest.fixture
def print_only(client: TestClient, recovering: Recovering, clock: FakeClock) -> dict[str, str]:
    """A portal session made with the passcode on day 3: access ``card_print_only``."""
    clock.set(recovering.issued_at + 2 * DAY + HOUR)
    session = session_of(passcode_login(client, recovering.passcode))
    assert session["access"] == "card_print_only"
    return bearer(session["token"])


# ---- the temporary passcode at each door (R6.3, R3.6) ------------------------------------


def test_a_passcode_gives_full_access_at_both_doors_for_its_first_2_days(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    for offset in (0 * DAY, 2 * DAY - SECOND):
        clock.set(recovering.issued_at + offset)
        for platform in ("portal", "trading"):
            session = session_of(passcode_login(client, recovering.passcode, platform))
            assert session["access"] == "full"
            assert session["factor_kind"] == "temporary_passcode"
            assert session["platform"] == platform


def test_after_2_days_the_trading_door_refuses_a_passcode_and_the_portal_gives_card_print_only(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    clock.set(recovering.issued_at + 2 * DAY)
    error_of(first_step(client, "trading"), 403, "platform_not_permitted")
    session = session_of(passcode_login(client, recovering.passcode))
    assert session["access"] == "card_print_only"
    assert session["factor_kind"] == "temporary_passcode"

    clock.set(recovering.issued_at + 12 * DAY - SECOND)
    assert session_of(passcode_login(client, recovering.passcode))["access"] == "card_print_only"
    error_of(first_step(client, "trading"), 403, "platform_not_permitted")


def test_a_trading_login_started_in_the_first_2_days_and_answered_after_them_is_refused(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    clock.set(recovering.issued_at + 2 * DAY - MINUTE)
    first = first_step(client, "trading").json()
    (factor,) = first["factors"]
    clock.advance(MINUTE)
    answered = client.post(
        f"{LOGINS}/{first['login_id']}/response",
        json={"factor_id": factor["factor_id"], "response": recovering.passcode},
    )
    error_of(answered, 403, "platform_not_permitted")


def test_after_12_days_a_passcode_works_at_neither_door(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    clock.set(recovering.issued_at + 12 * DAY)
    error_of(first_step(client, "portal"), 403, "no_usable_second_factor")
    error_of(first_step(client, "trading"), 403, "no_usable_second_factor")


def test_a_lower_case_passcode_fails_with_the_upper_case_hint_and_is_not_counted(
    client: TestClient, application: Application, recovering: Recovering
) -> None:
    failed = passcode_login(client, recovering.passcode.lower())
    error = error_of(failed, 401, "login_failed")
    assert error["message"] == "Login failed"
    assert "upper case" in error["hint"]
    assert counted_failures(application) == 0
    assert session_of(passcode_login(client, recovering.passcode))["access"] == "full"


def test_a_wrong_passcode_is_login_failed_and_counted(
    client: TestClient, application: Application, recovering: Recovering
) -> None:
    wrong = "".join("2" if c != "2" else "3" for c in recovering.passcode)
    error_of(passcode_login(client, wrong), 401, "login_failed")
    assert counted_failures(application) == 1


# ---- a session ends with the temporary credential it was opened with (R6.3, R7.4) --------


def expires_at(client: TestClient, headers: dict[str, str]) -> Any:
    reply = client.get(SESSION, headers=headers)
    assert reply.status_code == 200, reply.text
    return parse_time(reply.json()["expires_at"])


@pytest.mark.parametrize("platform", ["portal", "trading"])
def test_a_full_session_made_with_a_passcode_ends_when_its_first_2_days_do(
    client: TestClient, recovering: Recovering, clock: FakeClock, platform: str
) -> None:
    end = recovering.issued_at + 2 * DAY
    clock.set(end - MINUTE)
    session = session_of(passcode_login(client, recovering.passcode, platform))
    assert session["access"] == "full"
    assert parse_time(session["expires_at"]) == end  # not 30 minutes idle, nor 24 hours
    headers = bearer(session["token"])

    clock.set(end - SECOND)
    assert expires_at(client, headers) == end
    clock.set(end)
    assert is_ended(client, headers)


def test_a_card_print_only_session_ends_when_the_passcode_stops_working_anywhere(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    end = recovering.issued_at + 12 * DAY
    clock.set(end - MINUTE)
    session = session_of(passcode_login(client, recovering.passcode))
    assert session["access"] == "card_print_only"
    assert parse_time(session["expires_at"]) == end
    headers = bearer(session["token"])

    clock.set(end - SECOND)
    assert not is_ended(client, headers)
    clock.set(end)
    assert is_ended(client, headers)


def test_a_session_made_with_an_online_card_ends_when_the_card_expires(
    client: TestClient, print_only: dict[str, str], clock: FakeClock
) -> None:
    card = request_card(client, print_only)
    assert activate_card(client, print_only, card).status_code == 200
    end = clock.now() + 21 * DAY
    clock.set(end - MINUTE)
    session = session_of(card_login(client, card["values"], "trading"))
    assert (session["access"], parse_time(session["expires_at"])) == ("full", end)
    headers = bearer(session["token"])

    clock.set(end - SECOND)
    assert not is_ended(client, headers)
    clock.set(end)
    assert is_ended(client, headers)


def test_a_session_made_with_a_passcode_early_in_its_window_keeps_the_doors_own_limit(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    session = session_of(passcode_login(client, recovering.passcode, "trading"))
    assert parse_time(session["expires_at"]) == clock.now() + 24 * HOUR
    clock.advance(24 * HOUR)
    assert is_ended(client, bearer(session["token"]))


# ---- what a card_print_only session may do (R6.3, R6.6) ----------------------------------


def test_a_card_print_only_session_reads_itself_and_its_devices_and_logs_out(
    client: TestClient, recovering: Recovering, print_only: dict[str, str]
) -> None:
    read = client.get(SESSION, headers=print_only)
    assert read.status_code == 200, read.text
    assert read.json()["access"] == "card_print_only"
    assert "token" not in read.json()
    devices = client.get(DEVICES, headers=print_only)
    assert devices.status_code == 200, devices.text
    assert [(d["device_id"], d["state"]) for d in devices.json()["devices"]] == [
        (recovering.device["device_id"], "suspended")
    ]
    assert client.delete(SESSION, headers=print_only).status_code == 204
    assert is_ended(client, print_only)


def test_a_card_print_only_session_requests_prints_and_activates_an_online_card(
    client: TestClient, print_only: dict[str, str], clock: FakeClock
) -> None:
    card = request_card(client, print_only)
    pdf = client.get(f"{ONLINE_CARD}/{card['card_id']}.pdf", headers=print_only)
    assert pdf.status_code == 200, pdf.text
    activated = activate_card(client, print_only, card)
    assert activated.status_code == 200, activated.text
    assert parse_time(activated.json()["expires_at"]) == clock.now() + 21 * DAY
    # The card gives full access at both doors (R7.4).
    for platform in ("portal", "trading"):
        session = session_of(card_login(client, card["values"], platform))
        assert (session["access"], session["factor_kind"]) == ("full", "online_card")


def test_a_card_print_only_session_is_forbidden_everything_else(
    client: TestClient,
    recovering: Recovering,
    print_only: dict[str, str],
    admin_token: str,
) -> None:
    device = recovering.device
    values = device["provisioning"]["values"]
    calls: list[tuple[str, str, Any]] = [
        ("POST", f"{DEVICES}/totp", None),
        ("POST", f"{DEVICES}/orders", {"kind": "code_card", "country": "US"}),
        ("POST", f"{DEVICES}/orders", {"kind": "challenge_card", "pin": "1357", "country": "US"}),
        ("GET", f"{DEVICES}/{device['device_id']}/activation", None),
        (
            "POST",
            f"{DEVICES}/{device['device_id']}/activation",
            {"serial": device["serial"], "response": values["1"] + values["2"]},
        ),
        ("POST", f"{AGENT}/verifications", {"username": USERNAME}),
        ("GET", f"{AGENT}/users/{USERNAME}?verification_id=ver_x", None),
        ("POST", f"{AGENT}/users/{USERNAME}/temporary-passcode", {"verification_id": "ver_x"}),
        ("POST", "/api/v1/admin/users", user_body("zzzzz999")),
        ("GET", f"/api/v1/admin/audit?username={USERNAME}", None),
    ]
    for method, path, body in calls:
        refused = client.request(method, path, json=body, headers=print_only)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "forbidden", (method, path, refused.text)

    # Nothing was changed, and the session itself still works for what it may do.
    devices = client.get(DEVICES, headers=print_only).json()["devices"]
    assert [(d["device_id"], d["state"]) for d in devices] == [(device["device_id"], "suspended")]
    assert not is_ended(client, print_only)
    assert offered_kinds(client) == ["temporary_passcode"]
    audit = client.get(
        "/api/v1/admin/audit", headers=bearer(admin_token), params={"username": USERNAME}
    )
    actions = [r["action"] for r in audit.json()["records"]]
    assert actions.count("device.ordered") == 1  # only the card it lost, ordered long ago
    assert "device.enrolment_started" not in actions
    assert "device.activation" not in actions


def test_a_full_passcode_session_may_not_reactivate_once_the_2_days_have_passed(
    client: TestClient, recovering: Recovering, clock: FakeClock
) -> None:
    """R6.6: reactivation only "within the first 2 days", whenever the session was made:
    the session itself ends with them (R6.3)."""
    clock.set(recovering.issued_at + 2 * DAY - 10 * MINUTE)
    reply = passcode_login(client, recovering.passcode)
    assert session_of(reply)["access"] == "full"
    headers = token_of(reply)
    clock.advance(10 * MINUTE)
    error_of(
        client.get(f"{DEVICES}/{recovering.device['device_id']}/activation", headers=headers),
        401,
        "unauthenticated",
    )
    assert offered_kinds(client) == ["temporary_passcode"]


# ---- the online security code card (R7) --------------------------------------------------


def test_an_online_card_has_100_values_from_the_alphabet_and_two_different_indices(
    client: TestClient, print_only: dict[str, str], clock: FakeClock
) -> None:
    reply = client.post(ONLINE_CARD, headers=print_only)
    assert reply.status_code == 201, reply.text
    assert "no-store" in reply.headers["cache-control"]
    card = reply.json()
    assert set(card) == {"card_id", "issued_at", "values", "activation_challenge"}
    assert parse_time(card["issued_at"]) == clock.now()
    assert sorted(int(k) for k in card["values"]) == list(range(1, 101))
    assert all(re.fullmatch(f"[{ALPHABET}]{{3}}", v) for v in card["values"].values())
    first, second = card["activation_challenge"]["indices"]
    assert first != second
    assert 1 <= first <= 100 and 1 <= second <= 100


def test_the_pdf_is_one_printable_page_with_the_whole_grid(
    client: TestClient, print_only: dict[str, str]
) -> None:
    card = request_card(client, print_only)
    reply = client.get(f"{ONLINE_CARD}/{card['card_id']}.pdf", headers=print_only)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pdf"
    assert "no-store" in reply.headers["cache-control"]
    assert reply.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(reply.content), strict=True)
    assert len(reader.pages) == 1
    page = reader.pages[0]
    width, height = float(page.mediabox.width), float(page.mediabox.height)
    assert (round(width), round(height)) == (595, 842)  # A4 portrait
    text = page.extract_text()
    assert USERNAME in text
    assert card["card_id"] in text
    assert "21 days" in text
    cells = dict(re.findall(rf"\b(\d{{1,3}})\s+([{ALPHABET}]{{3}})\b", text))
    assert cells == card["values"]


def test_the_pdf_is_not_shown_for_another_users_card_an_unknown_card_or_after_activation(
    client: TestClient, application: Application, print_only: dict[str, str]
) -> None:
    make_user(application, OTHER)
    others = request_card(client, bearer(password_only_token(client, OTHER)))
    error_of(
        client.get(f"{ONLINE_CARD}/{others['card_id']}.pdf", headers=print_only), 404, "not_found"
    )
    error_of(client.get(f"{ONLINE_CARD}/occ_unknown.pdf", headers=print_only), 404, "not_found")
    own = request_card(client, print_only)
    assert activate_card(client, print_only, own).status_code == 200
    error_of(
        client.get(f"{ONLINE_CARD}/{own['card_id']}.pdf", headers=print_only), 404, "not_found"
    )


def test_the_online_card_needs_a_session(client: TestClient, print_only: dict[str, str]) -> None:
    card = request_card(client, print_only)
    error_of(client.post(ONLINE_CARD), 401, "unauthenticated")
    error_of(client.get(f"{ONLINE_CARD}/{card['card_id']}.pdf"), 401, "unauthenticated")
    error_of(
        client.post(f"{ONLINE_CARD}/{card['card_id']}/activation", json={"response": "ABCDEF"}),
        401,
        "unauthenticated",
    )


def test_a_wrong_activation_is_counted_and_needs_a_new_challenge(
    client: TestClient, application: Application, print_only: dict[str, str], clock: FakeClock
) -> None:
    card = request_card(client, print_only)
    indices = card["activation_challenge"]["indices"]
    path = f"{ONLINE_CARD}/{card['card_id']}/activation"
    wrong = client.post(
        path,
        headers=print_only,
        json={"response": wrong_card_response(card["values"], indices)},
    )
    error_of(wrong, 401, "login_failed")
    assert counted_failures(application) == 1
    # The challenge was used up: its right answer now is refused (and counted) too.
    late = client.post(
        path, headers=print_only, json={"response": card_response(card["values"], indices)}
    )
    error_of(late, 401, "login_failed")
    assert counted_failures(application) == 2
    assert offered_kinds(client) == ["temporary_passcode"]  # not active

    activated = activate_card(client, print_only, card)
    assert activated.status_code == 200, activated.text
    assert parse_time(activated.json()["expires_at"]) == clock.now() + 21 * DAY


def test_a_malformed_activation_response_has_a_hint_and_is_not_counted(
    client: TestClient, application: Application, print_only: dict[str, str]
) -> None:
    card = request_card(client, print_only)
    indices = card["activation_challenge"]["indices"]
    right = card_response(card["values"], indices)
    # In lower case (one letter at least: a response of digits only, 1 in 4,096, has none)
    lower = right.lower() if right.lower() != right else right[:-1] + "a"
    for malformed in (lower, right[:5], right + "2", right[:3] + " " + right[3:]):
        refused = client.post(
            f"{ONLINE_CARD}/{card['card_id']}/activation",
            headers=print_only,
            json={"response": malformed},
        )
        error = error_of(refused, 401, "login_failed")
        assert error.get("hint"), (malformed, error)
    assert counted_failures(application) == 0
    # The challenge still stands.
    activated = client.post(
        f"{ONLINE_CARD}/{card['card_id']}/activation", headers=print_only, json={"response": right}
    )
    assert activated.status_code == 200, activated.text


def test_ten_wrong_activations_lock_the_account(
    client: TestClient, application: Application, print_only: dict[str, str]
) -> None:
    card = request_card(client, print_only)
    for _ in range(10):
        indices = client.get(
            f"{ONLINE_CARD}/{card['card_id']}/activation", headers=print_only
        ).json()["challenge"]["indices"]
        wrong = wrong_card_response(card["values"], indices)
        error_of(activate_card(client, print_only, card, wrong), 401, "login_failed")
    error_of(activate_card(client, print_only, card), 423, "account_locked")
    error_of(first_step(client), 423, "account_locked")


def test_an_online_card_lasts_21_days_from_its_activation(
    client: TestClient, recovering: Recovering, print_only: dict[str, str], clock: FakeClock
) -> None:
    card = request_card(client, print_only)
    clock.advance(3 * DAY)  # the clock runs from activation, not from the request
    activated_at = clock.now()
    later = token_of(passcode_login(client, recovering.passcode))
    assert activate_card(client, later, card).status_code == 200

    clock.set(activated_at + 21 * DAY - SECOND)  # the passcode is long gone by now
    assert offered_kinds(client) == ["online_card"]
    for platform in ("portal", "trading"):
        assert session_of(card_login(client, card["values"], platform))["access"] == "full"

    clock.set(activated_at + 21 * DAY)
    error_of(first_step(client, "portal"), 403, "no_usable_second_factor")
    error_of(first_step(client, "trading"), 403, "no_usable_second_factor")


def test_a_user_has_one_online_card_a_new_request_replaces_one_not_yet_activated(
    client: TestClient, application: Application, print_only: dict[str, str]
) -> None:
    first = request_card(client, print_only)
    second = request_card(client, print_only)
    assert first["card_id"] != second["card_id"]
    error_of(
        client.get(f"{ONLINE_CARD}/{first['card_id']}.pdf", headers=print_only), 404, "not_found"
    )
    replaced = client.post(
        f"{ONLINE_CARD}/{first['card_id']}/activation",
        headers=print_only,
        json={"response": card_response(first["values"], first["activation_challenge"]["indices"])},
    )
    error_of(replaced, 401, "login_failed")  # the replaced card cannot be activated any more
    assert activate_card(client, print_only, second).status_code == 200
    assert offered_kinds(client) == ["online_card", "temporary_passcode"]


def test_an_active_online_card_is_not_replaced(
    client: TestClient, print_only: dict[str, str]
) -> None:
    card = request_card(client, print_only)
    assert activate_card(client, print_only, card).status_code == 200
    error_of(client.post(ONLINE_CARD, headers=print_only), 409, "conflict")
    assert session_of(card_login(client, card["values"]))["access"] == "full"


def test_an_online_card_is_requested_from_a_portal_session_only(
    client: TestClient, recovering: Recovering
) -> None:
    session = session_of(passcode_login(client, recovering.passcode, "trading"))
    assert session["access"] == "full"
    error_of(client.post(ONLINE_CARD, headers=bearer(session["token"])), 403, "forbidden")


def test_no_online_card_while_a_permanent_device_is_active(client: TestClient, user: str) -> None:
    device = enrol_code_card(client)
    headers = token_of(log_in(client, "code_card", code_card_answer(device)))
    error_of(client.post(ONLINE_CARD, headers=headers), 409, "conflict")


def test_an_online_card_ends_when_a_permanent_device_becomes_active(
    client: TestClient, recovering: Recovering, print_only: dict[str, str]
) -> None:
    card = request_card(client, print_only)
    assert activate_card(client, print_only, card).status_code == 200
    with_card = token_of(card_login(client, card["values"]))
    reactivated = activate_code_card(client, with_card["Authorization"][7:], recovering.device)
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["state"] == "active"

    assert is_ended(client, with_card)
    assert is_ended(client, print_only)
    assert offered_kinds(client) == ["code_card"]
    assert offered_kinds(client, "trading") == ["code_card"]


# ---- reactivation ends every temporary credential (R5.5) ---------------------------------


def test_reactivating_from_a_passcode_session_ends_every_temporary_credential_and_session(
    client: TestClient, agent: Agent, recovering: Recovering
) -> None:
    portal = token_of(passcode_login(client, recovering.passcode))
    trading = token_of(passcode_login(client, recovering.passcode, "trading"))
    card = request_card(client, portal)
    assert activate_card(client, portal, card).status_code == 200
    with_card = token_of(card_login(client, card["values"], "trading"))  # replaces `trading`
    second_portal = token_of(card_login(client, card["values"]))
    assert sorted(offered_kinds(client)) == ["online_card", "temporary_passcode"]

    reactivated = activate_code_card(client, portal["Authorization"][7:], recovering.device)
    assert reactivated.status_code == 200, reactivated.text

    for headers in (portal, trading, with_card, second_portal):
        assert is_ended(client, headers)
    assert offered_kinds(client) == ["code_card"]
    assert offered_kinds(client, "trading") == ["code_card"]
    summary = agent.summary(agent.verify()).json()
    assert summary["temporary_passcode"] is None
    assert summary["online_card"] is None or summary["online_card"]["state"] == "ended"
    # The device works again, at both doors.
    for platform in ("portal", "trading"):
        reply = log_in(client, "code_card", code_card_answer(recovering.device), platform)
        assert session_of(reply)["access"] == "full"


# ---- a device that activates by itself ends them too (R5.4, R5.5) ------------------------


@dataclass
class Mailed:
    """A user with an active online card and a replacement device mailed at ``mailed_at``."""

    card: dict[str, Any]
    mailed_at: Any


@pytest.fixture
def mailed(client: TestClient, agent: Agent, recovering: Recovering, clock: FakeClock) -> Mailed:
    clock.advance(HOUR)
    portal = token_of(passcode_login(client, recovering.passcode))
    card = request_card(client, portal)
    assert activate_card(client, portal, card).status_code == 200
    ordered = agent.order(agent.verify())
    assert ordered.status_code == 201, ordered.text
    return Mailed(card, parse_time(ordered.json()["mailed_at"]))


@pytest.mark.parametrize(("platform", "before"), [("portal", 10 * MINUTE), ("trading", 12 * HOUR)])
def test_a_session_made_with_a_temporary_credential_ends_when_a_mailed_device_activates_itself(
    client: TestClient, mailed: Mailed, clock: FakeClock, platform: str, before: Any
) -> None:
    activates = mailed.mailed_at + 14 * DAY
    clock.set(activates - before)  # within the door's own limit (portal: 30 minutes idle)
    session = session_of(card_login(client, mailed.card["values"], platform))
    assert (session["access"], parse_time(session["expires_at"])) == ("full", activates)
    headers = bearer(session["token"])

    clock.set(activates - SECOND)
    assert not is_ended(client, headers)
    clock.set(activates)  # nothing has read the devices since: the session ends all the same
    assert is_ended(client, headers)
    assert offered_kinds(client, platform) == ["code_card"]


def test_a_temporary_factor_answered_after_a_mailed_device_activated_itself_is_refused(
    client: TestClient, application: Application, mailed: Mailed, clock: FakeClock
) -> None:
    activates = mailed.mailed_at + 14 * DAY
    clock.set(activates - MINUTE)
    first = first_step(client, "trading").json()
    (factor,) = first["factors"]
    assert factor["kind"] == "online_card"
    clock.set(activates + MINUTE)
    answered = client.post(
        f"{LOGINS}/{first['login_id']}/response",
        json={
            "factor_id": factor["factor_id"],
            "response": card_response(mailed.card["values"], factor["challenge"]["indices"]),
        },
    )
    error_of(answered, 401, "login_failed")
    assert offered_kinds(client, "trading") == ["code_card"]  # the activation was applied


def test_an_online_card_is_not_activated_once_a_mailed_device_has_activated_itself(
    client: TestClient, application: Application, user: str, clock: FakeClock
) -> None:
    """A first device in the mail: the password alone logs in (R4.3) until it activates."""
    ordered = client.post(
        f"{DEVICES}/orders",
        headers=bearer(password_only_token(client)),
        json={"kind": "code_card", "country": "US"},
    )
    assert ordered.status_code == 201, ordered.text
    activates = parse_time(ordered.json()["mailed_at"]) + 14 * DAY
    clock.set(activates - MINUTE)
    session = bearer(password_only_token(client))
    card = request_card(client, session)
    challenge = client.get(f"{ONLINE_CARD}/{card['card_id']}/activation", headers=session)
    indices = challenge.json()["challenge"]["indices"]

    clock.set(activates)
    response = card_response(card["values"], indices)
    refused = client.post(
        f"{ONLINE_CARD}/{card['card_id']}/activation", headers=session, json={"response": response}
    )
    # The password-only session ended with the grace, when the device activated itself;
    # the card's own rule (R5.5) refuses it too, for a session that would still be open.
    error_of(refused, 401, "unauthenticated")
    with application.context.uow() as uow:
        found = uow.users.get(USERNAME)
    assert found is not None
    with pytest.raises(ConflictError):
        online_cards.activate_card(application.context, found, card["card_id"], response, Caller())
    assert counted_failures(application) == 0  # nothing was evaluated
    assert offered_kinds(client) == ["code_card"]


# ---- password reset with a code from Client Services (R8.3) ------------------------------


def test_a_reset_sets_the_new_password_and_ends_every_session(
    client: TestClient, agent: Agent
) -> None:
    portal = bearer(password_only_token(client))
    trading = token_of(first_step(client, "trading"))
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    done = reset(client, code)
    assert done.status_code == 204, done.text
    assert done.content == b""
    assert is_ended(client, portal)
    assert is_ended(client, trading)
    error_of(first_step(client), 401, "invalid_credentials")
    assert "session" in first_step(client, password=NEW_PASSWORD).json()


def test_a_reset_also_ends_sessions_made_with_a_second_factor(
    client: TestClient, agent: Agent, recovering: Recovering
) -> None:
    portal = token_of(passcode_login(client, recovering.passcode))
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    assert reset(client, code).status_code == 204
    assert is_ended(client, portal)


def test_a_reset_code_works_once(client: TestClient, agent: Agent) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    assert reset(client, code).status_code == 204
    again = reset(client, code, "Another9password")
    error = error_of(again, 401, "invalid_credentials")
    assert error["message"] == WRONG_CODE_MESSAGE
    assert "session" in first_step(client, password=NEW_PASSWORD).json()
    error_of(first_step(client, password="Another9password"), 401, "invalid_credentials")


def test_a_reset_code_lasts_24_hours(client: TestClient, agent: Agent, clock: FakeClock) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    clock.advance(24 * HOUR - SECOND)
    assert reset(client, code).status_code == 204  # one second before its end: still good

    late = agent.reset_code(agent.verify()).json()["reset_code"]
    clock.advance(24 * HOUR)
    error_of(reset(client, late, "Another9password"), 401, "invalid_credentials")
    assert "session" in first_step(client, password=NEW_PASSWORD).json()


def test_a_new_reset_code_ends_the_earlier_one(
    client: TestClient, application: Application, agent: Agent, clock: FakeClock
) -> None:
    earlier = agent.reset_code(agent.verify()).json()["reset_code"]
    clock.advance(MINUTE)
    newer = agent.reset_code(agent.verify()).json()["reset_code"]
    error = error_of(reset(client, earlier), 401, "invalid_credentials")
    assert error["message"] == WRONG_CODE_MESSAGE
    assert counted_failures(application) == 1  # a guess like any wrong code
    assert reset(client, newer).status_code == 204
    assert "session" in first_step(client, password=NEW_PASSWORD).json()


def add_codes_as_before(application: Application, clock: FakeClock, *codes: str) -> None:
    """Open codes side by side, as a user could hold them before a new code ended the
    earlier ones: stored as give_reset_code stores them, oldest first."""
    ctx = application.context
    with ctx.uow() as uow:
        user = uow.users.get(USERNAME)
        assert user is not None
        for n, code in enumerate(codes):
            issued = clock.now() + n * SECOND
            uow.reset_codes.add(
                f"rst_before{n}", user.user_id, ctx.hasher.hash(code), issued, issued + DAY, "t"
            )
        uow.commit()
    clock.advance(len(codes) * SECOND)


def test_a_reset_ends_every_other_open_code_of_the_user(
    client: TestClient, application: Application, agent: Agent, clock: FakeClock
) -> None:
    add_codes_as_before(application, clock, "OLDERCODE234", "NEWERCODE234")
    assert reset(client, "NEWERCODE234").status_code == 204
    error_of(reset(client, "OLDERCODE234", "Another9password"), 401, "invalid_credentials")
    assert "session" in first_step(client, password=NEW_PASSWORD).json()


@pytest.mark.parametrize("username", [USERNAME, "zzzzz999"], ids=["known", "unknown"])
def test_a_reset_checks_one_hash_however_many_codes_the_user_was_given(
    client: TestClient,
    application: Application,
    agent: Agent,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    username: str,
) -> None:
    """A user with three codes costs what an unknown username costs (R2.3, R3.8)."""
    add_codes_as_before(application, clock, "FIRSTCODE234", "SECONDCODE23", "THIRDCODE234")
    hasher = application.context.hasher
    checks: list[str] = []
    real_verify = hasher.verify

    def counted_verify(stored_hash: str, secret: str) -> bool:
        checks.append(secret)
        return real_verify(stored_hash, secret)

    monkeypatch.setattr(hasher, "verify", counted_verify)
    error_of(reset(client, "WRONGCODE234", username=username), 401, "invalid_credentials")
    assert checks == ["WRONGCODE234"]


def test_a_wrong_reset_code_is_counted_and_ten_lock_the_account(
    client: TestClient, application: Application, agent: Agent
) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    wrong = "".join("2" if c != "2" else "3" for c in code)
    error = error_of(reset(client, wrong), 401, "invalid_credentials")
    assert error["message"] == WRONG_CODE_MESSAGE
    assert counted_failures(application) == 1
    for _ in range(9):
        error_of(reset(client, wrong), 401, "invalid_credentials")
    # Locked: even the right code is refused, and so is the password.
    error_of(reset(client, code), 423, "account_locked")
    error_of(first_step(client), 423, "account_locked")


def test_an_unknown_username_gets_the_same_answer_as_a_wrong_code(
    client: TestClient, agent: Agent
) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    unknown = reset(client, code, username="zzzzz999")
    assert error_of(unknown, 401, "invalid_credentials")["message"] == WRONG_CODE_MESSAGE
    assert reset(client, code).status_code == 204  # the code was not used up


def test_a_code_of_another_user_does_not_reset_this_one(
    client: TestClient, application: Application, agent: Agent
) -> None:
    make_user(application, OTHER)
    others = agent.reset_code(agent.verify(OTHER), OTHER).json()["reset_code"]
    error_of(reset(client, others), 401, "invalid_credentials")
    assert "session" in first_step(client).json()  # the password did not change


def test_a_new_password_that_breaks_the_policy_is_refused_before_anything_is_counted(
    client: TestClient, application: Application, agent: Agent
) -> None:
    code = agent.reset_code(agent.verify()).json()["reset_code"]
    for weak in ("Short1", "x" * 65, USERNAME + "Aa1"):
        error_of(reset(client, code, weak), 422, "invalid_request")
    assert counted_failures(application) == 0
    assert reset(client, code).status_code == 204  # and the code is still good


def test_a_malformed_reset_request_is_an_invalid_request(client: TestClient, user: str) -> None:
    for body in (
        {},
        {"username": USERNAME, "reset_code": "ABC"},
        {"username": USERNAME, "reset_code": 42, "new_password": NEW_PASSWORD},
        {"username": USERNAME, "reset_code": "", "new_password": NEW_PASSWORD},
    ):
        error_of(client.post(RESETS, json=body), 422, "invalid_request")
    assert first_step(client, password=PASSWORD).status_code == 200
