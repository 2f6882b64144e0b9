"""Translator: cached decoding, one result per line in order, n-best, batching."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID
from t2t_lite.data.batching import length_batches
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model
from tests.helpers import AWKWARD, made_up_sentences, make_model_dir


def uncached_greedy(model, source_ids, max_len):
    """Greedy decoding that re-runs the full decoder on the whole prefix at every step."""
    ids = tf.fill([source_ids.shape[0], 1], BOS_ID)
    for _ in range(max_len):
        logits = model((source_ids, ids))[:, -1]  # [B, V]
        ids = tf.concat([ids, tf.argmax(logits, -1, output_type=tf.int32)[:, None]], 1)
    return ids[:, 1:].numpy()


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_cached_and_uncached_decoding_agree(tmp_path, norm):
    model, cfg, src_vocab, tgt_vocab, _ = load_model(make_model_dir(str(tmp_path), norm))
    lines = made_up_sentences(6, seed=3)
    translator = Translator(model, src_vocab, tgt_vocab, cfg.decode)
    encoded = translator.encode(lines, range(1, 7))
    source = np.zeros([6, max(map(len, encoded))], np.int32)
    for i, e in enumerate(encoded):
        source[i, : len(e)] = e
    out = translator.search_fn(1, 0.0, 1)(tf.constant(source))
    reference = uncached_greedy(model, tf.constant(source), out.ids.shape[2])
    for row in range(6):
        n = int(out.lengths[row, 0])
        expected = list(reference[row])
        if EOS_ID in expected:
            expected = expected[: expected.index(EOS_ID) + 1]
        got = list(out.ids[row, 0, :n].numpy())
        assert got[:-1] == expected[: n - 1]
        # The last token is the model's choice, or EOS forced at the length limit.
        limit = np.ceil(cfg.decode.max_length_a * len(encoded[row])) + cfg.decode.max_length_b
        assert got[-1] == expected[n - 1] or (got[-1] == EOS_ID and n == limit)


def test_translate_keeps_one_result_per_line_in_order(translator):
    out = translator.translate(AWKWARD, beam_size=2)
    assert len(out) == len(AWKWARD)
    assert out[1] == "" and out[2] == ""
    # Different lines give different outputs, so a line's result in another place shows.
    assert len(set(out)) >= len(out) - 2, out
    assert translator.stats.truncated >= 1
    # Each line translated alone gives the same result as inside the batch.
    for line, batched in zip(AWKWARD, out, strict=True):
        assert translator.translate([line], beam_size=2) == [batched]


def test_parallel_batches_give_the_same_results_in_order(translator):
    lines = made_up_sentences(30, 3) + [""]
    one = translator.translate_nbest(lines, beam_size=2, n_best=2, batch_tokens=40)
    translator.reset_stats()
    three = translator.translate_nbest(
        lines, beam_size=2, n_best=2, batch_tokens=40, parallel_batches=3
    )
    assert len({hyps[0].text for hyps in one}) >= 0.8 * len(lines)  # order is visible
    # 3 at a time cuts the lines into other batches (a multiple of 3): the same hypotheses,
    # scores equal up to the rounding of differently shaped batches.
    assert [[(h.text, h.length) for h in hyps] for hyps in three] == [
        [(h.text, h.length) for h in hyps] for hyps in one
    ]
    scores = [h.score for hyps in one for h in hyps]
    assert [h.score for hyps in three for h in hyps] == pytest.approx(scores, rel=1e-5)
    assert translator.stats.sentences == len(lines) and translator.stats.target_tokens > 0


def test_nbest_sorted_and_distinct(translator):
    results = translator.translate_nbest(made_up_sentences(4, 9), beam_size=4, n_best=3)
    for hyps in results:
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and len(hyps) == 3
        assert len({h.text for h in hyps}) == 3, hyps  # pairwise different hypotheses
    with pytest.raises(ValueError, match="n_best"):
        translator.translate_nbest(["a"], beam_size=2, n_best=3)


def test_length_batches_respect_budget_and_cover_everything():
    lengths = [5, 1, 30, 7, 7, 2, 100, 3]
    batches = length_batches(list(range(8)), lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 32
    capped = length_batches(list(range(8)), lengths, 1000, max_batch_size=3)
    assert [len(b) for b in capped] == [3, 3, 2]


def test_length_batches_fill_the_last_round_of_parallel_batches():
    # 50 sentences of 10 pieces, 200 tokens: 20 + 20 + 10, so with 2 batches at a time one
    # thread would decode the last 10 alone; balanced, 4 batches of 13, 13, 13 and 11.
    lengths = [10] * 50
    assert [len(b) for b in length_batches(list(range(50)), lengths, 200)] == [20, 20, 10]
    balanced = length_batches(list(range(50)), lengths, 200, parallel=2)
    assert [len(b) for b in balanced] == [13, 13, 13, 11]
    assert sorted(i for b in balanced for i in b) == list(range(50))
    # Mixed lengths: a multiple of 3 batches, each within the budget, longest first.
    lengths = [3 + (i * 7) % 29 for i in range(100)]
    for parallel in (2, 3):
        batches = length_batches(list(range(100)), lengths, 256, parallel=parallel)
        assert len(batches) % parallel == 0
        assert sorted(i for b in batches for i in b) == list(range(100))
        widths = [max(lengths[i] for i in b) for b in batches]
        assert widths == sorted(widths, reverse=True)
        assert all(len(b) * w <= 256 for b, w in zip(batches, widths, strict=True))
    # A count that is a multiple already, or fewer sentences than batches at a time: as cut.
    assert length_batches(list(range(40)), [10] * 40, 200, parallel=2) == length_batches(
        list(range(40)), [10] * 40, 200
    )
    assert length_batches([0], [10], 200, parallel=2) == [[0]]
