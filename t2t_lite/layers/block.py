"""What encoder and decoder layers and stacks share: hyperparameters, residuals, norms."""

from collections.abc import Callable

import keras
import tensorflow as tf

from t2t_lite.layers.dropout import Dropout
from t2t_lite.layers.norm import LayerNormalization
from t2t_lite.layers.positional import SinusoidalPositionalEncoding


def residual(
    x: tf.Tensor,
    sublayer: Callable[[tf.Tensor], tf.Tensor],
    norm: LayerNormalization,
    dropout: Dropout,
    pre_norm: bool,
    training: bool,
) -> tf.Tensor:
    """Pre-norm: `x + dropout(sublayer(norm(x)))`; post-norm: `norm(x + dropout(sublayer(x)))`."""
    if pre_norm:
        return x + dropout(sublayer(norm(x)), training=training)
    return norm(x + dropout(sublayer(x), training=training))


def layer_norm(name: str, dtype_policy) -> LayerNormalization:
    """The layer normalization used everywhere (epsilon 1e-6, as OpenNMT-tf)."""
    return LayerNormalization(epsilon=1e-6, name=name, dtype=dtype_policy)


class BlockLayer(keras.layers.Layer):
    """Base of encoder/decoder layers and stacks: stores and serializes their hyperparameters.

    Args:
        d_model: D.
        num_heads: H.
        d_ff: feed-forward inner width.
        dropout: dropout on each sublayer output before the residual sum (and, in stacks, on
            the embeddings).
        attention_dropout: dropout on attention probabilities.
        ffn_dropout: dropout after the feed-forward ReLU.
        norm: "pre" (normalize sublayer inputs; stacks end with a final norm) or "post"
            (normalize residual sums, as in Vaswani et al.).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        d_model,
        num_heads,
        d_ff,
        dropout=0.1,
        attention_dropout=0.1,
        ffn_dropout=0.1,
        norm="pre",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("pre", "post"):
            raise ValueError(f'norm must be "pre" or "post", got {norm!r}')
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.ffn_dropout = ffn_dropout
        self.norm = norm
        self.pre_norm = norm == "pre"
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def block_args(self) -> dict:
        """The constructor arguments shared by layers and stacks."""
        return dict(
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            ffn_dropout=self.ffn_dropout,
            norm=self.norm,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self.block_args())
        return config


class StackLayer(BlockLayer):
    """Base of the encoder and decoder stacks: `num_layers` blocks of `block_class`, a
    position encoding, embedding dropout, and a final norm when pre-norm.

    The blocks are attributes `layer_0`, `layer_1`, ... (not a list): tf.train.Checkpoint
    does not track lists of Keras 3 layers, and checkpoints must hold every weight.

    Args:
        num_layers: number of blocks.
        d_model, num_heads, d_ff, **kwargs: as in `BlockLayer`.
    """

    block_class: type[BlockLayer]

    def __init__(self, num_layers, d_model, num_heads, d_ff, **kwargs):
        super().__init__(d_model, num_heads, d_ff, **kwargs)
        self.num_layers = num_layers
        policy = self.dtype_policy
        self.position_encoding = SinusoidalPositionalEncoding(name="position", dtype=policy)
        for i in range(num_layers):
            block = self.block_class(**self.block_args(), name=f"layer_{i}", dtype=policy)
            setattr(self, f"layer_{i}", block)
        self.final_norm = layer_norm("final_norm", policy) if self.pre_norm else None

    @property
    def blocks(self) -> list:
        """The blocks of the stack, first to last."""
        return [getattr(self, f"layer_{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        for block in self.blocks:
            block.build([None, None, self.d_model])
        if self.final_norm is not None:
            self.final_norm.build([None, None, self.d_model])
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["num_layers"] = self.num_layers
        return config
