"""Text lines to piece ids for a model with a length limit: one rule for every consumer.

The translator's rule (`Translator.encode`): a line longer than the model takes is cut to
its first pieces, with a warning that names the line. The scorer (`t2t_lite.inference.scorer`)
applies it to both sides, the CTranslate2 engine (`t2t_lite.export.ct2_translator`) to
its sources.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import logging

from t2t_lite.vocab import Vocabulary


def encode_lines(
    vocab: Vocabulary,
    texts: Sequence[str],
    line_numbers: Sequence[int],
    max_pieces: int,
    side: str = "input",
) -> tuple[list[list[int]], int]:
    """Piece ids of each text (no BOS/EOS), cut to `max_pieces` with a warning.

    Args:
        vocab: the vocabulary of this side.
        texts: normalized lines (`t2t_lite.data.text.normalize`).
        line_numbers: the input line number of each text, for the warning.
        max_pieces: the most pieces kept (the model's `max_length` less any EOS the caller
            appends).
        side: how the warning names the line ("input", "source", "target").

    Returns:
        `(ids, truncated)`: one list of ids per text, and how many were cut.
    """
    encoded = vocab.encode(texts)
    truncated = 0
    for number, ids in zip(line_numbers, encoded, strict=True):
        if len(ids) > max_pieces:
            logging.warning(
                "%s line %d has %d pieces; the model takes at most %d: truncated",
                side,
                number,
                len(ids),
                max_pieces,
            )
            truncated += 1
            del ids[max_pieces:]
    return encoded, truncated
