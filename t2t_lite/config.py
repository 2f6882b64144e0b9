"""Typed configuration: presets in `configs/*.yaml`, overrides as `section.key=value`.

A configuration has four sections, each a dataclass below. Loading a file or applying an
override rejects unknown keys and values of the wrong type with a message that names the key
and where it came from (file path or `--set`). The resolved configuration is written into the
model directory (`config.yaml`), so a model directory alone is enough to translate.

Example:
    >>> cfg = load_config("configs/tiny.yaml", overrides=["train.steps=10"])
    >>> cfg.train.steps
    10
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Literal, get_args, get_origin

import yaml

# train.mixed_precision: "auto" is resolved when training starts (`t2t_lite.hardware`).
MixedPrecision = Literal["auto", "none", "bfloat16", "float16"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names key and source."""


@dataclasses.dataclass
class ModelConfig:
    """The `model:` section; passed as keyword arguments to `t2t_lite.Transformer`."""

    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.1
    ffn_dropout: float = 0.1
    # "pre": x + f(norm(x)) with a final norm per stack; "post": norm(x + f(x)) (Vaswani et al.).
    norm: Literal["pre", "post"] = "pre"
    # Source embedding, target embedding and output projection share one matrix (one vocabulary).
    share_embeddings: bool = True
    # With separate vocabularies: tie the target embedding to the output projection.
    tie_output: bool = True
    # Longest source or target the model accepts (in pieces, EOS included); longer is cut.
    max_length: int = 256
    # Sources end with EOS (the tensor2tensor layout). false: a source is its pieces only, as
    # in OpenNMT-tf, one encoder position fewer per sentence. A model reads sources the way it
    # was trained (data pipeline, t2t-translate, SavedModel and CTranslate2 export follow
    # this key), so it is chosen when training starts; resuming with another value is refused.
    source_eos: bool = True


@dataclasses.dataclass
class VocabConfig:
    """The `vocab:` section: SentencePiece model(s) trained from the training text or reused."""

    type: Literal["unigram", "bpe"] = "unigram"
    size: int = 8000
    # One model for source and target (required by model.share_embeddings).
    shared: bool = True
    # Reuse existing SentencePiece `.model` files instead of training ("" = train one).
    source_model: str = ""
    target_model: str = ""
    character_coverage: float = 1.0
    # Sentences sampled to train SentencePiece: a uniform random sample drawn while the
    # training text is read (0 = all, held in memory). SentencePiece needs about 25 bytes per
    # character of its sample: 300,000 sentences of 135 characters take about 1 GB.
    input_sentence_size: int = 300_000
    # Characters outside the vocabulary become UTF-8 byte pieces instead of <unk>, so every
    # text survives encode -> decode. A saved configuration without this key (written before
    # it existed) reads as false: that model directory's vocabulary has no byte pieces.
    byte_fallback: bool = True


@dataclasses.dataclass
class CorpusConfig:
    """One parallel corpus of `data.train`: two aligned text files and a sampling weight."""

    src: str = ""
    tgt: str = ""
    # Batches are drawn from the corpora in proportion to their weights.
    weight: float = 1.0


@dataclasses.dataclass
class DataConfig:
    """The `data:` section: where training and validation pairs come from."""

    source: Literal["text", "tfds"] = "text"
    # Parallel text files (plain or .gz). Relative paths are resolved against the data dir
    # (`$T2T_DATA_DIR`, else `~/.cache/t2t_lite/data`), then the current directory.
    train_src: str = ""
    train_tgt: str = ""
    # Several training corpora, each `{src, tgt, weight}`, mixed by weight (instead of
    # train_src/train_tgt); each is tokenized and cached on its own.
    train: list[CorpusConfig] = dataclasses.field(default_factory=list)
    valid_src: str = ""
    valid_tgt: str = ""
    # TensorFlow Datasets translation dataset, e.g. "ted_hrlr_translate/pt_to_en".
    tfds_name: str = ""
    tfds_data_dir: str = ""
    tfds_train_split: str = "train"
    tfds_valid_split: str = "validation"
    src_lang: str = ""
    tgt_lang: str = ""
    # Pairs with more pieces than this (EOS included) on either side are dropped from training.
    max_src_length: int = 100
    max_tgt_length: int = 100


