"""A user's e-mail address: the one place notifications go (R6.7), so it must be deliverable.

Accepted is a plain ASCII ``local@domain`` that every mail library reads the same way:
the local part a dot-atom (RFC 5322 §3.2.3: atext characters, single dots between them,
at most 64 characters, RFC 5321 §4.5.3.1.1), the domain a host name of letter-digit-hyphen
labels (RFC 1035, at most 63 characters each, at least two, the last with a letter).
Refused are the forms that parse differently from one library to the next or that a relay
will not take from us: quoted local parts, comments, domain literals (``a@[b``,
``a@[10.0.0.1]``), several addresses in one (``a,b@example.com``), bare host names
(``a@localhost``), non-ASCII addresses (SMTPUTF8, which relays may not offer) and local
parts holding an RFC 2047 encoded word (``=?utf-8?q?=41?=``, which header parsers decode
into another address).
"""

from __future__ import annotations

import re

from securelogin.domain.errors import InvalidRequestError

MAX_ADDRESS_LENGTH = 254  # RFC 5321 §4.5.3.1.3: a path of 256 with its angle brackets
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321 §4.5.3.1.1

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+", re.ASCII)


def is_deliverable(address: str) -> bool:
    """Whether ``address`` is a plain ``local@domain`` of the form above."""
    if len(address) > MAX_ADDRESS_LENGTH or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    return (
        len(local) <= MAX_LOCAL_PART_LENGTH
        and _LOCAL_PART.fullmatch(local) is not None
        and "=?" not in local  # an RFC 2047 encoded word, which mail libraries decode
        and _DOMAIN.fullmatch(domain) is not None
        and not domain.rsplit(".", 1)[1].isdigit()  # a top-level domain is never all digits
    )


def check_email(address: str) -> str:
    """The address, or ``invalid_request`` naming the field ``email``."""
    if not is_deliverable(address):
        raise InvalidRequestError(
            "Give a valid e-mail address, such as name@example.com.", field="email"
        )
    return address
