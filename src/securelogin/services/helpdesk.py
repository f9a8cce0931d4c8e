"""What a Client Services agent may do for a verified caller (R8.3, R6, R5.6).

Every action first requires a passed, unexpired verification by this agent of this user
(verification.require_verification); every action is audited with the agent's identity,
one refused for want of a verification too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from securelogin.domain import passcodes
from securelogin.domain.accounts import StaffMember, User
from securelogin.domain.devices import FINAL, Device, DeviceKind, DeviceState
from securelogin.domain.errors import (
    ConflictError,
    ConsecutiveTemporaryPasscodeError,
    InvalidRequestError,
    NotFoundError,
)
from securelogin.domain.online_cards import OnlineCard
from securelogin.domain.passcodes import full_access_until, portal_access_until
from securelogin.domain.tokens import encode_token
from securelogin.domain.verification import RESET_CODE_LENGTH, RESET_CODE_TTL
from securelogin.services import devices as device_service
from securelogin.services.attempts import audit
from securelogin.services.context import Caller, Context
from securelogin.services.device_states import refresh_devices
from securelogin.services.notifications import notify
from securelogin.services.ports import StoredPasscode, UnitOfWork
from securelogin.services.verification import require_verification

PASSCODE_ID_PREFIX = "tpc_"
RESET_ID_PREFIX = "rst_"

# What an agent asks for, as audited when it is refused for want of a verification (R8.1);
# each names the attempt, as "temporary_passcode.issue" does beside "..._issued".
VIEW_CALLER = "agent.caller_view"
ISSUE_PASSCODE = "temporary_passcode.issue"
GIVE_RESET_CODE = "password_reset_code.issue"
MARK_DEVICE_LOST = "device.deactivation"
ORDER_DEVICE = "device.order"


@dataclass(frozen=True)
class CallerSummary:
    username: str
    locked_until: datetime | None
    devices: list[Device]
    passcode: StoredPasscode | None  # the usable one, if any
    online_card: OnlineCard | None


@dataclass(frozen=True)
class IssuedPasscode:
    passcode: str  # shown once, to the agent, who reads it out (R6.1)
    issued_at: datetime


def verified_user(
    ctx: Context,
    agent: StaffMember,
    verification_id: str | None,
    username: str,
    caller: Caller,
    action: str,
) -> User:
    """The user, if this agent verified them; otherwise ``verification_required``, audited
    as ``action`` (what the agent asked for: one of the names above)."""
    return verified_user_until(ctx, agent, verification_id, username, caller, action)[0]


def verified_user_until(
    ctx: Context,
    agent: StaffMember,
    verification_id: str | None,
    username: str,
    caller: Caller,
    action: str,
) -> tuple[User, datetime]:
    """The verified user and when the verification expires (the console shows it)."""
    with ctx.uow() as uow:
        user = uow.users.get(username[:64])
    named = {} if user else {"username": username[:64]}
    until = require_verification(
        ctx, agent, verification_id, user, caller=caller, action=action, named=named
    )
    if user is None:  # never: an unknown user is always refused, as if not verified
        raise NotFoundError()
    return user, until


def verified_device_owner(
    ctx: Context, agent: StaffMember, verification_id: str | None, device_id: str, caller: Caller
) -> User:
    """The owner of a device, if this agent verified them; else ``verification_required``
    (an unknown device too: nothing is told before a verification), audited."""
    with ctx.uow() as uow:
        device = uow.devices.get(device_id[:64])
        user = uow.users.get_by_id(device.user_id) if device else None
    require_verification(
        ctx,
        agent,
        verification_id,
        user,
        caller=caller,
        action=MARK_DEVICE_LOST,
        named={"device_id": device_id[:64]},
    )
    if user is None:
        raise NotFoundError()
    return user


def summarise(ctx: Context, user: User, caller: Caller) -> CallerSummary:
    """What the agent sees of a verified caller (R8.4: the lock end only after verification).

    Looking is an agent action too (R8.1): audited with the agent's identity, what was shown
    named but not its content."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        found = refresh_devices(ctx, uow, user, now, caller)
        passcode = uow.passcodes.latest(user.user_id)
        if passcode and (passcode.ended_at or not passcodes.is_usable(passcode.issued_at, now)):
            passcode = None
        card = uow.online_cards.current(user.user_id)
        locked_until = uow.lockout.locked_until(user.username, now)
        audit(
            uow,
            now,
            user.username,
            caller,
            "agent.caller_viewed",
            "ok",
            {"devices": len(found), "locked": locked_until is not None},
        )
        uow.commit()
    return CallerSummary(user.username, locked_until, found, passcode, card)


