"""Source-target piece alignments from the model's alignment attention, in Pharaoh format.

Each target piece j (EOS excluded) is aligned to the source piece i it attends to most
(`argmax` over the source pieces, the source EOS and padding excluded), as OpenNMT and
CTranslate2 derive hard alignments from attention. `i-j` pairs are 0-based piece indices,
listed by target piece, space separated (the format fast_align prints).
"""

from __future__ import annotations

import numpy as np

__all__ = ["alignment_pairs", "format_alignment"]


def alignment_pairs(
    attention: np.ndarray, target_length: int, source_pieces: int
) -> list[tuple[int, int]]:
    """`(i, j)` pairs of one hypothesis.

    Args:
        attention: `[L, S]` attention rows of the hypothesis' tokens (row j: target piece j).
        target_length: tokens of the hypothesis, EOS included (its row is dropped).
        source_pieces: source pieces, EOS and padding excluded (the first columns).

    Returns:
        One `(source_index, target_index)` per target piece, by target piece; empty when
        either side has no piece.
    """
    pieces = max(target_length - 1, 0)
    if pieces == 0 or source_pieces == 0:
        return []
    best = np.argmax(attention[:pieces, :source_pieces], axis=1)  # [pieces]
    return [(int(i), j) for j, i in enumerate(best)]


def format_alignment(pairs: list[tuple[int, int]]) -> str:
    """Pharaoh format: `"0-0 2-1 1-2"`."""
    return " ".join(f"{i}-{j}" for i, j in pairs)
