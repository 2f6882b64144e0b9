"""Keras layers of the Transformer; every layer round-trips through get_config/from_config."""

from t2t_lite.layers.attention import AttentionOutput, MultiHeadAttention
from t2t_lite.layers.decoder import Decoder, DecoderLayer, DecoderOutput
from t2t_lite.layers.dense import Dense
from t2t_lite.layers.dropout import Dropout
from t2t_lite.layers.embedding import TokenEmbedding
from t2t_lite.layers.encoder import Encoder, EncoderLayer
from t2t_lite.layers.feed_forward import FeedForward
from t2t_lite.layers.norm import LayerNormalization
from t2t_lite.layers.positional import SinusoidalPositionalEncoding

__all__ = [
    "AttentionOutput",
    "Decoder",
    "DecoderLayer",
    "DecoderOutput",
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
