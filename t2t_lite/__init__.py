"""t2t_lite: a small, readable, fast TensorFlow 2 / Keras 3 toolkit for Transformer translation."""

from t2t_lite import masks
from t2t_lite.config import Config, ConfigError, load_config
from t2t_lite.layers import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
)
from t2t_lite.transformer import Transformer

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "MultiHeadAttention",
    "SinusoidalPositionalEncoding",
    "TokenEmbedding",
    "Transformer",
    "load_config",
    "masks",
]
