"""Training data: sources (text files, TFDS), tokenization with a cache, tf.data pipelines.

Example:
    >>> check_sources(cfg.data)                      # fails fast on a missing file
    >>> src, tgt = load_pairs(cfg.data, "train")
    >>> src_vocab, tgt_vocab = build_vocabularies(cfg, model_dir, src, tgt)
    >>> train = train_dataset(cfg, src_vocab, tgt_vocab, f"{model_dir}/data_cache")
    >>> vsrc, vtgt = load_pairs(cfg.data, "valid")
    >>> valid = eval_dataset(src_vocab.encode(vsrc), tgt_vocab.encode(vtgt), 4096)
"""

from t2t_lite.data.errors import DataError
from t2t_lite.data.paths import data_dir, resolve_path
from t2t_lite.data.pipeline import (
    eval_dataset,
    make_eval_dataset,
    make_train_dataset,
    tokens_per_batch,
    train_dataset,
)
from t2t_lite.data.sources import check_sources, load_pairs
from t2t_lite.data.text import normalize, read_lines, read_parallel
from t2t_lite.data.token_pairs import TokenPairs, cached_train_pairs, encode_pairs

__all__ = [
    "DataError",
    "TokenPairs",
    "cached_train_pairs",
    "check_sources",
    "data_dir",
    "encode_pairs",
    "eval_dataset",
    "load_pairs",
    "make_eval_dataset",
    "make_train_dataset",
    "normalize",
    "read_lines",
    "read_parallel",
    "resolve_path",
    "tokens_per_batch",
    "train_dataset",
]
