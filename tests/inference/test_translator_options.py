"""Translator with decoding options on the tiny model: prefixes, samples, repetition control."""

import pytest

from t2t_lite.inference.translator import Translator
from tests.helpers import made_up_sentences

LINES = [*made_up_sentences(5, seed=7), "", "  "]


def vocabulary_prefixes(translator, count):
    """Prefixes the target vocabulary spells without UNK: words of the made-up language."""
    prefixes = [" ".join(s.split()[:2]) for s in made_up_sentences(count, seed=8)]
    vocab = translator.target_vocab
    assert all(p and vocab.decode(vocab.encode([p])[0]) == p for p in prefixes)
    return prefixes


def test_plain_options_take_the_plain_search(translator):
    plain = translator.translate(LINES, beam_size=2)
    same = translator.translate(
        LINES, beam_size=2, repetition_penalty=1.0, no_repeat_ngram_size=0, sampling_topk=1
    )
    assert same == plain
    assert {key[3:] for key in translator._searches} == {(None, None, False)}


def test_trim_searches_forgets_them_past_the_limit(translator):
    fresh = Translator(translator.model, translator.source_vocab, translator.target_vocab)
    searches = [fresh.search_fn(beam, 0.6, 1) for beam in (1, 2, 3)]  # traced on first call
    assert fresh.search_fn(2, 0.6, 1) is searches[1]
    fresh.trim_searches(3)
    assert fresh.search_fn(3, 0.6, 1) is searches[2]
    fresh.trim_searches(2)
    assert fresh.search_fn(3, 0.6, 1) is not searches[2]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_outputs_start_with_their_prefixes(translator, beam_size):
    prefixes = vocabulary_prefixes(translator, len(LINES))
    prefixes[1] = ""  # no prefix for this line
    outputs = translator.translate(LINES, beam_size=beam_size, target_prefixes=prefixes)
    assert len(outputs) == len(LINES)
    for line, prefix, output in zip(LINES, prefixes, outputs, strict=True):
        if line.strip():
            assert output.startswith(prefix), (prefix, output)
        else:
            assert output == ""
    plain = translator.translate(LINES, beam_size=beam_size)
    assert outputs[1] == plain[1]


def test_n_samples_per_line_in_order_and_reproducible(translator):
    kwargs = dict(beam_size=1, n_best=3, sampling_topk=0, seed=5)
    first = translator.translate_nbest(LINES, **kwargs)
    assert [len(h) for h in first] == [3] * len(LINES)
    for hyps in first[:5]:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    # Other batching, same samples: a line's random stream is keyed by its line number.
    again = translator.translate_nbest(LINES, batch_tokens=8, **kwargs)
    assert [[h.text for h in hyps] for hyps in again] == [[h.text for h in hyps] for hyps in first]
    other = translator.translate_nbest(LINES, **{**kwargs, "seed": 6})
    assert [h[0].text for h in other] != [h[0].text for h in first]


def test_bad_options_raise(translator):
    with pytest.raises(ValueError, match="beam_size=1"):
        translator.translate(LINES, beam_size=2, sampling_topk=0)
    with pytest.raises(ValueError, match="sampling_topp"):
        translator.translate(LINES, beam_size=1, sampling_topk=0, sampling_topp=2.0)
    with pytest.raises(ValueError, match="one per line"):
        translator.translate(LINES, target_prefixes=["a"])
