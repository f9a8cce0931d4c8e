"""Reads the published test vectors kept in tests/vectors/ (see docs/test-vectors.md).

A vector file is plain text: ``#`` starts a comment line, blank lines are skipped, and
every other line is one vector, its columns separated by whitespace.
"""

from __future__ import annotations

from pathlib import Path

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"


def load_vectors(name: str) -> list[list[str]]:
    """The vector lines of ``tests/vectors/<name>``, each split into its columns."""
    path = VECTORS_DIR / name
    rows: list[list[str]] = []
    for line in path.read_text(encoding="ascii").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            rows.append(stripped.split())
    if not rows:
        raise ValueError(f"{path} holds no vectors")
    return rows
