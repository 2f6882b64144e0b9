"""Ensembles: scripted models combined step by step, and the tiny model with itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID
from t2t_lite.inference.beam_search import beam_search
from t2t_lite.inference.ensemble import ensemble_step_fn, load_ensemble
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import ModelDirError
from tests.helpers import made_up_sentences, make_model_dir
from tests.inference.test_beam_search import TREE, A, B, C, D, V, scripted, table


class ScriptedModel:
    """What `ensemble_step_fn` needs of a model: `step_fn` reading scripted logit tables;
    its attention is a one-hot row on source position `prev + shift`."""

    def __init__(self, *tables: np.ndarray, shift: int = 0):
        self.tables = tables
        self.shift = shift

    def step_fn(self, source_ids, attention=False):
        step_fn = scripted(*self.tables)
        width = tf.shape(source_ids)[1]

        def step(ids, position, cache, memory):
            logits, cache = step_fn(ids, position, cache, memory)
            if attention:
                return logits, cache, tf.one_hot((ids + self.shift) % width, width)
            return logits, cache

        return step, {}, {}


def run(models, beam_size=1, attention=False, max_length=4):
    source = tf.zeros([1, V], tf.int32)  # [B=1, S=V]
    step, cache, memory = ensemble_step_fn(models, source, attention=attention)
    found = beam_search(
        step, tf.fill([1], BOS_ID), cache, beam_size, EOS_ID, tf.constant([max_length]),
        alpha=0.0, attention_size=V if attention else None, memory=memory,
    )  # fmt: skip
    return tf.nest.map_structure(lambda t: t.numpy(), found)


def test_a_model_with_itself_decodes_as_alone():
    alone = run([ScriptedModel(TREE)], beam_size=2)
    twice = run([ScriptedModel(TREE), ScriptedModel(TREE)], beam_size=2)
    np.testing.assert_array_equal(twice.ids, alone.ids)
    np.testing.assert_allclose(twice.log_probs, alone.log_probs, rtol=1e-6)


def test_log_of_the_mean_probability_picks_the_token():
    # First token: p1(A, B) = (.7, .3), p2(A, B, C) = (.01, .3, .69). The mean probability
    # (.355, .3, .345) picks A; the mean of the log-probabilities would pick B.
    first = table({BOS_ID: {A: 0.7, B: 0.3}}, default=-1e4)
    second = table({BOS_ID: {A: 0.01, B: 0.3, C: 0.69}}, default=-1e4)
    for logits in (first, second):
        logits[[A, B, C, D], EOS_ID] = 0.0
    out = run([ScriptedModel(first), ScriptedModel(second)])
    np.testing.assert_array_equal(out.ids[0, 0, :2], [A, EOS_ID])
    np.testing.assert_allclose(out.log_probs[0, 0], math.log(0.355), rtol=1e-4)


def test_attention_is_the_mean_of_the_models():
    _, attention = run(
        [ScriptedModel(TREE), ScriptedModel(TREE, shift=1)], beam_size=2, attention=True
    )
    expected = np.zeros([V])
    expected[[BOS_ID, BOS_ID + 1]] = 0.5
    np.testing.assert_allclose(attention[0, 0, 0], expected)


def test_translator_ensemble_of_the_model_with_itself(translator):
    lines = [*made_up_sentences(4, seed=11), ""]
    ensemble = Translator(
        translator.model, translator.source_vocab, translator.target_vocab,
        translator.decode, ensemble=[translator.model],
    )  # fmt: skip
    alone = translator.translate_nbest(lines, beam_size=2, n_best=2)
    together = ensemble.translate_nbest(lines, beam_size=2, n_best=2)
    assert [[h.text for h in x] for x in together] == [[h.text for h in x] for x in alone]
    scores = [[h.score for h in x] for x in together]
    np.testing.assert_allclose(scores, [[h.score for h in x] for x in alone], rtol=1e-4)


def test_another_vocabulary_is_refused(model_dir, tmp_path):
    other = make_model_dir(str(tmp_path), overrides=["vocab.size=90"])
    with pytest.raises(ModelDirError, match="another target vocabulary") as raised:
        load_ensemble(model_dir, "", [other])
    assert model_dir in str(raised.value) and other in str(raised.value)
    models, *_ = load_ensemble(model_dir, "", [model_dir])
    assert len(models) == 2