@dataclasses.dataclass
class TrainConfig:
    """The `train:` section: optimisation, checkpoints, evaluation and logging."""

    seed: int = 1234
    steps: int = 100_000
    # Stop after this many minutes of training (0 = no limit); a checkpoint is saved.
    max_minutes: float = 0.0
    # Token budget per batch: padded source size and padded target size each stay within it.
    batch_tokens: int = 4096
    # Length buckets are this many tokens wide.
    bucket_width: int = 8
    # Each pass shuffles the pairs within windows of this many (0 or 1: keep the file order).
    shuffle_buffer: int = 100_000
    schedule: Literal["transformer", "warmup_step"] = "transformer"
    # transformer: lr = learning_rate * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5).
    # warmup_step: linear warmup to learning_rate, then multiplied by factors at boundaries.
    learning_rate: float = 2.0
    warmup_steps: int = 4000
    boundaries: list[int] = dataclasses.field(default_factory=list)
    factors: list[float] = dataclasses.field(default_factory=list)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-9
    label_smoothing: float = 0.1
    # Clip gradients by global norm (0 = off).
    clip_norm: float = 0.0
    # Sum gradients over this many batches before each update.
    accumulate_steps: int = 1
    # auto: bfloat16 where the hardware computes in it fast (GPUs of compute capability >= 8.0;
    # x86 CPUs with AVX512_BF16 or AMX-BF16 whose bfloat16 matmuls measure >= 1.3x float32's),
    # float16 with loss scaling on compute capability 7.x, else none (float32); resolved when
    # training starts (`t2t_lite.hardware`), so a model directory moved to another machine
    # resolves it there.
    mixed_precision: MixedPrecision = "auto"
    jit_compile: bool = False
    log_every: int = 100
    save_every: int = 1000
    keep_checkpoints: int = 5
    # Validation loss and BLEU every N steps (0 = off); BLEU on the first eval_sentences.
    eval_every: int = 1000
    eval_sentences: int = 0
    # Stop when validation BLEU has not improved for this many evaluations (0 = never).
    early_stopping: int = 0
    # Average the last N checkpoints at the end of training into `averaged/` (0 or 1 = off).
    average_last: int = 0
    # Of those, average only the ones saved in this last fraction of the run's steps (the
    # newest always; 1.0 = all N): a run stopped by max_minutes makes fewer steps on a slower
    # machine, where the last N checkpoints reach further back into training.
    average_within: float = 1.0


# The keys that cannot change the weights of the updates already done: on resume they may
# differ from the model directory's saved configuration (e.g. more `train.steps`).
RESUMABLE_KEYS = frozenset(
    {
        "train.steps",
        "train.max_minutes",
        "train.log_every",
        "train.save_every",
        "train.keep_checkpoints",
        "train.eval_every",
        "train.eval_sentences",
        "train.early_stopping",
        "train.average_last",
        "train.average_within",
    }
)


# Keys added after model directories were first written, with the value a saved
# configuration that lacks them stands for (how that directory was made).
SAVED_CONFIG_DEFAULTS = {"vocab.byte_fallback": False}


@dataclasses.dataclass
class DecodeConfig:
    """The `decode:` section: defaults for translation (flags of t2t-translate override)."""

    beam_size: int = 4
    # GNMT length penalty ((5 + length) / 6) ** alpha; 0 disables it.
    alpha: float = 0.6
    # Maximum output length = max_length_a * source_length + max_length_b.
    max_length_a: float = 1.5
    max_length_b: int = 10
    # Source tokens per batch (at most; parallel batches are cut evenly below it). 2,048 makes
    # about 10 batches of Multi30k's 1,000-sentence test set, 4,096 about 5: 2,048 measured 5%
    # more sentences/s at beam 4 on 2 cores (docs/tuning.md).
    batch_tokens: int = 2048
    n_best: int = 1
    # Batches searched at the same time, each in its own thread (CTranslate2's inter_threads).
    # On a CPU, 2 batches with 1 intra-op thread each (t2t-translate --intra_threads=1) beat
    # 1 batch with 2 threads: the decoding step's ops are too small to split well. auto: chosen
    # for the machine (`t2t_lite.hardware.decode_layout`). Used by `Translator` and validation
    # during training; t2t-translate and t2t-evaluate take --parallel_batches (default auto).
    parallel_batches: int | Literal["auto"] = "auto"
    # Random sampling at beam 1 (CTranslate2's names): sampling_topk 1 = greedy search (off),
    # 0 = the whole vocabulary; sampling_topp in (0, 1]; sampling_temperature > 0. The same
    # seed gives the same samples; n_best is then the number of samples per sentence.
    sampling_topk: int = 1
    sampling_topp: float = 1.0
    sampling_temperature: float = 1.0
    seed: int = 0
    # Repetition control: no n-gram of this size occurs twice (0 = off); CTRL repetition
    # penalty on tokens already generated (1 = off).
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0


