import glob
import os

import pytest

from t2t_lite.config import ConfigError, apply_overrides, config_diff, load_config
from tests.helpers import CONFIGS

PRESETS = sorted(glob.glob(os.path.join(CONFIGS, "*.yaml")))


def test_every_preset_is_tested():
    names = {os.path.basename(path).removesuffix(".yaml") for path in PRESETS}
    assert {"tiny", "multi30k_cpu", "multi30k_quick", "base", "big"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_presets_load(path):
    cfg = load_config(path)
    assert cfg.model.d_model % cfg.model.num_heads == 0


@pytest.mark.parametrize(
    ("name", "d_model", "d_ff", "num_heads", "dropout"),
    [("base", 512, 2048, 8, 0.1), ("big", 1024, 4096, 16, 0.3)],
)
def test_base_and_big_match_vaswani(name, d_model, d_ff, num_heads, dropout):
    cfg = load_config(os.path.join(CONFIGS, f"{name}.yaml"))
    m, t = cfg.model, cfg.train
    assert (m.num_encoder_layers, m.num_decoder_layers) == (6, 6)
    assert (m.d_model, m.d_ff, m.num_heads, m.dropout) == (d_model, d_ff, num_heads, dropout)
    assert (t.schedule, t.warmup_steps, t.label_smoothing) == ("transformer", 4000, 0.1)
    assert (t.adam_beta1, t.adam_beta2, t.adam_epsilon) == (0.9, 0.98, 1e-9)
    # Pre-norm where the paper has post-norm: the reason is given beside `norm:` in the preset.
    assert m.norm == "pre"


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "model:\n  d_modle: 8\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*model\.d_modle"):
        load_config(path)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'modle'"):
        load_config(_write(tmp_path, "modle: {}\n"))


def test_wrong_type_names_key_and_file(tmp_path):
    path = _write(tmp_path, "train:\n  steps: ten\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*train\.steps: expected int, got 'ten'"):
        load_config(path)


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="train.steps: expected int"):
        load_config(_write(tmp_path, "train:\n  steps: true\n"))


def test_choice_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.norm: expected one of \['pre', 'post'\]"):
        load_config(_write(tmp_path, "model:\n  norm: middle\n"))


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  learning_rate: 1\n"))
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)


def test_overrides_typed_and_checked():
    cfg = load_config(os.path.join(CONFIGS, "tiny.yaml"), ["train.steps=7", "model.norm=post"])
    assert cfg.train.steps == 7 and cfg.model.norm == "post"
    with pytest.raises(ConfigError, match="--set 'train.stpes=7'.*unknown key train.stpes"):
        apply_overrides(cfg, ["train.stpes=7"])
    with pytest.raises(ConfigError, match="expected int, got 'x'"):
        apply_overrides(cfg, ["train.steps=x"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(cfg, ["steps"])
    assert cfg.train.steps == 7  # overrides return a copy


def test_cross_key_validation(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        load_config(_write(tmp_path, "model:\n  d_model: 30\n  num_heads: 4\n"))
    with pytest.raises(ConfigError, match="vocab.shared"):
        load_config(_write(tmp_path, "vocab:\n  shared: false\n"))
    with pytest.raises(ConfigError, match="decode.parallel_batches must be >= 1"):
        load_config(_write(tmp_path, "decode:\n  parallel_batches: 0\n"))
    for fraction in ("0", "1.5"):
        with pytest.raises(ConfigError, match=r"train.average_within must be in \(0, 1\]"):
            load_config(_write(tmp_path, f"train:\n  average_within: {fraction}\n"))


def test_diff_lists_changed_keys():
    a = load_config(os.path.join(CONFIGS, "tiny.yaml"))
    b = apply_overrides(a, ["train.steps=9", "model.d_model=64"])
    assert config_diff(a, b) == ["model.d_model: 32 -> 64", "train.steps: 200 -> 9"]


def test_yaml_round_trip(tmp_path):
    cfg = load_config(os.path.join(CONFIGS, "multi30k_cpu.yaml"))
    path = _write(tmp_path, cfg.to_yaml())
    assert load_config(path) == cfg


def test_auto_precision_and_parallel_batches(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  mixed_precision: auto\n"))
    assert cfg.train.mixed_precision == "auto" and cfg.decode.parallel_batches == "auto"
    cfg = load_config(
        _write(tmp_path, "decode:\n  parallel_batches: auto\n"), ["decode.parallel_batches=2"]
    )
    assert cfg.decode.parallel_batches == 2
    with pytest.raises(ConfigError, match="decode.parallel_batches: expected int or 'auto'"):
        load_config(_write(tmp_path, "decode:\n  parallel_batches: many\n"))
    for name in ("multi30k_cpu", "multi30k_quick", "base", "big"):
        assert load_config(os.path.join(CONFIGS, f"{name}.yaml")).train.mixed_precision == "auto"
    # The tests' preset trains in float32 on every machine.
    assert load_config(os.path.join(CONFIGS, "tiny.yaml")).train.mixed_precision == "none"