def issue_temporary_passcode(ctx: Context, user: User, caller: Caller) -> IssuedPasscode:
    """R6: a new passcode; suspends the active devices; never two in a row (R6.5)."""
    code = passcodes.make_passcode(ctx.random.below)
    code_hash = ctx.hasher.hash(code)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        # The subject first, as a login holds it from its check to its session: no login
        # can open a session with a device while it is being suspended here.
        uow.lockout.hold(user.username)  # lock order: subject, user, devices, audit head
        uow.users.lock(user.user_id)  # one decision at a time for R6.5
        found = refresh_devices(ctx, uow, user, now, caller)
        last = uow.passcodes.latest(user.user_id)
        activations = [d.activated_at for d in found if d.activated_at is not None]
        if not passcodes.may_issue_another(
            last.issued_at if last else None, max(activations, default=None)
        ):
            audit(
                uow,
                now,
                user.username,
                caller,
                ISSUE_PASSCODE,
                "consecutive_temporary_passcode",
            )
            uow.commit()
            raise ConsecutiveTemporaryPasscodeError()
        uow.passcodes.end_all(user.user_id, now, "replaced")
        passcode_id = encode_token(PASSCODE_ID_PREFIX, ctx.random.token_bytes(32))
        uow.passcodes.add(
            StoredPasscode(passcode_id, user.user_id, code_hash, now, caller.actor, None)
        )
        suspended = _suspend_active_devices(uow, found, now)
        # ...and the sessions opened with them end: they work again only once reactivated
        ended = uow.sessions.end_opened_with(user.user_id, suspended, now)
        audit(
            uow,
            now,
            user.username,
            caller,
            "temporary_passcode.issued",
            "ok",
            {
                "full_access_until": full_access_until(now).isoformat(),
                "portal_access_until": portal_access_until(now).isoformat(),
                "sessions_ended": ended,
            },
        )
        notify(uow, user, "temporary_passcode_issued", now)
        uow.commit()
    return IssuedPasscode(code, now)


def give_reset_code(ctx: Context, user: User, caller: Caller) -> tuple[str, datetime]:
    """R8.3: a one-time password-reset code, valid 24 hours; it ends the user's earlier
    codes, so one at most is open (and a reset checks one hash, R2.3)."""
    alphabet = passcodes.PASSCODE_ALPHABET
    code = "".join(alphabet[ctx.random.below(len(alphabet))] for _ in range(RESET_CODE_LENGTH))
    code_hash = ctx.hasher.hash(code)
    now = ctx.clock.now()
    expires_at = now + RESET_CODE_TTL
    with ctx.uow() as uow:
        uow.lockout.hold(user.username)  # lock order of a reset: subject, then its codes
        earlier = uow.reset_codes.end_open(user.user_id, now)
        uow.reset_codes.add(
            encode_token(RESET_ID_PREFIX, ctx.random.token_bytes(32)),
            user.user_id,
            code_hash,
            now,
            expires_at,
            caller.actor,
        )
        audit(
            uow,
            now,
            user.username,
            caller,
            "password_reset_code.issued",
            "ok",
            {"expires_at": expires_at.isoformat(), "earlier_codes_ended": earlier},
        )
        uow.commit()
    return code, expires_at


def mark_device_lost(
    ctx: Context, user: User, device_id: str, reason: str, caller: Caller
) -> Device:
    """R5.6: lost or damaged; the device never works again.

    Self-activations due are applied first (R5.4): a mailed device past its 14 days was
    active from then on, and its activation still counts for R6.5 once it is lost.
    """
    if reason not in (DeviceState.LOST, DeviceState.DAMAGED):
        raise InvalidRequestError("The reason is lost or damaged.", field="reason")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        # As for a suspension: no login opens a session with the device meanwhile.
        uow.lockout.hold(user.username)  # lock order: subject, devices, audit head
        device = uow.devices.get(device_id[:64])
        if device is None or device.user_id != user.user_id:
            raise NotFoundError()
        refresh_devices(ctx, uow, user, now, caller)
        allowed = [s for s in DeviceState if s not in FINAL]
        if not uow.devices.change_state(
            device.device_id, DeviceState(reason), now, allowed_from=allowed
        ):
            raise ConflictError(message="This device is already lost or damaged.")
        # It never works again (R5.6): nor do the sessions opened with it.
        ended = uow.sessions.end_opened_with(user.user_id, [device.device_id], now)
        audit(
            uow,
            now,
            user.username,
            caller,
            "device.deactivated",
            reason,
            {"device_id": device.device_id, "kind": device.kind, "sessions_ended": ended},
        )
        notify(uow, user, "device_lost", now, f"{device.kind} {device.serial[-5:]}")
        changed = uow.devices.get(device.device_id)
        uow.commit()
    if changed is None:
        raise NotFoundError()
    return changed


def order_replacement(
    ctx: Context, user: User, *, kind: DeviceKind, pin: str | None, country: str, caller: Caller
) -> device_service.DeviceOrder:
    """R8.3: an agent orders a device for the verified caller (shipping as R5.3)."""
    return device_service.order_device(
        ctx, user, kind=kind, pin=pin, country=country, caller=caller
    )


def _suspend_active_devices(uow: UnitOfWork, found: list[Device], now: datetime) -> list[str]:
    """R6.4: the active permanent devices work again only once reactivated. Their ids."""
    return [
        device.device_id
        for device in found
        if device.state is DeviceState.ACTIVE
        and uow.devices.change_state(
            device.device_id, DeviceState.SUSPENDED, now, allowed_from=[DeviceState.ACTIVE]
        )
    ]
