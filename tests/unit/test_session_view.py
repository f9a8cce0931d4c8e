"""A session's token is a bearer secret: shown once to its owner, never in a repr (which
an assertion message, a log line or a traceback's locals could print)."""

from __future__ import annotations

from datetime import UTC, datetime

from securelogin.domain.sessions import Access, Platform
from securelogin.services.sessions import SessionView


def test_a_session_views_repr_leaves_its_token_out() -> None:
    token = "sl_" + "s3cret" * 8
    expires = datetime(2026, 12, 6, tzinfo=UTC)
    view = SessionView("abcde123", Platform.PORTAL, Access.FULL, None, expires, token=token)
    assert view.token == token
    assert token not in repr(view) and token not in str(view)