@dataclasses.dataclass
class Config:
    """The whole configuration: one attribute per YAML section."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    vocab: VocabConfig = dataclasses.field(default_factory=VocabConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """`{"section.key": value}` for every key; used to compare two configurations."""
        return {f"{s}.{k}": v for s, section in self.to_dict().items() for k, v in section.items()}

    def validate(self) -> None:
        """Checks that involve several keys; raises ConfigError."""
        m = self.model
        if m.d_model % m.num_heads:
            raise ConfigError(
                f"model.d_model={m.d_model} must be divisible by model.num_heads={m.num_heads}"
            )
        if m.share_embeddings and not self.vocab.shared:
            raise ConfigError(
                "model.share_embeddings=true needs vocab.shared=true (one vocabulary)"
            )
        if self.train.accumulate_steps < 1:
            raise ConfigError("train.accumulate_steps must be >= 1")
        if not 0.0 < self.train.average_within <= 1.0:
            raise ConfigError("train.average_within must be in (0, 1]")
        if self.decode.parallel_batches != "auto" and self.decode.parallel_batches < 1:
            raise ConfigError("decode.parallel_batches must be >= 1")
        if not 0.0 < self.decode.sampling_topp <= 1.0:
            raise ConfigError("decode.sampling_topp must be in (0, 1]")
        for key in ("sampling_temperature", "repetition_penalty"):
            if not getattr(self.decode, key) > 0.0:
                raise ConfigError(f"decode.{key} must be > 0")
        if self.train.schedule == "warmup_step" and len(self.train.boundaries) != len(
            self.train.factors
        ):
            raise ConfigError("train.boundaries and train.factors must have the same length")
        d = self.data
        if d.train and (d.train_src or d.train_tgt):
            raise ConfigError("give data.train or data.train_src/data.train_tgt, not both")
        for i, corpus in enumerate(d.train):
            if not corpus.src or not corpus.tgt:
                raise ConfigError(f"data.train[{i}] needs src and tgt")
            if not corpus.weight > 0.0:
                raise ConfigError(f"data.train[{i}].weight={corpus.weight} must be > 0")
        for key, value in self.flat().items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{key}={value} must not be negative")


_SECTIONS = {
    "model": ModelConfig,
    "vocab": VocabConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
}


def _section_types(section: str) -> dict[str, Any]:
    cls = _SECTIONS[section]
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _describe(expected: Any) -> str:
    """`int` -> "int", `Literal["auto"]` -> "'auto'"."""
    if get_origin(expected) is Literal:
        return " or ".join(repr(choice) for choice in get_args(expected))
    return expected.__name__


def _check_value(value: Any, expected: Any, where: str) -> Any:
    """Returns `value` converted to `expected` (int -> float only), or raises ConfigError."""
    origin = get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        for option in get_args(expected):
            try:
                return _check_value(value, option, where)
            except ConfigError:
                pass
        expected_text = " or ".join(_describe(option) for option in get_args(expected))
        raise ConfigError(f"{where}: expected {expected_text}, got {value!r}")
    if origin is Literal:
        choices = get_args(expected)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(expected):
        return _check_record(value, expected, where)
    if origin is list:
        (item_type,) = get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list of {item_type.__name__}, got {value!r}")
        return [_check_value(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def _check_record(value: Any, expected: type, where: str) -> Any:
    """`value` (a mapping, or already an `expected`) as an `expected` dataclass, keys checked."""
    if isinstance(value, expected):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    hints = typing.get_type_hints(expected)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(expected)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(fields)}")
    return expected(**{k: _check_value(v, fields[k], f"{where}.{k}") for k, v in value.items()})


def _set(cfg: Config, section: str, key: str, value: Any, source: str) -> None:
    if section not in _SECTIONS:
        raise ConfigError(
            f"{source}: unknown section {section!r}; expected one of {list(_SECTIONS)}"
        )
    types = _section_types(section)
    if key not in types:
        raise ConfigError(
            f"{source}: unknown key {section}.{key}; {section} has {', '.join(sorted(types))}"
        )
    checked = _check_value(value, types[key], f"{source}: {section}.{key}")
    setattr(getattr(cfg, section), key, checked)


def config_from_dict(data: Any, source: str = "<dict>") -> Config:
    """Builds a Config from nested mappings, starting from the defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    cfg = Config()
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"{source}: unknown section {section!r}; expected one of {list(_SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for key, value in values.items():
            _set(cfg, section, key, value, source)
    return cfg


def apply_overrides(cfg: Config, overrides: list[str], source: str = "--set") -> Config:
    """Applies `section.key=value` strings (values parsed as YAML) to a copy of cfg."""
    cfg = dataclasses.replace(
        cfg, **{name: dataclasses.replace(getattr(cfg, name)) for name in _SECTIONS}
    )
    for item in overrides:
        name, sep, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(
                f"{source} {item!r}: expected section.key=value, e.g. train.steps=100"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{source} {item!r}: value is not valid YAML: {e}") from None
        _set(cfg, section, key, value, f"{source} {item!r}")
    return cfg


def load_config(
    path: str | os.PathLike, overrides: list[str] | None = None, saved: bool = False
) -> Config:
    """Reads a YAML preset, applies overrides, validates; raises ConfigError naming the file.

    `saved`: the file is a model directory's `config.yaml`; keys it lacks take their
    `SAVED_CONFIG_DEFAULTS` value instead of the default for new runs.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    cfg = config_from_dict(data, source=path)
    if saved and isinstance(data, dict):
        for name, value in SAVED_CONFIG_DEFAULTS.items():
            section, key = name.split(".")
            if key not in (data.get(section) or {}):
                setattr(getattr(cfg, section), key, value)
    cfg = apply_overrides(cfg, overrides or [])
    try:
        cfg.validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg


def config_diff(old: Config, new: Config) -> list[str]:
    """Lines `key: old -> new` for every key whose value differs."""
    a, b = old.flat(), new.flat()
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]
