"""adapters/argon2_blocks.py: verifies in blocks the server chooses give exactly argon2-cffi's
answers, run only in the block given, leave it wiped, and never share a block between two
hashes at once, across threads and processes."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import hash_secret_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from securelogin.adapters import argon2_blocks
from securelogin.adapters.argon2_blocks import (
    Block,
    SlotBlocks,
    block_size,
    hash_in,
    parse,
    verify_in,
)
from securelogin.adapters.hash_slots import (
    MachineSlots,
    on_memory_filesystem,
    private_slots_directory,
)
from securelogin.adapters.hashing import Argon2Hasher

SHM = Path("/dev/shm")


def _reference(
    memory_kib: int = 256, time_cost: int = 1, parallelism: int = 1, **kw: int
) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=kw.get("hash_len", 32),
        salt_len=kw.get("salt_len", 16),
        type=Type.ID,
    )


def _agrees(reference: PasswordHasher, stored: str, password: str) -> bool:
    """argon2-cffi's own answer: a refusal of any kind is a no."""
    try:
        return reference.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _encodable(text: str) -> bool:
    """Lone surrogates have no UTF-8: the web layer refuses them before any hash."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture
def memory_folder() -> Iterator[Path]:
    if not on_memory_filesystem(SHM):
        assert not os.environ.get("CI"), "CI's machines have a tmpfs at /dev/shm"
        pytest.skip("no /dev/shm tmpfs on this machine")
    folder = SHM / f"securelogin-test-{os.getpid()}-{threading.get_ident()}"
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


@settings(max_examples=60, deadline=None)
@given(
    password=st.text(min_size=0, max_size=40),
    other=st.text(min_size=0, max_size=40),
    memory_kib=st.sampled_from([64, 100, 256, 1024]),
    time_cost=st.integers(1, 3),
    parallelism=st.integers(1, 4),
    hash_len=st.sampled_from([16, 32, 64]),
    salt_len=st.sampled_from([8, 16, 32]),
)
def test_a_verify_in_a_block_answers_as_argon2_cffi_does(
    password: str,
    other: str,
    memory_kib: int,
    time_cost: int,
    parallelism: int,
    hash_len: int,
    salt_len: int,
) -> None:
    if not (_encodable(password) and _encodable(other)):
        return
    reference = _reference(memory_kib, time_cost, parallelism, hash_len=hash_len, salt_len=salt_len)
    stored = reference.hash(password)
    encoded = parse(stored)
    assert encoded is not None  # argon2-cffi's own encoding is the canonical one
    block = Block.private(block_size(memory_kib, parallelism))
    assert verify_in(block, encoded, password.encode()) is True
    assert verify_in(block, encoded, other.encode()) is _agrees(reference, stored, other)
    # A hash it did not make: one bit of the tag or of the salt changed.
    for field in ("tag", "salt"):
        changed = bytearray(getattr(encoded, field))
        changed[0] ^= 1
        mended = argon2_blocks.Encoded(**{**encoded.__dict__, field: bytes(changed)})
        assert verify_in(block, mended, password.encode()) is False


def test_the_block_is_the_only_memory_and_is_wiped_after() -> None:
    reference = _reference(256)
    encoded = parse(reference.hash("Correct4horse"))
    assert encoded is not None
    size = block_size(256, 1)
    assert size == 256 * 1024
    block = Block.private(size)
    assert verify_in(block, encoded, b"Correct4horse") is True
    assert bytes(block._mapping) == bytes(size)  # libargon2 wiped it at the end
    # libargon2 gets no memory but the block given: the wrong size refuses the hash.
    assert verify_in(Block.private(size - 1024), encoded, b"Correct4horse") is None
    assert verify_in(Block.private(size + 1024), encoded, b"Correct4horse") is None


def test_only_the_canonical_argon2id_encoding_takes_the_block_path() -> None:
    reference = _reference(256)
    stored = reference.hash("Correct4horse")
    head, salt, tag = stored.rsplit("$", 2)
    assert parse(stored) is not None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # A 32-byte tag leaves 2 unused bits in its last character, 0 in the canonical form.
    stray = alphabet[alphabet.index(tag[-1]) | 1]
    refused = [
        stored.replace("argon2id", "argon2i"),
        stored.replace("$v=19", "$v=16"),
        stored.replace("$v=19", ""),
        f"{head}${salt}==${tag}",
        f"{head}${salt}${tag[:-1]}{stray}",
        stored.replace("m=256", "m=0256"),
        stored.replace("$argon2id", "$argon2ID"),
        stored + " ",
        "",
        "$argon2id$",
    ]
    hasher = Argon2Hasher(memory_kib=256, time_cost=1, parallelism=1, concurrency=1)
    for text in refused:
        assert parse(text) is None, text
        # Refused here, argon2-cffi decides, as before: the hasher's answer is its answer.
        assert hasher.verify(text, "Correct4horse") is _agrees(reference, text, "Correct4horse")


def test_hashes_of_other_parameters_are_verified_by_argon2_cffi() -> None:
    hasher = Argon2Hasher(memory_kib=256, time_cost=1, parallelism=1, concurrency=1)
    older = _reference(128, 2).hash("Correct4horse")  # e.g. before the parameters changed
    assert hasher.verify(older, "Correct4horse") is True
    assert hasher.verify(older, "Correct4horsf") is False
    assert hasher.needs_rehash(older)


def test_block_size_is_what_libargon2_asks_for() -> None:
    assert block_size(19456, 1) == 19456 * 1024
    assert block_size(100, 3) == 96 * 1024  # whole segments: 4 per lane
    assert block_size(8, 2) == 16 * 1024  # at least 8 blocks per lane


def test_slot_blocks_live_beside_slots_on_a_memory_filesystem_only(
    tmp_path: Path, memory_folder: Path
) -> None:
    size = block_size(256, 1)
    blocks = SlotBlocks.beside(memory_folder, 2, size)
    assert blocks is not None
    block = blocks.block(1)
    assert block is not None and blocks.block(1) is block  # mapped once per process
    path = memory_folder / "block-1-256k"
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == size
    assert info.st_blocks * 512 >= size  # every page reserved up front
    if not on_memory_filesystem(tmp_path):
        assert SlotBlocks.beside(tmp_path, 2, size) is None  # on a disk: never


def test_a_slot_whose_block_cannot_be_reserved_uses_a_private_one(
    memory_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(descriptor: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    blocks = SlotBlocks.beside(memory_folder, 1, block_size(256, 1))
    assert blocks is not None and blocks.block(0) is None
    slots = MachineSlots(memory_folder, 1)
    hasher = Argon2Hasher(
        memory_kib=256,
        time_cost=1,
        parallelism=1,
        concurrency=1,
        machine_slots=slots,
        slot_blocks=blocks,
    )
    stored = hasher.hash("Correct4horse")
    assert hasher.verify(stored, "Correct4horse") and not hasher.verify(stored, "x")


def test_a_planted_block_file_is_refused(memory_folder: Path) -> None:
    size = block_size(256, 1)
    (memory_folder / "block-0-256k").write_bytes(b"")
    os.chmod(memory_folder / "block-0-256k", 0o644)
    with pytest.raises(PermissionError):
        SlotBlocks(memory_folder, 1, size)


def test_memory_filesystems_are_told_by_the_deepest_mount(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "23 22 0:5 / /dev/shm rw shared:2 - tmpfs tmpfs rw\n"
        "24 23 8:2 / /dev/shm/disk rw - ext4 /dev/vdb rw\n"
        "25 22 0:6 / /my\\040tmp rw - tmpfs tmpfs rw\n"
        "26 22 8:3 / /over rw - tmpfs tmpfs rw\n"
        "27 22 8:3 / /over rw - xfs /dev/vdc rw\n"  # mounted over the tmpfs
    )
    memory = {
        "/dev/shm/x": True,
        "/dev/shm": True,
        "/dev/shmx": False,
        "/dev/shm/disk/x": False,
        "/my tmp/y": True,
        "/over/z": False,
        "/var/x": False,
    }
    for path, expected in memory.items():
        assert on_memory_filesystem(Path(path), mountinfo) is expected, path
    assert on_memory_filesystem(Path("/x"), tmp_path / "missing") is False


def test_the_slots_folder_is_in_shared_memory_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("securelogin.adapters.hash_slots.SHARED_MEMORY", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("securelogin.adapters.hash_slots.on_memory_filesystem", lambda path: True)
    assert private_slots_directory().parent.parent == tmp_path / "shm"
    monkeypatch.setattr("securelogin.adapters.hash_slots.on_memory_filesystem", lambda path: False)
    assert private_slots_directory().parent.parent == tmp_path / "tmp"


def _hash_in_slots(folder: str, stored: str, rounds: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    directory = Path(folder)
    size = block_size(256, 1)
    hasher = Argon2Hasher(
        memory_kib=256,
        time_cost=1,
        parallelism=1,
        concurrency=4,
        machine_slots=MachineSlots(directory, 2),
        slot_blocks=SlotBlocks.beside(directory, 2, size),
    )
    wrong = 0

    def work(index: int) -> None:
        nonlocal wrong
        for round_ in range(rounds):
            right = (index + round_) % 2 == 0
            if hasher.verify(stored, "Correct4horse" if right else "Correct4horsf") is not right:
                wrong += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(wrong)


def test_two_processes_share_the_slots_blocks_and_never_a_block_at_once(
    memory_folder: Path,
) -> None:
    # Two hashes in one block at once would mix their memory and give wrong answers.
    stored = _reference(256).hash("Correct4horse")
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    workers = [
        context.Process(target=_hash_in_slots, args=(str(memory_folder), stored, 150, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    wrong = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    assert wrong == [0, 0]
    assert sorted(p.name for p in memory_folder.glob("block-*")) == ["block-0-256k", "block-1-256k"]
    for path in memory_folder.glob("block-*"):
        assert path.read_bytes() == bytes(path.stat().st_size)  # wiped after the last hash


@settings(max_examples=40, deadline=None)
@given(
    password=st.text(max_size=40).filter(_encodable),
    memory_kib=st.sampled_from([64, 100, 256]),
    time_cost=st.integers(1, 3),
    parallelism=st.integers(1, 3),
    salt=st.binary(min_size=16, max_size=16),
)
def test_a_hash_made_in_a_block_is_argon2_cffis_own(
    password: str, memory_kib: int, time_cost: int, parallelism: int, salt: bytes
) -> None:
    block = Block.private(block_size(memory_kib, parallelism))
    made = hash_in(block, (memory_kib, time_cost, parallelism), password.encode(), salt)
    assert made is not None
    tag = hash_secret_raw(password.encode(), salt, time_cost, memory_kib, parallelism, 32, Type.ID)
    reference = _reference(memory_kib, time_cost, parallelism)
    assert reference.verify(made, password)  # argon2-cffi reads and accepts it
    assert parse(made) == argon2_blocks.Encoded(memory_kib, time_cost, parallelism, salt, tag)
    assert not reference.check_needs_rehash(made)  # its own encoding, its own parameters
    assert bytes(block._mapping) == bytes(block.size)  # wiped after the hash


def test_the_hasher_makes_and_checks_its_hashes_in_blocks() -> None:
    hasher = Argon2Hasher(memory_kib=256, time_cost=1, parallelism=1, concurrency=1)
    stored = hasher.hash("Correct4horse")
    assert stored.startswith("$argon2id$v=19$m=256,t=1,p=1$")
    assert stored != hasher.hash("Correct4horse")  # a new salt each time
    assert hasher.verify(stored, "Correct4horse") and not hasher.verify(stored, "Correct4horsf")
    assert not hasher.needs_rehash(stored)
