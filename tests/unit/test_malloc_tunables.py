"""adapters/malloc.py: the glibc settings that keep a worker's argon2id blocks in its heap."""

from __future__ import annotations

from securelogin.adapters.malloc import MIB, argon2_block_tunables, with_tunables


def test_blocks_of_the_default_parameters_are_kept_for_every_hash_a_worker_may_run() -> None:
    tunables = argon2_block_tunables(19 * 1024, blocks=2)  # R2.1's 19 MiB, two at once

    assert tunables == {
        "glibc.malloc.mmap_threshold": 20 * MIB,  # a block (and its header) stays below
        "glibc.malloc.trim_threshold": 3 * 20 * MIB,  # two blocks free at the top: kept
    }


def test_a_block_glibc_cannot_keep_out_of_mmap_gets_no_settings() -> None:
    assert argon2_block_tunables(40 * 1024, blocks=2) == {}
    assert argon2_block_tunables(19 * 1024, blocks=0) == {}


def test_an_operators_own_tunables_are_kept_and_ours_added_beside_them() -> None:
    ours = {"glibc.malloc.mmap_threshold": 1, "glibc.malloc.trim_threshold": 2}

    assert with_tunables("", ours) == (
        "glibc.malloc.mmap_threshold=1:glibc.malloc.trim_threshold=2"
    )
    assert with_tunables("glibc.malloc.trim_threshold=9:glibc.rtld.x=1", ours) == (
        "glibc.malloc.trim_threshold=9:glibc.rtld.x=1:glibc.malloc.mmap_threshold=1"
    )
    assert with_tunables("glibc.malloc.hugetlb=1", {}) == "glibc.malloc.hugetlb=1"
