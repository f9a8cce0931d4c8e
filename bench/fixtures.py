"""Bulk-loading benchmark data straight into the database (one precomputed hash).

Creating users through the service costs four argon2id hashes each; a benchmark needs
thousands, so they are written directly, with the same password hash for all and an
active authenticator app each (its secret sealed like the service seals it).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from sqlalchemy import insert

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.adapters.secretbox import AesGcmSecretBox, parse_key
from securelogin.config import Settings
from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.storage.tables import devices, users

PASSWORD = "Bench4password"
BATCH = 1000


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def load_users(database_url: str, secret_key: str, count: int) -> dict[str, bytes]:
    """``count`` users ``bench000001``… with one active TOTP device each; their secrets."""
    settings = Settings(database_url=database_url)
    hasher = Argon2Hasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=1,
    )
    password_hash = hasher.hash(PASSWORD)
    box = AesGcmSecretBox(parse_key(secret_key))
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    secrets_by_user: dict[str, bytes] = {}
    with engine.begin() as connection:
        for start in range(0, count, BATCH):
            names = [f"bench{i:06d}" for i in range(start + 1, min(count, start + BATCH) + 1)]
            ids = connection.execute(
                insert(users).returning(users.c.user_id, users.c.username),
                [
                    {
                        "username": n,
                        "password_hash": password_hash,
                        "email": f"{n}@example.com",
                        "country": "US",
                        "full_name": "Bench Client",
                        "created_at": now,
                    }
                    for n in names
                ],
            ).all()
            rows = []
            for user_id, username in ids:
                secret = secrets.token_bytes(20)
                device_id = f"dev_bench_{username}"
                secrets_by_user[username] = secret
                rows.append(
                    {
                        "device_id": device_id,
                        "user_id": user_id,
                        "kind": "totp",
                        "serial": f"TOTPB{user_id:09d}",
                        "state": "active",
                        "secret_sealed": box.seal(secret, device_id),
                        "created_at": now,
                        "activated_at": now,
                        "state_changed_at": now,
                        "ordered_by": "bench",
                    }
                )
            connection.execute(insert(devices), rows)
    engine.dispose()
    return secrets_by_user
