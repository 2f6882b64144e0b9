"""Scorer: the teacher-forced log-probability of a target equals the beam search's score."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import EOS_ID
from t2t_lite.data.text import normalize
from t2t_lite.inference.beam_search import length_penalty
from t2t_lite.inference.encoding import encode_lines
from t2t_lite.inference.scorer import Scorer
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model
from tests.helpers import AWKWARD, made_up_sentences
from tests.trained_model import make_trained_model_dir


@pytest.fixture(scope="module")
def scorer(translator):
    return Scorer(translator.model, translator.source_vocab, translator.target_vocab)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(translator, scorer)` of a trained tiny model."""
    path = str(tmp_path_factory.mktemp("trained"))
    make_trained_model_dir(path)
    model, cfg, src_vocab, tgt_vocab, _ = load_model(path)
    return Translator(model, src_vocab, tgt_vocab, cfg.decode), Scorer(model, src_vocab, tgt_vocab)


@pytest.mark.parametrize("beam_size,alpha,n_best", [(1, 0.0, 1), (3, 0.0, 3), (3, 0.6, 2)])
def test_score_of_search_output_is_its_log_prob(translator, scorer, beam_size, alpha, n_best):
    """Every hypothesis the search returns scores to its reported log-probability (and,
    divided by the length penalty, to its score)."""
    lines = made_up_sentences(12, seed=3)
    sources = translator.encode(lines, range(1, len(lines) + 1))
    width = max(map(len, sources))
    padded = np.zeros([len(sources), width], np.int32)
    for row, ids in enumerate(sources):
        padded[row, : len(ids)] = ids
    out = translator.search_fn(beam_size, alpha, n_best)(tf.constant(padded))
    ids, lengths = out.ids.numpy(), out.lengths.numpy()
    pairs = [
        (sources[b], ids[b, k, : lengths[b, k]].tolist())
        for b in range(len(sources))
        for k in range(n_best)
    ]
    assert all(target[-1] == EOS_ID for _, target in pairs)
    scored = scorer.score_ids([s for s, _ in pairs], [t for _, t in pairs], batch_tokens=64)
    totals = np.array([lp.sum() for lp in scored]).reshape([len(sources), n_best])
    np.testing.assert_allclose(totals, out.log_probs.numpy(), atol=1e-4)
    penalty = length_penalty(lengths, alpha if beam_size > 1 else 0.0).numpy()
    np.testing.assert_allclose(totals / penalty, out.scores.numpy(), atol=1e-4)


def test_greedy_translation_scores_as_reported(trained):
    """Text in, text out: the score of a greedy translation equals the greedy search's score
    (beam 1 has no length penalty) wherever the text re-tokenizes to the same pieces."""
    translator, scorer = trained
    lines = made_up_sentences(40, seed=7)
    hyps = [h[0] for h in translator.translate_nbest(lines, beam_size=1)]
    scores = scorer.score(lines, [h.text for h in hyps])
    same_pieces = [
        i
        for i, h in enumerate(hyps)
        if len(translator.target_vocab.encode([h.text])[0]) + 1 == h.length
    ]
    # This tiny model's output pieces are not always those SentencePiece would cut its text
    # into (35 of 40 lines re-tokenize alike on an Intel Xeon, 36 or more on an AMD EPYC);
    # enough must, for the check below to mean something.
    assert len(same_pieces) >= 0.5 * len(lines)
    for i in same_pieces:
        assert len(scores[i].token_log_probs) == hyps[i].length
        assert scores[i].log_prob == pytest.approx(hyps[i].score, abs=1e-4)
        assert scores[i].mean == pytest.approx(hyps[i].score / hyps[i].length, abs=1e-4)
        assert scores[i].tokens[-1] == "</s>"


def test_batching_and_order_do_not_change_scores(scorer):
    sources = made_up_sentences(20, seed=1)
    targets = made_up_sentences(20, seed=2)
    one = scorer.score(sources, targets, batch_tokens=10_000)
    small = scorer.score(sources, targets, batch_tokens=16)
    reversed_ = scorer.score(sources[::-1], targets[::-1], batch_tokens=40)[::-1]
    for a, b, c in zip(one, small, reversed_, strict=True):
        np.testing.assert_allclose(a.token_log_probs, b.token_log_probs, atol=1e-5)
        np.testing.assert_allclose(a.token_log_probs, c.token_log_probs, atol=1e-5)
    assert scorer.forward_fn().experimental_get_tracing_count() == 1  # shapes are dynamic


def test_empty_sides_are_scored_with_a_warning(scorer, caplog):
    caplog.set_level(logging.WARNING)
    scores = scorer.score(["a dog runs", "", "  ", "the cat"], ["", "ein hund", "", "die katze"])
    assert len(scores) == 4
    source = scorer.source_vocab.encode(["a dog runs"])[0] + [EOS_ID]
    (expected,) = scorer.score_ids([source], [[EOS_ID]])
    assert scores[0].token_log_probs == pytest.approx(expected.tolist(), abs=1e-6)
    assert scores[0].tokens == ["</s>"]
    target = scorer.target_vocab.encode(["ein hund"])[0] + [EOS_ID]
    (expected,) = scorer.score_ids([[EOS_ID]], [target])
    assert scores[1].token_log_probs == pytest.approx(expected.tolist(), abs=1e-6)
    assert all(np.isfinite(s.log_prob) and s.log_prob < 0 for s in scores)
    messages = caplog.text
    assert "line 1: empty target" in messages
    assert "line 2: empty source" in messages
    assert "line 3: empty target" in messages and "line 3: empty source" in messages
    with pytest.raises(ValueError, match="2 sources for 1 targets"):
        scorer.score(["a", "b"], ["a"])


def test_long_target_is_cut_with_a_warning(scorer, caplog):
    caplog.set_level(logging.WARNING)
    (score,) = scorer.score(["a dog"], ["big " * 300], first_line=7)
    assert len(score.token_log_probs) == scorer.model.max_length
    assert "target line 7 has" in caplog.text


def test_encode_lines_is_the_translators_rule(translator):
    texts = [normalize(line) for line in AWKWARD]
    numbers = list(range(1, len(texts) + 1))
    ids, truncated = encode_lines(
        translator.source_vocab, texts, numbers, translator.model.max_length - 1
    )
    assert truncated == 1
    assert [row + [EOS_ID] for row in ids] == translator.encode(texts, numbers)
