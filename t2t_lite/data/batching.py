"""Cutting examples into batches by a token budget: `B * longest <= batch_tokens`.

The one rule behind the training and evaluation pipelines (`t2t_lite.data.pipeline`) and the
translator's batches (`t2t_lite.inference.translator`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def greedy_batch_bounds(
    lengths: Sequence[int] | np.ndarray, batch_tokens: int, max_batch_size: int = 0
) -> list[tuple[int, int]]:
    """Splits examples, in order, into `[start, end)` runs that fit the token budget.

    A run grows while `run_size * longest_length <= batch_tokens` (and, if `max_batch_size`
    > 0, while it has fewer than `max_batch_size` examples); an example longer than the
    budget gets a batch of its own.
    """
    bounds, start, longest = [], 0, 0
    for i, length in enumerate(np.asarray(lengths).tolist()):
        longest = max(longest, length)
        full = max_batch_size and i - start >= max_batch_size
        if i > start and (full or (i - start + 1) * longest > batch_tokens):
            bounds.append((start, i))
            start, longest = i, length
    if len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


def length_batches(
    indices: Sequence[int],
    lengths: Sequence[int],
    batch_tokens: int,
    max_batch_size: int = 0,
    parallel: int = 1,
) -> list[list[int]]:
    """Groups `indices` by similar length so each batch's padded size fits `batch_tokens`.

    Sentences are sorted by length (longest first, so the first batch shows the worst case;
    equal lengths keep their order) and cut by `greedy_batch_bounds`. When `parallel`
    batches run side by side, a count that is not a multiple of `parallel` leaves threads
    idle while the last ones finish: the sentences are then cut again into the next multiple
    of `parallel` batches of even sizes, with the budget `smallest_budget` finds.
    """
    order = sorted(range(len(indices)), key=lambda j: -lengths[j])
    sorted_lengths = [lengths[j] for j in order]
    bounds = greedy_batch_bounds(sorted_lengths, batch_tokens, max_batch_size)
    target = -(-len(bounds) // parallel) * parallel
    if len(bounds) < target <= len(sorted_lengths):
        budget = smallest_budget(sorted_lengths, target, batch_tokens, max_batch_size)
        bounds = greedy_batch_bounds(sorted_lengths, budget, max_batch_size)
    return [[indices[j] for j in order[start:end]] for start, end in bounds]


def smallest_budget(
    sorted_lengths: Sequence[int], batches: int, batch_tokens: int, max_batch_size: int
) -> int:
    """The smallest budget whose `greedy_batch_bounds` cut makes at most `batches` batches,
    found by bisection below `batch_tokens` (whose cut must make no more): the cut that
    spreads the tokens most evenly over that many batches, its largest as small as it can
    be."""
    low, high = 0, batch_tokens  # too small, small enough
    while high - low > 1:
        middle = (low + high) // 2
        if len(greedy_batch_bounds(sorted_lengths, middle, max_batch_size)) <= batches:
            high = middle
        else:
            low = middle
    return high
