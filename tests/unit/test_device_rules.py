"""The rules of permanent devices as pure functions (R4.3, R5.3, R5.4, R3.6, R7.1).

domain/devices.py: shipping (expected arrival), auto-activation 14 days after mailing,
enrolment and the first device's grace; domain/cards.py: card values and challenges;
domain/responses.py: the form of a response, checked before anything is counted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securelogin.domain import cards
from securelogin.domain.devices import (
    Device,
    DeviceKind,
    DeviceState,
    auto_activation_due,
    expected_arrival,
    first_auto_activation,
    first_device_grace_end,
    in_first_device_grace,
    is_enrolled,
    label_for,
)
from securelogin.domain.responses import (
    CARD_FORM,
    CHALLENGE_CARD_FORM,
    PASSCODE_FORM,
    TOTP_FORM,
    ResponseForm,
    form_problem,
)

MAILED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)
FOURTEEN_DAYS = timedelta(days=14)


def device(
    state: DeviceState = DeviceState.MAILED,
    *,
    kind: DeviceKind = DeviceKind.CODE_CARD,
    mailed_at: datetime | None = MAILED,
    activated_at: datetime | None = None,
    device_id: str = "dev_1",
) -> Device:
    return Device(
        device_id=device_id,
        user_id=1,
        kind=kind,
        serial="0123456789",
        state=state,
        created_at=mailed_at or MAILED,
        mailed_at=mailed_at,
        expected_arrival=None if mailed_at is None else expected_arrival(mailed_at, "US"),
        activated_at=activated_at,
        country=None if mailed_at is None else "US",
    )


# R5.3: shipping


def test_a_device_mailed_to_the_united_states_is_expected_two_days_after_mailing() -> None:
    assert expected_arrival(MAILED, "US") == MAILED + timedelta(days=2)


@pytest.mark.parametrize("country", ["DE", "GB", "CA", "JP", "us"])
def test_a_device_mailed_to_any_other_country_is_expected_fourteen_days_after_mailing(
    country: str,
) -> None:
    assert expected_arrival(MAILED, country) == MAILED + timedelta(days=14)


# R5.4: auto-activation


def test_a_mailed_device_is_not_due_for_auto_activation_one_second_before_fourteen_days() -> None:
    assert auto_activation_due(device(), MAILED + FOURTEEN_DAYS - SECOND) is None


def test_a_mailed_device_is_due_for_auto_activation_at_exactly_fourteen_days() -> None:
    assert auto_activation_due(device(), MAILED + FOURTEEN_DAYS) == MAILED + FOURTEEN_DAYS


def test_auto_activation_noticed_later_is_dated_at_the_end_of_the_fourteen_days() -> None:
    assert auto_activation_due(device(), MAILED + FOURTEEN_DAYS + SECOND) == MAILED + FOURTEEN_DAYS
    assert auto_activation_due(device(), MAILED + timedelta(days=100)) == MAILED + FOURTEEN_DAYS


@pytest.mark.parametrize(
    "state",
    [
        DeviceState.PENDING,
        DeviceState.ACTIVE,
        DeviceState.SUSPENDED,
        DeviceState.LOST,
        DeviceState.DAMAGED,
    ],
)
def test_only_a_mailed_device_activates_by_itself(state: DeviceState) -> None:
    assert auto_activation_due(device(state), MAILED + timedelta(days=30)) is None


def test_a_device_without_a_mailing_date_never_activates_by_itself() -> None:
    assert auto_activation_due(device(mailed_at=None), MAILED + timedelta(days=30)) is None


def test_the_first_self_activation_is_that_of_the_earliest_mailed_device() -> None:
    later = device(mailed_at=MAILED + timedelta(days=3), device_id="dev_2")
    assert first_auto_activation([later, device()]) == MAILED + FOURTEEN_DAYS


def test_no_self_activation_is_to_come_without_a_mailed_device() -> None:
    assert first_auto_activation([]) is None
    others = [device(DeviceState.SUSPENDED), device(DeviceState.LOST), device(mailed_at=None)]
    assert first_auto_activation(others) is None


# R4.3: enrolment


def test_a_user_without_devices_is_not_enrolled() -> None:
    assert not is_enrolled([])


def test_an_authenticator_app_still_being_enrolled_does_not_enrol_the_user() -> None:
    assert not is_enrolled([device(DeviceState.PENDING, kind=DeviceKind.TOTP, mailed_at=None)])


@pytest.mark.parametrize(
    "state",
    [
        DeviceState.MAILED,
        DeviceState.ACTIVE,
        DeviceState.SUSPENDED,
        DeviceState.LOST,
        DeviceState.DAMAGED,
    ],
)
def test_a_user_who_has_or_has_had_a_permanent_device_is_enrolled(state: DeviceState) -> None:
    assert is_enrolled([device(state)])


# R4.3: the first device's grace


def test_a_first_device_mailed_under_fourteen_days_ago_allows_the_password_alone() -> None:
    assert in_first_device_grace([device()], MAILED)
    assert in_first_device_grace([device()], MAILED + FOURTEEN_DAYS - SECOND)


def test_the_grace_of_the_first_device_ends_at_exactly_fourteen_days() -> None:
    assert not in_first_device_grace([device()], MAILED + FOURTEEN_DAYS)
    assert not in_first_device_grace([device()], MAILED + FOURTEEN_DAYS + SECOND)


def test_the_grace_ends_as_soon_as_a_device_was_activated() -> None:
    active = device(DeviceState.ACTIVE, activated_at=MAILED + timedelta(days=2))
    assert not in_first_device_grace([active], MAILED + timedelta(days=3))


def test_the_grace_counts_from_the_first_mailing_not_from_a_later_one() -> None:
    first = device(device_id="dev_1")
    second = device(mailed_at=MAILED + timedelta(days=10), device_id="dev_2")
    assert not in_first_device_grace([first, second], MAILED + FOURTEEN_DAYS)


def test_an_activated_authenticator_app_ends_the_grace_of_a_travelling_card() -> None:
    app = device(
        DeviceState.ACTIVE,
        kind=DeviceKind.TOTP,
        mailed_at=None,
        activated_at=MAILED + SECOND,
        device_id="dev_app",
    )
    assert not in_first_device_grace([device(), app], MAILED + timedelta(days=1))


def test_a_pending_authenticator_app_does_not_end_the_grace_of_a_travelling_card() -> None:
    app = device(DeviceState.PENDING, kind=DeviceKind.TOTP, mailed_at=None, device_id="dev_app")
    assert in_first_device_grace([device(), app], MAILED + timedelta(days=1))


def test_a_user_without_a_mailed_device_has_no_grace() -> None:
    assert not in_first_device_grace([], MAILED)


def test_the_grace_ends_when_the_first_mailed_device_activates_by_itself() -> None:
    first = device(device_id="dev_1")
    second = device(mailed_at=MAILED + timedelta(days=10), device_id="dev_2")
    ends = first_device_grace_end([second, first])
    assert ends == MAILED + FOURTEEN_DAYS == first_auto_activation([second, first])


def test_no_grace_has_an_end_once_a_device_was_activated_or_when_none_was_mailed() -> None:
    active = device(DeviceState.ACTIVE, activated_at=MAILED + timedelta(days=2), device_id="d2")
    assert first_device_grace_end([device(), active]) is None
    assert first_device_grace_end([]) is None
    app = device(DeviceState.PENDING, kind=DeviceKind.TOTP, mailed_at=None)
    assert not in_first_device_grace([app], MAILED)


def test_labels_name_the_kind_and_the_last_five_digits_of_the_serial() -> None:
    assert label_for(DeviceKind.CHALLENGE_CARD, "0123480213") == "card 80213"
    assert label_for(DeviceKind.CODE_CARD, "0123480213") == "code card 80213"
    assert label_for(DeviceKind.TOTP, "TOTP0123456789") == "authenticator app"


# R7.1: card values and challenges


@given(st.randoms(use_true_random=False))
def test_a_new_card_has_one_hundred_values_of_three_characters_from_the_alphabet(
    rng: random.Random,
) -> None:
    values = cards.make_card_values(rng.randrange)

    assert sorted(values) == list(range(1, 101))
    for value in values.values():
        assert len(value) == 3
        assert set(value) <= set(cards.CARD_ALPHABET)


def test_the_card_alphabet_holds_no_character_that_is_easily_misread() -> None:
    assert len(cards.CARD_ALPHABET) == 32
    assert not set(cards.CARD_ALPHABET) & set("01IO")


@given(st.data())
def test_a_card_challenge_is_always_two_different_numbers_from_1_to_100(
    data: st.DataObject,
) -> None:
    def below(n: int) -> int:
        return data.draw(st.integers(min_value=0, max_value=n - 1))

    first, second = cards.pick_indices(below)

    assert 1 <= first <= 100
    assert 1 <= second <= 100
    assert first != second


def test_every_ordered_pair_of_different_numbers_can_be_a_card_challenge() -> None:
    pairs = set()
    for first_draw in range(100):
        for second_draw in range(99):
            draws = iter([first_draw, second_draw])

            def below(_n: int, d: Iterator[int] = draws) -> int:
                return next(d)

            pairs.add(cards.pick_indices(below))
    assert len(pairs) == 100 * 99


def test_the_response_to_a_card_challenge_is_the_two_values_typed_together() -> None:
    values = {index: "22A" for index in range(1, 101)} | {17: "ABC", 84: "XYZ"}

    assert cards.expected_response(values, (17, 84)) == "ABCXYZ"
    assert cards.is_right_response(values, (17, 84), "ABCXYZ")
    assert not cards.is_right_response(values, (84, 17), "ABCXYZ")


# R3.6: the form of a response


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (TOTP_FORM, "123456"),
        (TOTP_FORM, "000000"),
        (CHALLENGE_CARD_FORM, "12345678"),
        (CARD_FORM, "ABCXYZ"),
        (CARD_FORM, "234567"),
        (PASSCODE_FORM, "ABCD2345"),
    ],
)
def test_a_well_formed_response_has_no_problem(form: ResponseForm, response: str) -> None:
    assert form_problem(form, response) is None


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (TOTP_FORM, "123 456"),
        (TOTP_FORM, " 123456"),
        (TOTP_FORM, "123456 "),
        (TOTP_FORM, "123\t456"),
        (CHALLENGE_CARD_FORM, "1234 5678"),
        (CARD_FORM, "ABC XYZ"),
        (PASSCODE_FORM, "ABCD 2345"),
    ],
)
def test_a_response_with_spaces_is_told_to_remove_them(form: ResponseForm, response: str) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert "space" in hint.lower()


@pytest.mark.parametrize(
    ("form", "response", "length"),
    [
        (TOTP_FORM, "12345", "6"),
        (TOTP_FORM, "1234567", "6"),
        (CHALLENGE_CARD_FORM, "123456", "8"),
        (CHALLENGE_CARD_FORM, "123456789", "8"),
        (CARD_FORM, "ABC", "6"),
        (CARD_FORM, "ABCXYZ2", "6"),
        (PASSCODE_FORM, "ABCD234", "8"),
    ],
)
def test_a_response_of_the_wrong_length_is_told_the_right_length(
    form: ResponseForm, response: str, length: str
) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert f"exactly {length}" in hint
    assert f"you typed {len(response)}" in hint


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (TOTP_FORM, "12a456"),
        (TOTP_FORM, "12345O"),
        (TOTP_FORM, "-12345"),
        (TOTP_FORM, "12.456"),
        (CHALLENGE_CARD_FORM, "1234567x"),
        (CHALLENGE_CARD_FORM, "ABCDEFGH"),
    ],
)
def test_letters_where_digits_belong_are_told_that_the_response_is_digits(
    form: ResponseForm, response: str
) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert "digits" in hint
    assert "0 to 9" in hint


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (TOTP_FORM, "１２３４５６"),  # full-width digits
        (TOTP_FORM, "١٢٣٤٥٦"),  # Arabic-Indic digits
        (CHALLENGE_CARD_FORM, "1234567²"),  # a superscript two
    ],
    ids=["full-width", "arabic-indic", "superscript"],
)
def test_digits_other_than_ascii_0_to_9_are_malformed(form: ResponseForm, response: str) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert "0 to 9" in hint


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (CARD_FORM, "abcxyz"),
        (CARD_FORM, "ABCxyz"),
        (CARD_FORM, "a2b3c4"),
        (PASSCODE_FORM, "abcd2345"),
        (PASSCODE_FORM, "ABCd2345"),
    ],
)
def test_lower_case_letters_in_a_card_response_or_passcode_are_told_to_use_upper_case(
    form: ResponseForm, response: str
) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert "upper case" in hint
    assert "Caps Lock" in hint


@pytest.mark.parametrize(
    ("form", "response"),
    [
        (CARD_FORM, "ABC0YZ"),  # zero
        (CARD_FORM, "ABCOYZ"),  # the letter O
        (CARD_FORM, "ABC1YZ"),  # one
        (CARD_FORM, "ABCIYZ"),  # the letter I
        (CARD_FORM, "ABC-YZ"),
        (CARD_FORM, "ABCÄYZ"),
        (PASSCODE_FORM, "ABCD0123"),
        (PASSCODE_FORM, "ABCDOI23"),
        (CARD_FORM, "abc0yz"),  # lower case *and* a character no card holds
    ],
)
def test_characters_outside_the_card_alphabet_are_named_in_the_hint(
    form: ResponseForm, response: str
) -> None:
    hint = form_problem(form, response)
    assert hint is not None
    assert "cannot appear" in hint
    assert "except I and O" in hint


def test_spaces_are_named_before_any_other_problem_of_form() -> None:
    hint = form_problem(CARD_FORM, "abc 0")
    assert hint is not None
    assert "space" in hint.lower()
