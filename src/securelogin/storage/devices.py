"""Devices in SQL. Every state change is a guarded UPDATE (``WHERE state IN …``), so two
requests racing for the same change cannot both win.

A device's read for a second-factor check may be sent ahead (``read_ahead``), with the
statement the transaction sends next: on PostgreSQL a round trip fewer for the response
to step two (services/login_response.py). Any write through this repository forgets what
was read ahead, so ``with_secrets`` never returns a device as it was before this
transaction changed it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, or_, select, update

from securelogin.domain.devices import Device, DeviceKind, DeviceState
from securelogin.services.ports import NewDevice, SealedSecrets
from securelogin.storage.prepared import Ahead, Prepared
from securelogin.storage.tables import devices

# The statements of every second-factor check, built once.
_DEVICE: BindParameter[str] = bindparam("p_device")
_GET = Prepared(select(devices).where(devices.c.device_id == _DEVICE))
_STEP: BindParameter[int] = bindparam("p_step")
_OWNER: BindParameter[int] = bindparam("p_user_id")
_FOR_USER = Prepared(
    select(devices)
    .where(devices.c.user_id == _OWNER)
    .order_by(devices.c.created_at, devices.c.device_id)
)
_CLAIM_STEP = Prepared(
    update(devices)
    .where(
        devices.c.device_id == _DEVICE,
        or_(devices.c.last_used_step.is_(None), devices.c.last_used_step < _STEP),
    )
    .values(last_used_step=_STEP)
)


class SqlDeviceRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        # Reads sent ahead: of with_secrets by device, of for_user by user.
        self._ahead: dict[str, Ahead] = {}
        self._ahead_for_user: dict[int, Ahead] = {}

    def add(self, device: NewDevice) -> None:
        self._forget_ahead()
        self._c.execute(
            devices.insert().values(
                device_id=device.device_id,
                user_id=device.user_id,
                kind=str(device.kind),
                serial=device.serial,
                state=str(device.state),
                secret_sealed=device.secret_sealed,
                pin_sealed=device.pin_sealed,
                country=device.country,
                created_at=device.created_at,
                mailed_at=device.mailed_at,
                expected_arrival=device.expected_arrival,
                activated_at=None,
                state_changed_at=device.created_at,
                ordered_by=device.ordered_by,
            )
        )

    def get(self, device_id: str) -> Device | None:
        row = _GET.run(self._c, {"p_device": device_id}).first()
        return _device(row) if row else None

    def for_user(self, user_id: int) -> list[Device]:
        ahead = self._ahead_for_user.pop(user_id, None)
        found = ahead.result() if ahead else _FOR_USER.run(self._c, {"p_user_id": user_id})
        return [_device(row) for row in found.rows]

    def read_ahead_for_user(self, user_id: int) -> None:
        self._ahead_for_user[user_id] = _FOR_USER.ahead(self._c, {"p_user_id": user_id})

    def serial_exists(self, serial: str) -> bool:
        return (
            self._c.execute(select(devices.c.device_id).where(devices.c.serial == serial)).first()
            is not None
        )

    def _forget_ahead(self) -> None:
        """Before a write: what was read ahead may no longer be what is there."""
        self._ahead.clear()
        self._ahead_for_user.clear()

    def read_ahead(self, device_id: str) -> None:
        self._ahead[device_id] = _GET.ahead(self._c, {"p_device": device_id})

    def with_secrets(self, device_id: str) -> tuple[Device, SealedSecrets] | None:
        ahead = self._ahead.pop(device_id, None)
        found = ahead.result() if ahead else _GET.run(self._c, {"p_device": device_id})
        row = found.first()
        if row is None:
            return None
        return _device(row), SealedSecrets(row.secret_sealed, row.pin_sealed)

    def change_state(
        self, device_id: str, to: DeviceState, at: datetime, *, allowed_from: Iterable[DeviceState]
    ) -> bool:
        self._forget_ahead()
        values: dict[str, Any] = {
            "state": str(to),
            "state_changed_at": at,
            "activation_challenge": None,
        }
        if to is DeviceState.ACTIVE:
            values["activated_at"] = at
        result = self._c.execute(
            update(devices)
            .where(
                devices.c.device_id == device_id,
                devices.c.state.in_([str(s) for s in allowed_from]),
            )
            .values(**values)
        )
        return bool(result.rowcount == 1)

    def claim_totp_step(self, device_id: str, step: int) -> bool:
        self._forget_ahead()
        result = _CLAIM_STEP.run(self._c, {"p_device": device_id, "p_step": step})
        return bool(result.rowcount == 1)

    def set_activation_challenge(self, device_id: str, challenge: str | None) -> None:
        self._forget_ahead()
        self._c.execute(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(activation_challenge=challenge)
        )

    def take_activation_challenge(self, device_id: str) -> str | None:
        self._forget_ahead()
        current = self._c.execute(
            select(devices.c.activation_challenge).where(devices.c.device_id == device_id)
        ).scalar_one_or_none()
        if current is None:
            return None
        taken = self._c.execute(
            update(devices)
            .where(
                devices.c.device_id == device_id,
                devices.c.activation_challenge == current,
            )
            .values(activation_challenge=None)
        ).rowcount
        return str(current) if taken == 1 else None

    def all_secrets(self) -> Iterator[tuple[str, SealedSecrets]]:
        rows = self._c.execute(
            select(devices.c.device_id, devices.c.secret_sealed, devices.c.pin_sealed).order_by(
                devices.c.device_id
            )
        )
        for row in rows.all():
            yield row.device_id, SealedSecrets(row.secret_sealed, row.pin_sealed)

    def reseal(self, device_id: str, sealed: SealedSecrets) -> None:
        self._forget_ahead()
        self._c.execute(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(secret_sealed=sealed.secret, pin_sealed=sealed.pin)
        )


def _device(row: Any) -> Device:
    return Device(
        row.device_id,
        row.user_id,
        DeviceKind(row.kind),
        row.serial,
        DeviceState(row.state),
        row.created_at,
        row.mailed_at,
        row.expected_arrival,
        row.activated_at,
        row.country,
    )
