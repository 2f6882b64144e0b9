"""Translation datasets from TensorFlow Datasets, e.g. `ted_hrlr_translate/pt_to_en`."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from t2t_lite.config import DataConfig
from t2t_lite.data.errors import DataError
from t2t_lite.data.text import decode_line, normalize

_READ_BATCH = 4096


def tfds_builder(cfg: DataConfig) -> tfds.core.DatasetBuilder:
    """The builder of `cfg.tfds_name`, checked without downloading anything.

    Raises:
        DataError: the name (or its config) is unknown, or a language is not a feature of it.
    """
    if not cfg.tfds_name:
        raise DataError("data.source=tfds needs data.tfds_name, e.g. ted_hrlr_translate/pt_to_en")
    data_dir = os.path.expanduser(cfg.tfds_data_dir) if cfg.tfds_data_dir else None
    try:
        builder = tfds.builder(cfg.tfds_name, data_dir=data_dir)
    except (ValueError, KeyError) as e:
        # DatasetNotFoundError lists every dataset; the first line says what was wrong.
        reason = str(e).strip().splitlines()[0]
        raise DataError(
            f"data.tfds_name={cfg.tfds_name!r} is not a TFDS dataset: {reason}"
        ) from None
    tfds_languages(cfg, builder)
    return builder


def tfds_languages(cfg: DataConfig, builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """`(src_lang, tgt_lang)`: from the config, else the dataset's supervised keys.

    Raises:
        DataError: a language is not a feature of the dataset.
    """
    keys = builder.info.supervised_keys
    default = keys if isinstance(keys, tuple) and len(keys) == 2 else ("", "")
    src, tgt = cfg.src_lang or default[0], cfg.tgt_lang or default[1]
    features = sorted(builder.info.features.keys())
    for name, lang in [("data.src_lang", src), ("data.tgt_lang", tgt)]:
        if lang not in features:
            raise DataError(
                f"{name}={lang!r} is not a language of {cfg.tfds_name}; it has {features}"
            )
    return src, tgt


def tfds_split(cfg: DataConfig, split: str) -> str:
    """The TFDS split name for `split` ("train" or "valid")."""
    return cfg.tfds_train_split if split == "train" else cfg.tfds_valid_split


def read_tfds_pairs(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """Downloads and prepares the dataset if needed, then reads one split, normalized.

    Args:
        cfg: `tfds_name`, `tfds_data_dir`, languages and split names.
        split: "train" or "valid".

    Raises:
        DataError: unknown dataset, language or split, or text that is not UTF-8.
    """
    builder = tfds_builder(cfg)
    src_lang, tgt_lang = tfds_languages(cfg, builder)
    name = tfds_split(cfg, split)
    builder.download_and_prepare()
    try:
        dataset = builder.as_dataset(split=name, shuffle_files=False)
    except (ValueError, KeyError) as e:
        raise DataError(f"{cfg.tfds_name}: cannot read split {name!r}: {e}") from None
    src, tgt = [], []
    for batch in tfds.as_numpy(dataset.batch(_READ_BATCH)):
        for side, lang in [(src, src_lang), (tgt, tgt_lang)]:
            for raw in batch[lang]:
                where = f"{cfg.tfds_name}, split {name!r}, example {len(side)} ({lang})"
                side.append(normalize(decode_line(raw, where)))
    return src, tgt
