"""Whether a reply reaches its browser over HTTPS: cookies ``Secure``, and
``Strict-Transport-Security`` (``SECURELOGIN_COOKIE_SECURE``, docs/operations.md).

In the documented deployment TLS ends at a load balancer, so the service sees plain http
and cannot tell from the connection what the browser used. So, by default (``auto``),
every reply counts as sent over HTTPS but one to a plain-http request for a loopback name
(``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``) that carries no proxy's header:
the README's local run and the tests, where a Secure cookie would never come back. A
proxy's request (it adds ``X-Forwarded-For``) is never taken for a local one, whatever
Host it passes on. ``1`` makes every reply secure; ``0`` only those to requests seen to
arrive over HTTPS (scheme https, or ``X-Forwarded-Proto: https`` from a trusted proxy).

Only the request's own headers decide, so a client can make only its own replies look
local; a browser sends the Host it is at, never another.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from securelogin.config import Settings

# One year; no includeSubDomains: what else is served under the domain is not ours to
# decide (an operator's proxy may send its own instead, docs/operations.md).
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")
_PROXY_HEADERS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
)


def secure_transport(scope: Scope, settings: Settings) -> bool:
    """True when the reply to this request must set Secure cookies and send HSTS."""
    if settings.cookie_secure:
        return True
    if arrived_over_https(scope, settings):
        return True
    if settings.cookie_secure is False:
        return False
    return not _plain_http_to_loopback(scope)


def arrived_over_https(scope: Scope, settings: Settings) -> bool:
    """Scheme https, or behind a trusted proxy its ``X-Forwarded-Proto`` (when it sent one)."""
    if settings.trust_forwarded_for:
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                return bool(value.strip().lower() == b"https")
    return bool(scope.get("scheme") == "https")


def _plain_http_to_loopback(scope: Scope) -> bool:
    host = b""
    for name, value in scope["headers"]:
        if name in _PROXY_HEADERS:
            return False
        if name == b"host":
            host = value
    if not host:
        server = scope.get("server")
        return server is not None and is_loopback_name(str(server[0]))
    return is_loopback_name(host.decode("latin-1"))


def is_loopback_name(host: str) -> bool:
    """``localhost``, a name under it (RFC 6761) or a loopback address, with or without
    a port (``[::1]:8000``)."""
    if host.startswith("["):
        name = host[1 : host.find("]")]
    elif host.count(":") == 1:
        name = host.partition(":")[0]
    else:
        name = host
    name = name.lower().removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
