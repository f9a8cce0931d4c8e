"""The key file of the embedded SQLite default (adapters/secretbox.py): rewritten whole by
a rotation, and read again by a box that meets a key it does not hold or sees it changed."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from securelogin.adapters.secretbox import (
    AesGcmSecretBox,
    KeyFileSecretBox,
    UnknownKeyError,
    key_id,
    parse_key,
    read_key_texts,
    staged_key_file,
    write_key_file,
)


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def sealed_with(key: str, plaintext: bytes = b"secret", context: str = "dev_1") -> str:
    return AesGcmSecretBox(parse_key(key)).seal(plaintext, context)


def ident(sealed: str) -> str:
    return sealed.split(".")[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "securelogin.db.key"


def test_a_key_file_is_written_whole_mode_0600_the_current_key_first(path: Path) -> None:
    old, new = new_key(), new_key()

    write_key_file(path, [new, old])

    assert read_key_texts(path) == [new, old]
    assert path.read_text().startswith(new + "\n#")  # a note says what the older keys are
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_box_opens_with_the_staged_key_of_a_rotation_not_yet_finished(path: Path) -> None:
    old, new = new_key(), new_key()
    write_key_file(path, [old])
    box = KeyFileSecretBox(path)
    write_key_file(staged_key_file(path), [new, old])  # the rotation re-sealed, not renamed

    assert box.open(sealed_with(new), "dev_1") == b"secret"
    assert ident(box.seal(b"x", "dev_2")) == key_id(parse_key(old))  # the file's current key


def test_a_box_seals_with_the_new_key_once_the_key_file_is_replaced(path: Path) -> None:
    old, new = new_key(), new_key()
    write_key_file(path, [old])
    box = KeyFileSecretBox(path)
    before = box.seal(b"before", "dev_1")

    write_key_file(path, [new, old])

    assert ident(box.seal(b"x", "dev_2")) == key_id(parse_key(new))
    assert box.open(before, "dev_1") == b"before"
    assert box.open(sealed_with(new), "dev_1") == b"secret"


def test_a_key_file_that_does_not_read_leaves_the_box_its_keys(path: Path) -> None:
    old = new_key()
    write_key_file(path, [old])
    box = KeyFileSecretBox(path)
    path.write_text("half an edi")

    assert box.open(sealed_with(old), "dev_1") == b"secret"
    assert ident(box.seal(b"x", "dev_2")) == key_id(parse_key(old))
    with pytest.raises(UnknownKeyError):
        box.open(sealed_with(new_key()), "dev_1")


def test_a_key_no_file_holds_is_still_unknown_after_reading_them_again(path: Path) -> None:
    write_key_file(path, [new_key()])
    box = KeyFileSecretBox(path, parse_key(older := new_key()))

    assert box.open(sealed_with(older), "dev_1") == b"secret"  # SECURELOGIN_OLD_SECRET_KEYS
    with pytest.raises(UnknownKeyError, match="unknown key"):
        box.open(sealed_with(new_key()), "dev_1")
