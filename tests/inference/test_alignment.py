"""Alignments: scripted attention carried through the beam, Pharaoh pairs, the tiny model."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID
from t2t_lite.inference.alignment import alignment_pairs, format_alignment
from t2t_lite.inference.beam_search import beam_search
from tests.helpers import made_up_sentences
from tests.inference.test_beam_search import TREE, A, B, C, V, scripted


def attending_to_prev(step_fn):
    """Adds a one-hot attention row on source position `prev token`: [B*K, V]."""

    def step(ids, position, cache, memory):
        logits, cache = step_fn(ids, position, cache, memory)
        return logits, cache, tf.one_hot(ids, V)

    return step


def test_attention_follows_the_beams():
    # Beam 2 over TREE: A leads after one token, the path B C overtakes it at the second.
    out, attention = beam_search(
        attending_to_prev(scripted(TREE)), tf.fill([2], BOS_ID), {}, 2, EOS_ID,
        tf.constant([4, 2]), alpha=0.0, n_best=2, attention_size=V,
    )  # fmt: skip
    ids, attention, lengths = out.ids.numpy(), attention.numpy(), out.lengths.numpy()
    assert attention.shape[:3] == ids.shape and attention.shape[3] == V
    np.testing.assert_array_equal(ids[0, :, :3], [[B, C, EOS_ID], [A, C, EOS_ID]])
    pairs = [alignment_pairs(attention[0, n], lengths[0, n], V) for n in range(2)]
    assert pairs == [[(BOS_ID, 0), (B, 1)], [(BOS_ID, 0), (A, 1)]]
    # A ragged batch: sentence 1 stops at 2 tokens (A or B, then EOS forced).
    assert list(lengths[1]) == [2, 2]
    assert alignment_pairs(attention[1, 0], lengths[1, 0], V) == [(BOS_ID, 0)]
    assert not attention[1, :, 2:].any()  # rows after EOS are zero


def test_pairs_exclude_eos_and_padding():
    attention = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.0, 0.0, 1.0]])  # [L=3, S=3]
    # Two source pieces (column 2 is the source EOS): its weight never wins.
    assert alignment_pairs(attention, 3, 2) == [(1, 0), (0, 1)]
    assert format_alignment(alignment_pairs(attention, 3, 2)) == "1-0 0-1"
    assert alignment_pairs(attention, 1, 2) == [] and alignment_pairs(attention, 3, 0) == []


def test_translator_alignments_ragged_nbest_and_samples(translator):
    lines = [*made_up_sentences(5, seed=12), "", "ka"]
    plain = translator.translate_nbest(lines, beam_size=2, n_best=2)
    aligned = translator.translate_nbest(lines, beam_size=2, n_best=2, alignments=True)
    assert [[h.text for h in x] for x in aligned] == [[h.text for h in x] for x in plain]
    for line, hyps in zip(lines, aligned, strict=True):
        pieces = len(translator.source_vocab.encode([" ".join(line.split())])[0])
        for hyp in hyps:
            assert [j for _, j in hyp.alignment] == list(range(max(hyp.length - 1, 0)))
            assert all(0 <= i < pieces for i, _ in hyp.alignment)
    # A line aligns alike alone and in a batch of other lengths (padding is masked).
    alone = translator.translate_nbest(lines[:1], beam_size=2, n_best=2, alignments=True)
    assert [h.alignment for h in alone[0]] == [h.alignment for h in aligned[0]]
    samples = translator.translate_nbest(
        lines, beam_size=1, n_best=2, sampling_topk=0, seed=1, alignments=True
    )
    for hyps in samples:
        for hyp in hyps:
            assert [j for _, j in hyp.alignment] == list(range(max(hyp.length - 1, 0)))
