"""The update `TrainState.train_step` makes: gradient accumulation and label smoothing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import PAD_ID
from t2t_lite.data import TokenPairs, make_eval_dataset
from t2t_lite.training.train_state import TrainState
from t2t_lite.vocab import build_vocabularies
from tests.helpers import made_up_sentences
from tests.train_helpers import copy_task_config

# Attention key biases have an exactly-zero true gradient, so theirs is rounding noise that
# depends on the summation order; with epsilon=1e-9 Adam turns that noise into +-lr steps. A
# larger epsilon keeps it at noise level (as in test_distributed).
EPSILON = "train.adam_epsilon=1.0e-6"


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vocab")
    texts = made_up_sentences(200)
    src_vocab, _ = build_vocabularies(copy_task_config(tmp), str(tmp / "model"), texts, texts)
    return src_vocab


def one_batch(vocab, sentences: list[str]) -> dict[str, tf.Tensor]:
    """`sentences` (copied) as one padded batch, in their order."""
    ids = vocab.encode(sentences)
    (batch,) = list(make_eval_dataset(TokenPairs.from_lists(ids, ids), batch_tokens=100_000))
    return batch


def new_state(cfg, vocab) -> TrainState:
    """A state with the same initial weights as every other, its step traced once."""
    keras.utils.set_random_seed(7)
    state = TrainState(cfg, vocab, vocab, tf.distribute.get_strategy())
    names = ("source", "target_in", "target_out")
    state.trace_train_step({name: tf.TensorSpec([None, None], tf.int32) for name in names})
    return state


def test_accumulated_batches_update_like_one_batch_of_both(tmp_path, vocab):
    texts = made_up_sentences(40, seed=3)
    # Halves of different sizes and lengths: the loss weights differ.
    halves = [(texts[0:6], texts[6:16]), (texts[16:30], texts[30:40])]
    accumulating = new_state(copy_task_config(tmp_path, EPSILON, "train.accumulate_steps=2"), vocab)
    single = new_state(copy_task_config(tmp_path, EPSILON), vocab)
    for first, second in halves:
        split = accumulating.train_step([one_batch(vocab, first), one_batch(vocab, second)])
        joined = single.train_step([one_batch(vocab, first + second)])
        assert split.target_tokens == joined.target_tokens
        assert split.tokens == joined.tokens
        np.testing.assert_allclose(split.loss, joined.loss, rtol=1e-5)
        np.testing.assert_allclose(split.grad_norm, joined.grad_norm, rtol=1e-4)
    for a, b in zip(
        accumulating.model.trainable_variables, single.model.trainable_variables, strict=True
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)


def smoothed_loss(logits: np.ndarray, labels: np.ndarray, epsilon: float) -> float:
    """Mean over non-padding labels of the cross-entropy with a target of `1 - epsilon` on the
    label and `epsilon / (V - 1)` on each other class."""
    logits = logits.astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # [B, T, V]
    label_log_prob = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]  # [B, T]
    others = log_probs.sum(-1) - label_log_prob
    per_token = -(1 - epsilon) * label_log_prob - epsilon / (logits.shape[-1] - 1) * others
    mask = labels != PAD_ID
    return float(per_token[mask].mean())


def test_label_smoothing_reaches_the_training_loss(tmp_path, vocab):
    batch = one_batch(vocab, made_up_sentences(12, seed=4))
    labels = batch["target_out"].numpy()
    losses = {}
    for epsilon in (0.0, 0.1):
        state = new_state(copy_task_config(tmp_path, f"train.label_smoothing={epsilon}"), vocab)
        logits = state.model((batch["source"], batch["target_in"])).numpy()  # [B, T, V]
        losses[epsilon] = state.train_step([batch]).loss  # at the weights before the update
        np.testing.assert_allclose(
            losses[epsilon], smoothed_loss(logits, labels, epsilon), rtol=1e-5
        )
    # Same initial weights: the two losses differ exactly as the smoothed targets predict.
    expected = smoothed_loss(logits, labels, 0.1) - smoothed_loss(logits, labels, 0.0)
    assert abs(expected) > 1e-3  # near-uniform initial predictions: small, but far above noise
    np.testing.assert_allclose(losses[0.1] - losses[0.0], expected, rtol=1e-2)
