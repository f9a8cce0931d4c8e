"""The online security code card (R7), from the user's portal session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from securelogin.domain import cards
from securelogin.domain.accounts import User
from securelogin.domain.devices import DeviceState
from securelogin.domain.errors import ConflictError, LoginFailedError, NotFoundError
from securelogin.domain.online_cards import OnlineCard, OnlineCardState, expiry_after_activation
from securelogin.domain.responses import CARD_FORM, form_problem
from securelogin.domain.tokens import encode_token
from securelogin.services.attempts import audit, confirm_failure, count_attempt
from securelogin.services.context import Caller, Context
from securelogin.services.device_states import refresh_devices
from securelogin.services.factor_checks import challenge_text, parse_challenge
from securelogin.services.ports import UnitOfWork
from securelogin.services.temporary_credentials import open_card_values

CARD_ID_PREFIX = "occ_"
ACTIVE_DEVICE = "You have an active security device: use it to log in."
ACTIVATION = "online_card.activation"  # the audited action of an activation that failed


@dataclass(frozen=True)
class PrintableCard:
    """What the printable page and the PDF show (R7.2)."""

    card: OnlineCard
    username: str
    values: dict[int, str]
    activation_indices: tuple[int, int] | None = None


def request_card(ctx: Context, user: User, caller: Caller) -> PrintableCard:
    """R7.1/R7.5: a new card for a user without an active permanent device."""
    now = ctx.clock.now()
    card_id = encode_token(CARD_ID_PREFIX, ctx.random.token_bytes(32))
    values = cards.make_card_values(ctx.random.below)
    indices = cards.pick_indices(ctx.random.below)
    sealed = ctx.box.seal(json.dumps({str(k): v for k, v in values.items()}).encode(), card_id)
    with ctx.uow() as uow:
        uow.users.lock(user.user_id)
        _check_may_request(ctx, uow, user, now, caller)
        uow.online_cards.end_all(user.user_id, now, "replaced")  # R7.5: at most one card
        uow.online_cards.add(card_id, user.user_id, sealed, now)
        uow.online_cards.set_activation_challenge(card_id, challenge_text(None, indices))
        audit(uow, now, user.username, caller, "online_card.issued", "ok", {"card_id": card_id})
        card = uow.online_cards.get(card_id)
        uow.commit()
    if card is None:
        raise NotFoundError()
    return PrintableCard(card, user.username, values, indices)


def printable_card(ctx: Context, user: User, card_id: str) -> PrintableCard:
    """The card's values for printing, until it is activated (R7.2)."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        card = _own_card(uow, user, card_id)
        if card.state(now) is not OnlineCardState.ISSUED:
            raise NotFoundError()  # printing ends with activation: the values are not shown again
        values = open_card_values(ctx, uow, card_id)
        indices = parse_challenge(uow.online_cards.take_activation_challenge(card_id))[1]
        if indices is None:
            indices = cards.pick_indices(ctx.random.below)
        uow.online_cards.set_activation_challenge(card_id, challenge_text(None, indices))
        uow.commit()
    return PrintableCard(card, user.username, values, indices)


def activate_card(
    ctx: Context, user: User, card_id: str, response: str, caller: Caller
) -> OnlineCard:
    """R7.3: the two values for the two shown indices; the card then lasts 21 days."""
    with ctx.uow() as uow:
        _own_card(uow, user, card_id)
    hint = form_problem(CARD_FORM, response)
    if hint:
        raise LoginFailedError(hint=hint)
    admission = count_attempt(ctx, user.username, caller, ACTIVATION)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.lockout.hold(user.username)  # lock order: subject, devices, audit head
        if _has_active_device(ctx, uow, user, now, caller):  # R5.5: the card has ended
            uow.lockout.withdraw(user.username, admission)  # nothing was evaluated
            audit(uow, now, user.username, caller, ACTIVATION, "conflict", {"card_id": card_id})
            uow.commit()
            raise ConflictError(message=ACTIVE_DEVICE)
        indices = parse_challenge(uow.online_cards.take_activation_challenge(card_id))[1]
        values = open_card_values(ctx, uow, card_id)
        expires_at = expiry_after_activation(now)
        right = indices is not None and cards.is_right_response(values, indices, response)
        if not right or not uow.online_cards.activate(card_id, now, expires_at):
            confirm_failure(ctx, uow, user.username, admission, caller)
            audit(uow, now, user.username, caller, ACTIVATION, "login_failed", {"card_id": card_id})
            uow.commit()
            raise LoginFailedError(hint="Ask for the card again to get two new index numbers.")
        uow.lockout.withdraw(user.username, admission)
        audit(
            uow,
            now,
            user.username,
            caller,
            "online_card.activated",
            "ok",
            {"card_id": card_id, "expires_at": expires_at.isoformat()},
        )
        card = _own_card(uow, user, card_id)
        uow.commit()
    return card


def current_card(ctx: Context, user_id: int) -> OnlineCard | None:
    with ctx.uow() as uow:
        return uow.online_cards.current(user_id)


def _check_may_request(
    ctx: Context, uow: UnitOfWork, user: User, now: datetime, caller: Caller
) -> None:
    if _has_active_device(ctx, uow, user, now, caller):
        raise ConflictError(message=ACTIVE_DEVICE)
    current = uow.online_cards.current(user.user_id)
    if current is not None and current.state(now) is OnlineCardState.ACTIVE:
        raise ConflictError(
            message="Your online security code card is active until "
            f"{current.expires_at:%Y-%m-%d %H:%M} UTC."
        )


def _has_active_device(
    ctx: Context, uow: UnitOfWork, user: User, now: datetime, caller: Caller
) -> bool:
    """Whether a permanent device is active, the self-activations due applied first (R5.4;
    one that is applied ends every temporary credential, R5.5)."""
    devices = refresh_devices(ctx, uow, user, now, caller)
    return any(d.state is DeviceState.ACTIVE for d in devices)


def _own_card(uow: UnitOfWork, user: User, card_id: str) -> OnlineCard:
    card = uow.online_cards.get(card_id)
    if card is None or card.user_id != user.user_id:
        raise NotFoundError()
    return card
