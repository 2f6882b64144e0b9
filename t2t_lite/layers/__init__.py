"""Keras layers of the Transformer; every layer round-trips through get_config/from_config."""

from t2t_lite.layers.attention import MultiHeadAttention
from t2t_lite.layers.decoder import Decoder, DecoderLayer
from t2t_lite.layers.dense import Dense
from t2t_lite.layers.dropout import Dropout
from t2t_lite.layers.embedding import TokenEmbedding
from t2t_lite.layers.encoder import Encoder, EncoderLayer
from t2t_lite.layers.feed_forward import FeedForward
from t2t_lite.layers.norm import LayerNormalization
from t2t_lite.layers.positional import SinusoidalPositionalEncoding

__all__ = [
    "Decoder",
    "DecoderLayer",
    "Dense",
    "Dropout",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "LayerNormalization",
    "MultiHeadAttention",
    "SinusoidalPositionalEncoding",
    "TokenEmbedding",
]
