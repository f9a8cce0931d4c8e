"""Security code cards (R5 `code_card`, R7 online card): values, challenges, responses.

A card is a grid of 100 index numbers (1 to 100), each with a 3-character value from the
alphabet of R6.2. At login the system shows two different index numbers; the user types
the two values together, no spaces (6 characters).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

CARD_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # R6.2: no 0/O, 1/I, to avoid misreading
CARD_SIZE = 100  # R7.1: index numbers 1 to 100
VALUE_LENGTH = 3  # R5: "3-character values"
RESPONSE_LENGTH = 2 * VALUE_LENGTH

CardValues = Mapping[int, str]


def make_card_values(below: Callable[[int], int]) -> dict[int, str]:
    """A new card: ``below(n)`` is the caller's CSPRNG, uniform in ``range(n)``."""
    return {
        index: "".join(CARD_ALPHABET[below(len(CARD_ALPHABET))] for _ in range(VALUE_LENGTH))
        for index in range(1, CARD_SIZE + 1)
    }


def pick_indices(below: Callable[[int], int]) -> tuple[int, int]:
    """Two different index numbers, uniformly, in the order they are asked."""
    first = below(CARD_SIZE) + 1
    second = below(CARD_SIZE - 1) + 1
    if second >= first:
        second += 1
    return first, second


def expected_response(values: CardValues, indices: tuple[int, int]) -> str:
    return values[indices[0]] + values[indices[1]]


def is_right_response(values: CardValues, indices: tuple[int, int], response: str) -> bool:
    """Constant-time comparison of a well-formed response with the card's values."""
    expected = expected_response(values, indices)
    return hmac.compare_digest(expected.encode("ascii"), response.encode("ascii"))
