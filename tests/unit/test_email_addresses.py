"""A user's e-mail address (domain/email_addresses.py) and the message made for it (R6.7).

Every address the check accepts must become a message whose one recipient is that address
(adapters/mail.py); what the stdlib cannot build is ``UnbuildableMessageError``, never another
exception that would stop a flush.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securelogin.adapters.mail import _message
from securelogin.domain.email_addresses import check_email, is_deliverable
from securelogin.domain.errors import InvalidRequestError
from securelogin.services.mail import UnbuildableMessageError

ACCEPTED = [
    "ada@example.com",
    "Ada.Lovelace+alerts@mail.example.co.uk",
    "o'brien@example.ie",
    "x_1-2@sub-domain.example.org",
    "a@b.cd",
    "a" * 64 + "@example.com",
]
REFUSED = [
    "a@[b",
    "=?utf-8?q?=41?=@example.com",  # an encoded word: the header parser reads A@example.com
    "a@[192.0.2.1]",
    "a,b@example.com",
    "a@b@example.com",
    '"a b"@example.com',
    "(comment)a@example.com",
    "Ada <ada@example.com>",
    "ada@localhost",
    ".ada@example.com",
    "ada.@example.com",
    "a..da@example.com",
    "ada@example..com",
    "ada@-example.com",
    "ada@example-.com",
    "ada@192.0.2.1",
    "ada@exa_mple.com",
    "adä@example.com",
    "ada@exämple.com",
    "ada@example.com\n",
    "ada @example.com",
    "a" * 65 + "@example.com",
    "ada@" + "a" * 64 + ".com",
    "ada@" + ("a" * 60 + ".") * 5 + "com",
    "",
    "@",
]


@pytest.mark.parametrize("address", ACCEPTED)
def test_a_plain_address_is_accepted_and_builds_a_message_to_it_alone(address: str) -> None:
    assert check_email(address) == address
    message = _message("securelogin@localhost", address, "Subject", "Body")
    assert [a.addr_spec for a in message["To"].addresses] == [address]


@pytest.mark.parametrize("address", REFUSED)
def test_an_address_mail_libraries_may_read_otherwise_is_refused_naming_the_field(
    address: str,
) -> None:
    assert not is_deliverable(address)
    with pytest.raises(InvalidRequestError) as refused:
        check_email(address)
    assert refused.value.field == "email"


@given(st.emails())
def test_every_accepted_address_builds_a_message_to_that_address_alone(address: str) -> None:
    if is_deliverable(address):
        message = _message("securelogin@localhost", address, "Subject", "Body")
        assert [a.addr_spec for a in message["To"].addresses] == [address]
        assert message.as_bytes()


@pytest.mark.parametrize("address", ["a@[b", "a,b@example.com", "a@b,c@example.com"])
def test_a_message_the_stdlib_cannot_build_or_reads_as_another_is_unbuildable(
    address: str,
) -> None:
    with pytest.raises(UnbuildableMessageError):
        _message("securelogin@localhost", address, "Subject", "Body")
