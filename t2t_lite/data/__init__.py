"""Training data: sources (text files, TFDS), tokenization with a cache, tf.data pipelines.

Training prepares its data with `prepare_training_data` (one streaming pass into
memory-mapped shards, see `t2t_lite.data.prepare`); `load_pairs` and `cached_train_pairs`
hold a corpus in memory, for small corpora, tests and benchmarks.

Example:
    >>> src_vocab, tgt_vocab, corpora = prepare_training_data(cfg, model_dir, train_vocab=True)
    >>> train = make_train_dataset(corpora, cfg.train)

Or, in memory:
    >>> check_sources(cfg.data)                      # fails fast on a missing file
    >>> src, tgt = load_pairs(cfg.data, "train")
    >>> src_vocab, tgt_vocab = build_vocabularies(cfg, model_dir, src, tgt)
    >>> pairs = cached_train_pairs(cfg, src_vocab, tgt_vocab, f"{model_dir}/data_cache")
    >>> train = make_train_dataset(pairs, cfg.train)
    >>> vsrc, vtgt = load_pairs(cfg.data, "valid")
    >>> valid = make_eval_dataset(encode_pairs(src_vocab, tgt_vocab, vsrc, vtgt), 4096)
"""

from t2t_lite.data.errors import DataError
from t2t_lite.data.paths import data_dir, resolve_path
from t2t_lite.data.pipeline import make_eval_dataset, make_train_dataset, tokens_per_batch
from t2t_lite.data.prepare import prepare_training_data
from t2t_lite.data.shards import ShardedCorpus
from t2t_lite.data.sources import check_sources, load_pairs
from t2t_lite.data.text import normalize, read_lines, read_parallel
from t2t_lite.data.token_pairs import TokenPairs, cached_train_pairs, encode_pairs

__all__ = [
    "DataError",
    "ShardedCorpus",
    "TokenPairs",
    "cached_train_pairs",
    "check_sources",
    "data_dir",
    "encode_pairs",
    "load_pairs",
    "make_eval_dataset",
    "make_train_dataset",
    "normalize",
    "prepare_training_data",
    "read_lines",
    "read_parallel",
    "resolve_path",
    "tokens_per_batch",
]
