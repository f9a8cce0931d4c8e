"""Secrets at rest (R5.7): AES-256-GCM under ``SECURELOGIN_SECRET_KEY``.

A sealed value is ``v1.<key id>.<base64url(nonce | ciphertext | tag)>``. The key id (the
first 8 hex digits of SHA-256 of the key) says which key sealed it, so that
``securelogin secrets rotate`` can open values under the old key and seal them under the
new one. The ``context`` (e.g. the device id) is bound as associated data: a sealed value
copied to another row does not open there.

On the embedded SQLite default the keys live in a key file beside the database
(``KeyFileSecretBox``): the current key on its first line, older ones on the next. A
rotation rewrites that file under running servers, which read it again when they meet a
value sealed with a key they do not hold, and before sealing when it was replaced.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random nonces are safe far beyond our volumes
VERSION = "v1"


class SecretKeyError(ValueError):
    """The configured key is not a urlsafe-base64 encoding of 32 bytes."""


class UnknownKeyError(ValueError):
    """A value sealed with a key this box does not hold."""


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        raise SecretKeyError("SECURELOGIN_SECRET_KEY is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(
            "SECURELOGIN_SECRET_KEY must encode 32 bytes "
            "(make one with: securelogin secrets generate)"
        )
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class AesGcmSecretBox:
    """SecretBox port: seals with the current key, opens with the current or older keys."""

    def __init__(self, key: bytes, *older_keys: bytes) -> None:
        self._current = (key_id(key), AESGCM(key))
        self._keys = {key_id(k): AESGCM(k) for k in (key, *older_keys)}

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        ident, aead = self._current
        sealed = aead.encrypt(nonce, plaintext, context.encode("utf-8"))
        return f"{VERSION}.{ident}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sealed: str, context: str) -> bytes:
        version, ident, body = sealed.split(".", 2)
        if version != VERSION or ident not in self._keys:
            raise UnknownKeyError("sealed with an unknown key")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._keys[ident].decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")
            )
        except InvalidTag:
            raise ValueError("sealed value does not open: wrong key or context") from None

    def is_current(self, sealed: str) -> bool:
        return sealed.split(".", 2)[1] == self._current[0]


# ---- the key file of the embedded SQLite default ------------------------------------------

KEY_FILE_NOTE = (
    "# Older keys: they still open secrets sealed before a rotation. Remove these lines\n"
    "# once `securelogin secrets rotate` has re-sealed everything under the first key.\n"
)


def staged_key_file(path: Path) -> Path:
    """Where ``secrets rotate --generate`` stages the new key file (``<file>.new``) before
    any secret moves; it replaces the key file once the secrets are re-sealed."""
    return path.with_name(path.name + ".new")


def read_key_texts(path: Path) -> list[str]:
    """The keys of a key file as written, current first: blank lines and ``#`` lines skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_key_file(path: Path) -> list[bytes]:
    """The keys of a key file, current first."""
    try:
        keys = [parse_key(text) for text in read_key_texts(path)]
    except SecretKeyError as error:
        raise SecretKeyError(f"the key file {path}: {error}") from None
    if not keys:
        raise SecretKeyError(f"the key file {path} holds no key")
    return keys


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Write a key file (the current key first) atomically, mode 0600: a reader sees the
    old file or the whole new one, never a part; it is on disk before this returns."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp made it 0600, this user's only
            handle.write(keys[0] + "\n")
            if keys[1:]:
                handle.write(KEY_FILE_NOTE + "".join(key + "\n" for key in keys[1:]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class KeyFileSecretBox:
    """SecretBox port over a key file that a rotation rewrites under running servers.

    A value sealed with a key this box does not hold makes it read the key file again, and
    the staged ``<file>.new`` of a rotation in progress: a server started before a rotation
    opens what was re-sealed by it. Sealing first checks whether the key file changed, so
    the server then seals with the new key too. Neither costs anything on the usual path
    (opening a value sealed with a known key). ``older_keys`` (SECURELOGIN_OLD_SECRET_KEYS)
    are kept whatever the file says.
    """

    def __init__(self, path: Path, *older_keys: bytes) -> None:
        self._path = path
        self._older = older_keys
        self._lock = threading.Lock()
        self._box, self._stamp = self._load()

    def seal(self, plaintext: bytes, context: str) -> str:
        if _stamp(self._path) != self._stamp:
            self._reload()
        return self._box.seal(plaintext, context)

    def open(self, sealed: str, context: str) -> bytes:
        box = self._box
        try:
            return box.open(sealed, context)
        except UnknownKeyError:
            if self._reload() is box:
                raise
        return self._box.open(sealed, context)

    def is_current(self, sealed: str) -> bool:
        return self._box.is_current(sealed)

    def _reload(self) -> AesGcmSecretBox:
        """Read the keys again; on a file that does not read (an edit half done), keep the
        keys held. The box in use afterwards."""
        with self._lock:
            try:
                self._box, self._stamp = self._load()
            except (OSError, ValueError):
                pass
            return self._box

    def _load(self) -> tuple[AesGcmSecretBox, tuple[int, int, int]]:
        # The staged file is read before the key file: a rotation renames the one onto the
        # other, so a new key missed in the first is found in the second.
        stamp = _stamp(self._path)
        try:
            staged = read_key_file(staged_key_file(self._path))
        except (OSError, ValueError):
            staged = []
        current, *older = read_key_file(self._path)
        return AesGcmSecretBox(current, *older, *staged, *self._older), stamp


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a key file is replaced or edited."""
    try:
        status = path.stat()
    except OSError:
        return (0, 0, 0)
    return (status.st_ino, status.st_mtime_ns, status.st_size)
