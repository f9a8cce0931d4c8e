"""Temporary credentials at login (R6, R7): the temporary passcode and the online card.

They are offered beside (in practice: instead of) the permanent devices, checked at step
two, and all end at once when a permanent device becomes active (R5.5).
"""

from __future__ import annotations

import json
from datetime import datetime

from securelogin.domain import cards, passcodes
from securelogin.domain.accounts import User
from securelogin.domain.errors import PlatformNotPermittedError
from securelogin.domain.login import FactorKind, OfferedFactor
from securelogin.domain.online_cards import OnlineCardState
from securelogin.domain.sessions import Access, Grant, Platform
from securelogin.domain.tokens import encode_token
from securelogin.services.context import Context
from securelogin.services.ports import UnitOfWork

FACTOR_ID_PREFIX = "fct_"
TEMPORARY_KINDS = [str(FactorKind.TEMPORARY_PASSCODE), str(FactorKind.ONLINE_CARD)]


def offer_temporary(
    ctx: Context, uow: UnitOfWork, user: User, platform: Platform, now: datetime
) -> tuple[list[OfferedFactor], bool]:
    """The temporary factors usable at this door now, and whether a passcode exists that
    only the *other* door would accept (so the refusal is ``platform_not_permitted``)."""
    offered: list[OfferedFactor] = []
    refused_here = False
    passcode = uow.passcodes.latest(user.user_id)
    if passcode and passcode.ended_at is None and passcodes.is_usable(passcode.issued_at, now):
        try:
            passcodes.access_at(passcode.issued_at, platform, now)
            offered.append(
                _factor(
                    ctx, FactorKind.TEMPORARY_PASSCODE, "temporary passcode", passcode.passcode_id
                )
            )
        except PlatformNotPermittedError:
            refused_here = True
    card = uow.online_cards.current(user.user_id)
    if card is not None and card.state(now) is OnlineCardState.ACTIVE:
        offered.append(
            _factor(
                ctx,
                FactorKind.ONLINE_CARD,
                f"online card {card.card_id[-5:]}",
                card.card_id,
                cards.pick_indices(ctx.random.below),
            )
        )
    return offered, refused_here


def check_temporary_response(
    ctx: Context,
    uow: UnitOfWork,
    user_id: int,
    factor: OfferedFactor,
    response: str,
    platform: Platform,
    now: datetime,
) -> Grant | None:
    """What a right response gives (the access, until the end of the credential's window
    it depends on: R6.3, R7.4), or None if it is wrong or no longer usable.
    Raises PlatformNotPermittedError for a passcode past its first 2 days at trading."""
    if factor.kind is FactorKind.TEMPORARY_PASSCODE:
        passcode = uow.passcodes.latest(user_id)
        if (
            passcode is None
            or passcode.passcode_id != factor.credential_id
            or passcode.ended_at is not None
            or not passcodes.is_usable(passcode.issued_at, now)
            or not ctx.hasher.verify(passcode.code_hash, response)
        ):
            return None
        access = passcodes.access_at(passcode.issued_at, platform, now)
        return Grant(access, passcodes.access_until(passcode.issued_at, access))
    card = uow.online_cards.get(factor.credential_id)
    if (
        card is None
        or card.user_id != user_id
        or card.state(now) is not OnlineCardState.ACTIVE
        or factor.challenge_indices is None
    ):
        return None
    values = open_card_values(ctx, uow, card.card_id)
    if not cards.is_right_response(values, factor.challenge_indices, response):
        return None
    return Grant(Access.FULL, card.expires_at)  # R7.4: until it expires


def open_card_values(ctx: Context, uow: UnitOfWork, card_id: str) -> dict[int, str]:
    sealed = uow.online_cards.values_sealed(card_id)
    return {int(k): v for k, v in json.loads(ctx.box.open(sealed, card_id)).items()}


def end_temporary_credentials(uow: UnitOfWork, user: User, at: datetime, reason: str) -> int:
    """R5.5: end every temporary credential of the user, and the sessions made with them."""
    ended = uow.passcodes.end_all(user.user_id, at, reason)
    ended += uow.online_cards.end_all(user.user_id, at, reason)
    uow.sessions.end_made_with(user.user_id, TEMPORARY_KINDS, at)
    return ended


def _factor(
    ctx: Context,
    kind: FactorKind,
    label: str,
    credential_id: str,
    indices: tuple[int, int] | None = None,
) -> OfferedFactor:
    return OfferedFactor(
        factor_id=encode_token(FACTOR_ID_PREFIX, ctx.random.token_bytes(32)),
        kind=kind,
        label=label,
        challenge_indices=indices,
        credential_id=credential_id,
    )
