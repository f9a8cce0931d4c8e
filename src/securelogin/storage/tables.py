"""The tables. Alembic migrations (storage/migrations) must match this metadata exactly;
tests/integration/test_migrations.py proves it with Alembic's own comparison."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from securelogin.storage.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("email", String(254), nullable=False, index=True),
    Column("country", String(2), nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

security_answers = Table(
    "security_answers",
    metadata,
    Column("answer_id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("answer_hash", String(255), nullable=False),
)

# R3: one row per username as typed (existing or not, R3.8), holding the lock.
lockout_subjects = Table(
    "lockout_subjects",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("locked_by_failure", BigInteger, nullable=True),
)

# R3: the failures of the current run (since the last successful login). A row is written
# when an attempt is admitted (pending) and settled when it proved wrong; a right attempt
# deletes its row. Pending rows older than a grace period count as failures (a crash).
lockout_failures = Table(
    "lockout_failures",
    metadata,
    Column(
        "failure_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("subject", String(64), ForeignKey("lockout_subjects.subject"), nullable=False),
    Column("failed_at", UtcDateTime, nullable=False),  # when the attempt was admitted
    Column("settled_at", UtcDateTime, nullable=True),  # null while being evaluated
    Index("ix_lockout_failures_subject_failed_at", "subject", "failed_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column(
        "session_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("token_digest", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("access", String(32), nullable=False),
    Column("factor_kind", String(32), nullable=True),
    Column("credential_ref", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    # The end of the temporary credential it was opened with (R6.3, R7.4, R5.5), if sooner
    # than the door's own limit; NULL for a session opened with a device or a password.
    Column("not_after", UtcDateTime, nullable=True),
    Index("ix_sessions_user_id_platform", "user_id", "platform"),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("login_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("factors", Text, nullable=False),  # JSON: the factors offered, with challenges
)

staff = Table(
    "staff",
    metadata,
    Column("staff_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# R9: append-only, hash-chained. The head row (head_id = 1) holds the newest seq and hash.
audit_records = Table(
    "audit_records",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(240), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(64), nullable=True, index=True),
    Column("outcome", String(64), nullable=False),
    Column("source", String(64), nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("head_id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("record_hash", String(64), nullable=False),
)

# R5: permanent security devices. Secrets are sealed (AES-GCM, adapters/secretbox.py).
devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("serial", String(32), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("secret_sealed", Text, nullable=False),  # TOTP/OCRA key, or card values (JSON)
    Column("pin_sealed", Text, nullable=True),  # SHA-1 of a challenge card's PIN (R5.2)
    Column("country", String(2), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("mailed_at", UtcDateTime, nullable=True),
    Column("expected_arrival", UtcDateTime, nullable=True),
    Column("activated_at", UtcDateTime, nullable=True),
    Column("state_changed_at", UtcDateTime, nullable=False),
    Column("last_used_step", BigInteger, nullable=True),  # R5: a used TOTP step never again
    Column("activation_challenge", String(64), nullable=True),  # JSON of the latest challenge
    Column("ordered_by", String(240), nullable=False),
)

# R6: temporary passcodes, stored as argon2id hashes; shown once to the agent.
temporary_passcodes = Table(
    "temporary_passcodes",
    metadata,
    Column("passcode_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("code_hash", String(255), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("issued_by", String(240), nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("ended_reason", String(64), nullable=True),
)

# R7: the online security code card; values sealed like a code card's.
online_cards = Table(
    "online_cards",
    metadata,
    Column("card_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("values_sealed", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("activation_challenge", String(64), nullable=True),
    Column("activated_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("ended_reason", String(64), nullable=True),
)

# R8.2: identity verifications by Client Services agents.
verifications = Table(
    "verifications",
    metadata,
    Column("verification_id", String(64), primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("answer_id", Integer, ForeignKey("security_answers.answer_id"), nullable=False),
    Column("by_email", Integer, nullable=False),  # 1 when started by e-mail (R8.3 reminder)
    Column("started_at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=True),  # null (open), "passed", "failed"
    Column("answered_at", UtcDateTime, nullable=True),
)

# R8.3: one-time password-reset codes, hashed, 24 hours.
reset_codes = Table(
    "reset_codes",
    metadata,
    Column("code_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False, index=True),
    Column("code_hash", String(255), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("issued_by", String(240), nullable=False),
    # set when a newer code was given or a reset succeeded: it never works again
    Column("ended_at", UtcDateTime, nullable=True),
)

# R6.7: e-mails to send, written in the transaction of the event they tell about.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("user_id", Integer, ForeignKey("users.user_id"), nullable=False),
    Column("to_address", String(254), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("refusals", Integer, nullable=False, default=0),  # attempts refused for good
    Column("last_error", String(200), nullable=True),
    # set when the message is given up (cannot be built, or refused too often): never sent
    Column("given_up_at", UtcDateTime, nullable=True),
)
