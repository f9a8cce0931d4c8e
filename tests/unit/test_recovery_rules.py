"""The pure rules of recovery (R6, R7, R8.2): passcode windows, the rule against consecutive
passcodes, the phone-support lock and the online card's states, at -1 s, exactly and +1 s.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from securelogin.domain import cards, passcodes, sessions
from securelogin.domain.errors import PlatformNotPermittedError
from securelogin.domain.online_cards import (
    ONLINE_CARD_LIFETIME,
    OnlineCard,
    OnlineCardState,
    expiry_after_activation,
)
from securelogin.domain.sessions import Access, Grant, Platform, SessionPolicy
from securelogin.domain.verification import (
    VERIFICATION_TTL,
    is_verification_live,
    phone_lock_until,
)

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


# R6.2: the form of a temporary passcode


def test_the_passcode_alphabet_is_the_32_unambiguous_characters() -> None:
    assert passcodes.PASSCODE_ALPHABET == "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    assert len(set(passcodes.PASSCODE_ALPHABET)) == 32


def test_a_passcode_is_8_characters_from_the_alphabet_drawn_from_the_given_random() -> None:
    draw = random.Random(7)
    made = [passcodes.make_passcode(draw.randrange) for _ in range(200)]
    assert all(len(code) == 8 for code in made)
    assert all(set(code) <= set(passcodes.PASSCODE_ALPHABET) for code in made)
    assert len(set(made)) == len(made)
    assert set("".join(made)) == set(passcodes.PASSCODE_ALPHABET)  # every character can occur


def test_a_passcode_uses_the_random_source_for_every_character() -> None:
    assert passcodes.make_passcode(lambda n: 0) == "22222222"
    assert passcodes.make_passcode(lambda n: n - 1) == "ZZZZZZZZ"


# R6.3: the windows, counted from issue


def test_the_windows_end_2_and_12_days_after_issue() -> None:
    assert passcodes.full_access_until(T0) == T0 + 2 * DAY
    assert passcodes.portal_access_until(T0) == T0 + 12 * DAY


@pytest.mark.parametrize("platform", [Platform.PORTAL, Platform.TRADING])
def test_a_passcode_gives_full_access_at_both_doors_until_one_second_before_2_days(
    platform: Platform,
) -> None:
    assert passcodes.access_at(T0, platform, T0) is Access.FULL
    assert passcodes.access_at(T0, platform, T0 + 2 * DAY - SECOND) is Access.FULL


@pytest.mark.parametrize("offset", [timedelta(0), SECOND, 10 * DAY - SECOND])
def test_after_2_days_the_portal_gives_card_print_only(offset: timedelta) -> None:
    now = T0 + 2 * DAY + offset
    assert passcodes.access_at(T0, Platform.PORTAL, now) is Access.CARD_PRINT_ONLY


@pytest.mark.parametrize("offset", [timedelta(0), SECOND, 10 * DAY - SECOND])
def test_after_2_days_the_trading_door_refuses_with_platform_not_permitted(
    offset: timedelta,
) -> None:
    with pytest.raises(PlatformNotPermittedError) as refused:
        passcodes.access_at(T0, Platform.TRADING, T0 + 2 * DAY + offset)
    assert refused.value.code == "platform_not_permitted"


def test_a_passcode_is_usable_until_one_second_before_12_days_and_never_after() -> None:
    assert passcodes.is_usable(T0, T0)
    assert passcodes.is_usable(T0, T0 + 12 * DAY - SECOND)
    assert not passcodes.is_usable(T0, T0 + 12 * DAY)
    assert not passcodes.is_usable(T0, T0 + 12 * DAY + SECOND)
    assert not passcodes.is_usable(T0, T0 + 365 * DAY)


def test_a_session_made_with_a_passcode_lasts_at_most_to_the_end_of_the_window_it_got() -> None:
    assert passcodes.access_until(T0, Access.FULL) == T0 + 2 * DAY
    assert passcodes.access_until(T0, Access.CARD_PRINT_ONLY) == T0 + 12 * DAY


@pytest.mark.parametrize("platform", [Platform.PORTAL, Platform.TRADING])
def test_a_sessions_not_after_caps_its_expiry_only_when_sooner_than_the_doors_limit(
    platform: Platform,
) -> None:
    policy = SessionPolicy()
    door = sessions.absolute_expiry(policy, platform, T0)
    assert sessions.absolute_expiry(policy, platform, T0, door + SECOND) == door
    assert sessions.absolute_expiry(policy, platform, T0, T0 + HOUR) == T0 + HOUR
    soon = T0 + timedelta(minutes=10)  # within the portal's 30 idle minutes too
    assert sessions.current_expiry(policy, platform, T0, T0, soon) == soon
    assert sessions.is_live(policy, platform, T0, T0, soon - SECOND, soon)
    assert not sessions.is_live(policy, platform, T0, T0, soon, soon)


def test_a_grant_ends_by_the_sooner_of_its_own_end_and_the_moment_given() -> None:
    assert Grant(Access.FULL).ending_by(None) == Grant(Access.FULL)
    assert Grant(Access.FULL).ending_by(T0) == Grant(Access.FULL, T0)
    assert Grant(Access.FULL, T0).ending_by(T0 + SECOND) == Grant(Access.FULL, T0)
    assert Grant(Access.FULL, T0).ending_by(T0 - SECOND) == Grant(Access.FULL, T0 - SECOND)
    assert Grant(Access.CARD_PRINT_ONLY, T0).ending_by(None) == Grant(Access.CARD_PRINT_ONLY, T0)


# R6.5: no consecutive temporary passcodes


def test_the_first_passcode_may_always_be_issued() -> None:
    assert passcodes.may_issue_another(None, None)
    assert passcodes.may_issue_another(None, T0)


def test_no_second_passcode_when_no_device_was_ever_active() -> None:
    assert not passcodes.may_issue_another(T0, None)


def test_no_second_passcode_when_the_last_activation_came_before_the_last_passcode() -> None:
    assert not passcodes.may_issue_another(T0, T0 - SECOND)
    assert not passcodes.may_issue_another(T0, T0 - 30 * DAY)


def test_no_second_passcode_when_the_activation_is_at_the_same_instant_as_the_passcode() -> None:
    assert not passcodes.may_issue_another(T0, T0)


def test_another_passcode_may_be_issued_once_a_device_became_active_after_the_last() -> None:
    assert passcodes.may_issue_another(T0, T0 + SECOND)
    assert passcodes.may_issue_another(T0, T0 + 14 * DAY)


# R8.2: how long a passed verification lasts


def test_a_passed_verification_lasts_15_minutes() -> None:
    assert VERIFICATION_TTL == timedelta(minutes=15)
    assert is_verification_live(T0, T0)
    assert is_verification_live(T0, T0 + VERIFICATION_TTL - SECOND)
    assert not is_verification_live(T0, T0 + VERIFICATION_TTL)
    assert not is_verification_live(T0, T0 + VERIFICATION_TTL + SECOND)


def test_a_verification_never_passed_is_never_live() -> None:
    assert not is_verification_live(None, T0)


# R8.2: 3 failed verifications within 24 hours lock phone support for 24 hours


def test_fewer_than_3_failures_never_lock_phone_support() -> None:
    assert phone_lock_until([], T0) is None
    assert phone_lock_until([T0], T0) is None
    assert phone_lock_until([T0, T0 + SECOND], T0 + SECOND) is None


def test_3_failures_in_a_row_lock_phone_support_for_24_hours_after_the_third() -> None:
    failures = [T0, T0 + 5 * SECOND, T0 + 10 * SECOND]
    third = failures[-1]
    assert phone_lock_until(failures, third) == third + 24 * HOUR
    assert phone_lock_until(failures, third + 24 * HOUR - SECOND) == third + 24 * HOUR
    assert phone_lock_until(failures, third + 24 * HOUR) is None
    assert phone_lock_until(failures, third + 24 * HOUR + SECOND) is None


def test_the_order_in_which_failures_are_given_does_not_matter() -> None:
    failures = [T0 + 2 * HOUR, T0, T0 + HOUR]
    assert phone_lock_until(failures, T0 + 2 * HOUR) == T0 + 26 * HOUR


def test_3_failures_spread_over_24_hours_less_a_second_lock() -> None:
    failures = [T0, T0 + 12 * HOUR, T0 + 24 * HOUR - SECOND]
    assert phone_lock_until(failures, failures[-1]) == failures[-1] + 24 * HOUR


def test_3_failures_exactly_24_hours_apart_lock_like_the_login_lockout() -> None:
    """'Within 24 hours' includes its end, as for the login lockout (R3.2)."""
    failures = [T0, T0 + 12 * HOUR, T0 + 24 * HOUR]
    assert phone_lock_until(failures, failures[-1]) == failures[-1] + 24 * HOUR


def test_3_failures_spread_over_24_hours_and_a_second_do_not_lock() -> None:
    failures = [T0, T0 + 12 * HOUR, T0 + 24 * HOUR + SECOND]
    assert phone_lock_until(failures, failures[-1]) is None


def test_failures_a_day_apart_never_add_up_to_a_lock() -> None:
    failures = [T0 + n * (24 * HOUR + SECOND) for n in range(6)]
    assert phone_lock_until(failures, failures[-1]) is None


def test_a_later_run_of_3_failures_locks_even_after_older_scattered_ones() -> None:
    failures = [T0, T0 + 30 * HOUR, T0 + 40 * HOUR, T0 + 50 * HOUR]
    # T0 is too old to count with the others; 30 h, 40 h and 50 h lie within 20 hours.
    assert phone_lock_until(failures, T0 + 50 * HOUR) == T0 + 74 * HOUR


def test_the_lock_lasts_from_the_latest_run_that_makes_one() -> None:
    failures = [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]
    assert phone_lock_until(failures, T0 + 3 * HOUR) == T0 + 27 * HOUR


def test_an_old_lock_that_has_ended_is_not_reported() -> None:
    failures = [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert phone_lock_until(failures, T0 + 3 * DAY) is None


# R7: the online card's states


def card(
    *,
    activated_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> OnlineCard:
    expires_at = expiry_after_activation(activated_at) if activated_at else None
    return OnlineCard("occ_x", 1, T0, activated_at, expires_at, ended_at)


def test_an_online_card_lasts_21_days_from_its_activation() -> None:
    assert ONLINE_CARD_LIFETIME == timedelta(days=21)
    assert expiry_after_activation(T0 + HOUR) == T0 + HOUR + 21 * DAY


def test_an_online_card_not_yet_activated_is_issued_whatever_the_time() -> None:
    assert card().state(T0) is OnlineCardState.ISSUED
    assert card().state(T0 + 100 * DAY) is OnlineCardState.ISSUED


def test_an_online_card_is_active_until_one_second_before_21_days_after_activation() -> None:
    activated = card(activated_at=T0 + DAY)
    assert activated.state(T0 + DAY) is OnlineCardState.ACTIVE
    assert activated.state(T0 + 22 * DAY - SECOND) is OnlineCardState.ACTIVE


def test_an_online_card_expires_exactly_21_days_after_activation() -> None:
    activated = card(activated_at=T0 + DAY)
    assert activated.state(T0 + 22 * DAY) is OnlineCardState.EXPIRED
    assert activated.state(T0 + 22 * DAY + SECOND) is OnlineCardState.EXPIRED


def test_an_ended_online_card_stays_ended_whatever_its_dates() -> None:
    assert card(ended_at=T0).state(T0) is OnlineCardState.ENDED
    assert card(activated_at=T0, ended_at=T0 + DAY).state(T0 + DAY) is OnlineCardState.ENDED
    assert card(activated_at=T0, ended_at=T0 + DAY).state(T0 + 30 * DAY) is OnlineCardState.ENDED


# R7.1: the card's grid


def test_an_online_card_has_100_values_of_3_characters_from_the_passcode_alphabet() -> None:
    values = cards.make_card_values(random.Random(3).randrange)
    assert sorted(values) == list(range(1, 101))
    assert all(len(v) == 3 and set(v) <= set(passcodes.PASSCODE_ALPHABET) for v in values.values())


def test_the_two_indices_asked_are_always_different_and_between_1_and_100() -> None:
    draw = random.Random(11)
    for _ in range(2000):
        first, second = cards.pick_indices(draw.randrange)
        assert first != second
        assert 1 <= first <= 100
        assert 1 <= second <= 100
    assert cards.pick_indices(lambda n: 0) == (1, 2)
    assert cards.pick_indices(lambda n: n - 1) == (100, 99)
