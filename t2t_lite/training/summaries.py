"""TensorBoard summaries of a training run, in `logs/train` and `logs/valid`.

Scalars (TensorBoard tags): train `loss`, `learning_rate`, `grad_norm`, `tokens_per_sec`;
valid `loss`, `bleu`. Text: the resolved `config` (once) and `samples` (source, reference,
hypothesis). Image: `attention`, the last decoder layer's attention over the source for one
validation sentence, averaged over heads. The progress log line comes from
`t2t_lite.training.progress`.
"""

from __future__ import annotations

import os

import tensorflow as tf

from t2t_lite.constants import LOGS


def attention_image(attention: tf.Tensor) -> tf.Tensor:
    """Attention `[1, H, T, S]` -> head-averaged grey image `[1, T, S, 1]` in [0, 1]."""
    image = tf.reduce_mean(tf.cast(attention, tf.float32), axis=1)  # [1, H, T, S] -> [1, T, S]
    image = image / tf.maximum(tf.reduce_max(image), 1e-9)  # brightest cell = 1
    return image[..., tf.newaxis]  # [1, T, S] -> [1, T, S, 1]


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


class Summaries:
    """TensorBoard writers for one model directory (no-ops when `enabled` is False).

    Args:
        model_dir: the model directory; events go to `logs/train` and `logs/valid`.
        enabled: False on non-chief workers of a multi-worker run.
    """

    def __init__(self, model_dir: str, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            self._train = tf.summary.create_file_writer(os.path.join(model_dir, LOGS, "train"))
            self._valid = tf.summary.create_file_writer(os.path.join(model_dir, LOGS, "valid"))

    def config(self, step: int, yaml_text: str) -> None:
        """The resolved configuration as text, indented so TensorBoard shows it verbatim."""
        if not self.enabled:
            return
        body = "\n".join("    " + line for line in yaml_text.splitlines())
        with self._train.as_default():
            tf.summary.text("config", body, step=step)
        self._train.flush()

    def train(self, step: int, scalars: dict[str, float]) -> None:
        """Training scalars, e.g. `{"loss": 3.2, "learning_rate": 1e-4, ...}`."""
        if not self.enabled:
            return
        with self._train.as_default():
            for name, value in scalars.items():
                tf.summary.scalar(name, value, step=step)
        self._train.flush()

    def valid(
        self,
        step: int,
        scalars: dict[str, float],
        samples: list[tuple[str, str, str]],
        attention: tf.Tensor | None,
    ) -> None:
        """Validation scalars, sample translations and an attention heatmap.

        Args:
            step: the training step.
            scalars: e.g. `{"loss": 2.9, "bleu": 21.4}`.
            samples: `(source, reference, hypothesis)` triples.
            attention: `[1, H, T, S]` probabilities of one sentence, or None.
        """
        if not self.enabled:
            return
        with self._valid.as_default():
            for name, value in scalars.items():
                tf.summary.scalar(name, value, step=step)
            if samples:
                rows = ["| source | reference | hypothesis |", "| --- | --- | --- |"]
                rows += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in samples]
                tf.summary.text("samples", "\n".join(rows), step=step)
            if attention is not None:
                tf.summary.image("attention", attention_image(attention), step=step)
        self._valid.flush()

    def close(self) -> None:
        if self.enabled:
            self._train.close()
            self._valid.close()
