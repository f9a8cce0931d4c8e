"""The one error vocabulary of securelogin.

Every refusal the system makes is one of these exceptions. Each carries the stable
``code`` of the HTTP contract (../shared/spec/http-api.md, "Errors") and a ``message`` that
is safe to show a user: it never holds input, secrets, or anything that tells whether an
account exists. Each edge translates them once (web/errors.py: HTTP status; cli: exit code).

    SecureLoginError                      code
    ├── BadCharacterError                 bad_character            R1.3
    ├── InvalidRequestError               invalid_request
    ├── InvalidCredentialsError           invalid_credentials      R2.3
    ├── LoginFailedError                  login_failed             R3.6
    ├── LoginExpiredError                 login_expired            R4.2
    ├── AccountLockedError                account_locked           R3.3
    ├── NoUsableSecondFactorError         no_usable_second_factor  R4.4
    ├── PlatformNotPermittedError         platform_not_permitted   R6.3
    ├── UnauthenticatedError              unauthenticated
    ├── ForbiddenError                    forbidden
    ├── NotFoundError                     not_found
    ├── VerificationRequiredError         verification_required    R8.2
    ├── VerificationFailedError           verification_failed      R8.2
    ├── VerificationLockedError           verification_locked      R8.2
    ├── ConsecutiveTemporaryPasscodeError consecutive_temporary_passcode R6.5
    ├── ConflictError                     conflict
    ├── TooManyRequestsError              too_many_requests
    └── ServiceUnavailableError           service_unavailable      (the database is down)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar


class SecureLoginError(Exception):
    """Base of every refusal; never raised itself."""

    code: ClassVar[str] = "error"
    message: ClassVar[str] = "The request was refused."

    def __init__(self, *, hint: str | None = None, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.hint = hint
        self.user_message = message or self.message

    def extra_fields(self) -> dict[str, Any]:
        """Structured fields beside code, message and hint (e.g. ``locked_until``)."""
        return {}


class BadCharacterError(SecureLoginError):
    """The username holds a character outside A-Z a-z 0-9 (R1.3); not a login attempt."""

    code = "bad_character"
    message = "BAD CHARACTER"


class InvalidRequestError(SecureLoginError):
    """The body is malformed or a field is out of range; names the field."""

    code = "invalid_request"
    message = "The request is not valid."

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message=message, hint=hint)
        self.field = field

    def extra_fields(self) -> dict[str, Any]:
        return {"field": self.field} if self.field else {}


class InvalidCredentialsError(SecureLoginError):
    """Wrong password or unknown username: one reply for both (R2.3)."""

    code = "invalid_credentials"
    message = "Invalid user name password combination"


class LoginFailedError(SecureLoginError):
    """A wrong or malformed second-factor response (R3.6)."""

    code = "login_failed"
    message = "Login failed"


class LoginExpiredError(SecureLoginError):
    """The login attempt is unknown, used, or older than its lifetime (R4.2)."""

    code = "login_expired"
    message = "This login has expired. Please start again."


class _LockedUntilError(SecureLoginError):
    def __init__(self, locked_until: datetime, *, hint: str | None = None) -> None:
        super().__init__(hint=hint)
        self.locked_until = locked_until

    def extra_fields(self) -> dict[str, Any]:
        return {"locked_until": self.locked_until.isoformat()}


class AccountLockedError(_LockedUntilError):
    """Too many failed attempts: refused until ``locked_until`` (R3.3)."""

    code = "account_locked"
    message = "Too many failed login attempts. Login is locked until the time given."


class NoUsableSecondFactorError(SecureLoginError):
    """Enrolled in the Secure Login System but nothing usable (R4.4)."""

    code = "no_usable_second_factor"
    message = "No usable security device. Please call Client Services."


class PlatformNotPermittedError(SecureLoginError):
    """This credential may not be used through this door (R6.3)."""

    code = "platform_not_permitted"
    message = "This credential cannot be used to log in to the trading platform."


class UnauthenticatedError(SecureLoginError):
    """Missing, unknown or expired session or token."""

    code = "unauthenticated"
    message = "Please log in."


class ForbiddenError(SecureLoginError):
    """The session's access or the token's role does not allow this."""

    code = "forbidden"
    message = "You are not allowed to do this."


class NotFoundError(SecureLoginError):
    """No such resource, or not one of the caller's."""

    code = "not_found"
    message = "Not found."


class VerificationRequiredError(SecureLoginError):
    """An agent action without a passed, unexpired verification of this caller (R8.2)."""

    code = "verification_required"
    message = "Verify the caller's identity first."


class VerificationFailedError(SecureLoginError):
    """The answer to the security question did not match (R8.2)."""

    code = "verification_failed"
    message = "The answer does not match."


class VerificationLockedError(_LockedUntilError):
    """Three failed verifications within 24 hours lock phone support (R8.2)."""

    code = "verification_locked"
    message = "Phone support is locked for this user until the time given."


class ConsecutiveTemporaryPasscodeError(SecureLoginError):
    """R6.5: no second temporary passcode before a permanent device was active again."""

    code = "consecutive_temporary_passcode"
    message = (
        "A temporary passcode was already issued since the last active security device. "
        "Restore a permanent device instead (order a replacement)."
    )


class ConflictError(SecureLoginError):
    """Any other state conflict (device already active, username taken, ...)."""

    code = "conflict"
    message = "This conflicts with the current state."


class TooManyRequestsError(SecureLoginError):
    """A rate limit was reached."""

    code = "too_many_requests"
    message = "Too many requests. Please wait and try again."

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailableError(SecureLoginError):
    """The database cannot be reached; nothing was changed."""

    code = "service_unavailable"
    message = "The service is temporarily unavailable. Please try again shortly."
