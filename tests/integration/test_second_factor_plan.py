"""R4.1 with R5.5 and R6.4: a user with an active permanent device is offered only devices.

No temporary credential outlives the activation of a permanent device (R5.5), and issuing
a temporary passcode suspends the active devices (R6.4), so the two never meet; step one
does not look temporary credentials up for a user with an active device. Should they ever
meet (a row written by hand, a bug elsewhere), the stricter answer wins: the passcode is
not offered beside the device.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from securelogin.bootstrap import Application
from securelogin.domain.login import FactorKind
from securelogin.domain.sessions import Platform
from securelogin.services import login
from securelogin.services.context import Caller
from securelogin.services.login import SecondFactorNeeded
from securelogin.storage.tables import temporary_passcodes
from tests.clock import FakeClock
from tests.conftest import PASSWORD
from tests.integration.test_totp_concurrency import USER, Enrolled, enrolled, two_servers

__all__ = ["enrolled", "two_servers"]  # fixtures used below


def test_a_passcode_beside_an_active_device_is_not_offered(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    server = two_servers[0]
    with server.context.uow() as uow:
        user = uow.users.get(USER)
    assert user is not None
    with server.engine.begin() as connection:  # against the rules: by hand
        connection.execute(
            insert(temporary_passcodes).values(
                passcode_id="tpc_by_hand",
                user_id=user.user_id,
                code_hash=server.context.hasher.hash("ABCD2345"),
                issued_at=clock.now() - timedelta(hours=1),
                issued_by="test",
            )
        )

    started = login.start_login(
        server.context, username=USER, password=PASSWORD, platform=Platform.PORTAL, caller=Caller()
    )

    assert isinstance(started, SecondFactorNeeded)
    assert [f.kind for f in started.factors] == [FactorKind.TOTP]
    assert [f.credential_id for f in started.factors] == [enrolled.device_id]
