"""SentencePiece vocabularies trained to use the special ids of `t2t_lite.constants`.

A model directory holds either one shared model (`vocab.model`) or one per side
(`vocab.src.model`, `vocab.tgt.model`). `build_vocabularies` trains them (or copies given
`.model` files) into the directory; `load_vocabularies` reads them back.

Example:
    >>> src_vocab, tgt_vocab = build_vocabularies(cfg, "runs/m", src_lines, tgt_lines)
    >>> ids = src_vocab.encode(["Ein Hund läuft."])   # pieces only, no BOS/EOS
    >>> src_vocab.decode(ids[0] + [EOS_ID, PAD_ID])
    'Ein Hund läuft.'
"""

from __future__ import annotations

import io
import itertools
import os
import random
from collections.abc import Iterable, Sequence

import numpy as np
import sentencepiece as spm
from absl import logging

from t2t_lite.atomic import write_file_atomic
from t2t_lite.config import Config, VocabConfig
from t2t_lite.constants import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SHARED_VOCAB,
    SOURCE_VOCAB,
    TARGET_VOCAB,
    UNK_ID,
)

_SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
# Byte fallback spends 256 pieces on the bytes; a smaller vocabulary is trained without it.
MIN_BYTE_FALLBACK_SIZE = 512


class Vocabulary:
    """A SentencePiece model with the special ids above.

    Args:
        path: the SentencePiece `.model` file.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the model's pad/unk/bos/eos ids are not 0/1/2/3.

    Example:
        >>> vocab = Vocabulary("runs/m/vocab.model")
        >>> vocab.decode_batch(vocab.encode(["A dog runs.", "Hi"]))
        ['A dog runs.', 'Hi']
    """

    def __init__(self, path: str | os.PathLike):
        self._path = os.fspath(path)
        if not os.path.isfile(self._path):
            raise FileNotFoundError(f"SentencePiece model not found: {self._path}")
        self._sp = spm.SentencePieceProcessor(model_file=self._path)
        _check_special_ids(self._sp, self._path)

    @property
    def path(self) -> str:
        """The `.model` file this vocabulary was read from."""
        return self._path

    @property
    def size(self) -> int:
        """Number of pieces, special ids included (the model's `V`)."""
        return self._sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Splits each text into piece ids, without BOS or EOS (one C++ call for the batch)."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, stopping at the first EOS and skipping PAD and BOS.

        Args:
            ids: a list, NumPy array or eager tensor of ids, e.g. one row of a `[B, T]` batch.
        """
        return self._sp.decode(_strip_specials(ids))

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """`decode` for every row, e.g. of a padded `[B, T]` array or a list of lists."""
        return self._sp.decode([_strip_specials(ids) for ids in batch])

    def __repr__(self) -> str:
        return f"Vocabulary({self._path!r}, size={self.size})"


def _strip_specials(ids: Iterable[int]) -> list[int]:
    ids = np.asarray(ids).tolist()
    if EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return [i for i in ids if i != PAD_ID and i != BOS_ID]


def _check_special_ids(sp: spm.SentencePieceProcessor, where: str) -> None:
    found = {"pad": sp.pad_id(), "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id()}
    if found != _SPECIAL_IDS:
        raise ValueError(
            f"{where}: SentencePiece special ids are {found}, t2t_lite needs {_SPECIAL_IDS}; "
            "retrain with pad_id=0 unk_id=1 bos_id=2 eos_id=3"
        )


def train_sentencepiece(cfg: VocabConfig, texts: Iterable[str], seed: int = 0) -> bytes:
    """Trains a SentencePiece model on `texts` and returns the serialized model.

    Training is deterministic for given texts, config and seed (two threads, seeded sampling).
    With `cfg.byte_fallback` (and `cfg.size >= MIN_BYTE_FALLBACK_SIZE`) the model has the 256
    byte pieces `<0x00>`..`<0xFF>`: a character it has no piece for is encoded as its UTF-8
    bytes, and decoding joins them back into the character, so no text becomes `<unk>`.

    Args:
        cfg: model type, size, character coverage, sentence sample size, byte fallback.
        texts: training sentences, one per item.
        seed: seed of the sentence sampling (used when there are more than
            `cfg.input_sentence_size` sentences).

    Raises:
        ValueError: SentencePiece rejected the input, e.g. `cfg.size` is too large for the text.
    """
    texts = list(texts)
    if 0 < cfg.input_sentence_size < len(texts):
        # Sampled here: SentencePiece's own sampling ignores spm.set_random_generator_seed.
        # Given exactly input_sentence_size sentences, it keeps them all.
        keep = sorted(random.Random(seed).sample(range(len(texts)), cfg.input_sentence_size))
        texts = [texts[i] for i in keep]
    byte_fallback = cfg.byte_fallback and cfg.size >= MIN_BYTE_FALLBACK_SIZE
    if cfg.byte_fallback and not byte_fallback:
        logging.warning(
            "vocab.size=%d leaves no room for the 256 byte pieces (needs >= %d); training "
            "without byte fallback",
            cfg.size,
            MIN_BYTE_FALLBACK_SIZE,
        )
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type=cfg.type,
            vocab_size=cfg.size,
            character_coverage=cfg.character_coverage,
            input_sentence_size=cfg.input_sentence_size,
            shuffle_input_sentence=True,
            byte_fallback=byte_fallback,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise ValueError(f"SentencePiece training failed (vocab.size={cfg.size}): {e}") from None
    return model.getvalue()


def _read_model(path: str) -> bytes:
    path = os.path.expanduser(path)
    logging.info("Vocabulary: reusing %s", path)
    try:
        with open(path, "rb") as f:
            proto = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"SentencePiece model not found: {path}") from None
    try:
        sp = spm.SentencePieceProcessor(model_proto=proto)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a SentencePiece model: {e}") from None
    _check_special_ids(sp, path)
    return proto


def _train_logged(cfg: Config, texts: Iterable[str], side: str) -> bytes:
    v = cfg.vocab
    logging.info("Vocabulary (%s): training a %d-piece %s model", side, v.size, v.type)
    return train_sentencepiece(cfg.vocab, texts, seed=cfg.train.seed)


def build_vocabularies(
    cfg: Config,
    model_dir: str | os.PathLike,
    train_src_texts: Sequence[str],
    train_tgt_texts: Sequence[str],
) -> tuple[Vocabulary, Vocabulary]:
    """Trains (or copies) the vocabularies described by `cfg.vocab` into `model_dir`.

    Shared (`vocab.shared=true`): one model trained on source then target text, written to
    `vocab.model`; `vocab.source_model` (or `vocab.target_model`) reuses an existing model.
    Separate: `vocab.src.model` and `vocab.tgt.model`, each trained on its side or copied from
    `vocab.source_model` / `vocab.target_model`. Files are written atomically; files of the
    other layout left in `model_dir` by an earlier run are removed.

    Args:
        cfg: the configuration; `cfg.vocab` and `cfg.train.seed` are used.
        model_dir: directory to write the `.model` files into (created if missing).
        train_src_texts: source training sentences (unused when a model is reused).
        train_tgt_texts: target training sentences (unused when a model is reused).

    Returns:
        `(src_vocab, tgt_vocab)`; the same object twice when shared.

    Raises:
        FileNotFoundError: a given model file does not exist.
        ValueError: given models disagree, have the wrong special ids, or training failed.
    """
    model_dir = os.fspath(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    v = cfg.vocab
    if v.shared:
        if v.source_model and v.target_model and v.source_model != v.target_model:
            raise ValueError(
                "vocab.shared=true but vocab.source_model and vocab.target_model differ "
                f"({v.source_model!r} vs {v.target_model!r}); give one model or set "
                "vocab.shared=false"
            )
        given = v.source_model or v.target_model
        if given:
            proto = _read_model(given)
        else:
            proto = _train_logged(cfg, itertools.chain(train_src_texts, train_tgt_texts), "shared")
        path = os.path.join(model_dir, SHARED_VOCAB)
        write_file_atomic(path, proto)
        _remove_stale(model_dir, [SOURCE_VOCAB, TARGET_VOCAB])
        vocab = Vocabulary(path)
        return vocab, vocab
    # Read given models first, so a bad path fails before any training.
    src_proto = _read_model(v.source_model) if v.source_model else None
    tgt_proto = _read_model(v.target_model) if v.target_model else None
    src_proto = src_proto or _train_logged(cfg, train_src_texts, "source")
    tgt_proto = tgt_proto or _train_logged(cfg, train_tgt_texts, "target")
    paths = [os.path.join(model_dir, SOURCE_VOCAB), os.path.join(model_dir, TARGET_VOCAB)]
    write_file_atomic(paths[0], src_proto)
    write_file_atomic(paths[1], tgt_proto)
    _remove_stale(model_dir, [SHARED_VOCAB])
    return Vocabulary(paths[0]), Vocabulary(paths[1])


def _remove_stale(model_dir: str, names: list[str]) -> None:
    for name in names:
        path = os.path.join(model_dir, name)
        if os.path.exists(path):
            logging.warning("Removing %s left by an earlier vocabulary layout", path)
            os.remove(path)


def load_vocabularies(model_dir: str | os.PathLike) -> tuple[Vocabulary, Vocabulary]:
    """Reads the vocabularies written by `build_vocabularies`.

    Returns:
        `(src_vocab, tgt_vocab)`; the same object twice when `vocab.model` (shared) exists.

    Raises:
        FileNotFoundError: `model_dir` has neither `vocab.model` nor both
            `vocab.src.model` and `vocab.tgt.model`.
        ValueError: `model_dir` has both layouts, so which one is meant is unclear.
    """
    model_dir = os.fspath(model_dir)
    shared = os.path.join(model_dir, SHARED_VOCAB)
    src, tgt = os.path.join(model_dir, SOURCE_VOCAB), os.path.join(model_dir, TARGET_VOCAB)
    has_shared, has_split = os.path.isfile(shared), os.path.isfile(src) and os.path.isfile(tgt)
    if has_shared and has_split:
        raise ValueError(
            f"{model_dir} has both {SHARED_VOCAB} and {SOURCE_VOCAB}/{TARGET_VOCAB}; "
            "remove the ones that do not belong to this model"
        )
    if has_shared:
        vocab = Vocabulary(shared)
        return vocab, vocab
    if has_split:
        return Vocabulary(src), Vocabulary(tgt)
    raise FileNotFoundError(
        f"no vocabulary in {model_dir}: expected {SHARED_VOCAB}, or {SOURCE_VOCAB} and "
        f"{TARGET_VOCAB} (written by build_vocabularies)"
    )
