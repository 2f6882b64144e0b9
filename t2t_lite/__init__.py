"""t2t_lite: a small, readable, fast TensorFlow 2 / Keras 3 toolkit for Transformer translation."""

from t2t_lite.config import Config, ConfigError, load_config
from t2t_lite.inference.beam_search import BeamSearchOutput, beam_search, greedy_search
from t2t_lite.inference.scorer import Scorer
from t2t_lite.inference.translator import Translator
from t2t_lite.layers import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    masks,
)
from t2t_lite.model_dir import load_model
from t2t_lite.training.losses import cross_entropy
from t2t_lite.training.schedules import TransformerSchedule, WarmupStepSchedule
from t2t_lite.training.trainer import train
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary, build_vocabularies, load_vocabularies

__version__ = "0.1.0"

__all__ = [
    "BeamSearchOutput",
    "Config",
    "ConfigError",
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "MultiHeadAttention",
    "Scorer",
    "SinusoidalPositionalEncoding",
    "TokenEmbedding",
    "Transformer",
    "TransformerSchedule",
    "Translator",
    "Vocabulary",
    "WarmupStepSchedule",
    "beam_search",
    "build_vocabularies",
    "cross_entropy",
    "greedy_search",
    "load_config",
    "load_model",
    "load_vocabularies",
    "masks",
    "train",
]
