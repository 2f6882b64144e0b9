"""t2t-train: train (or resume) a Transformer into a model directory.

    t2t-train --config=configs/multi30k_cpu.yaml --model_dir=runs/m30k --set train.steps=5000

Rerunning the same command resumes from the latest checkpoint. A config that differs from the
saved one in keys that affect the weights is refused unless --overwrite_config is given.
SIGINT (Ctrl-C) or SIGTERM saves a checkpoint and exits with status 0; a second Ctrl-C aborts.
"""

from absl import flags, logging

from t2t_lite.cli import common
from t2t_lite.config import load_config
from t2t_lite.training.trainer import train

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Preset YAML file, e.g. configs/tiny.yaml.", required=True)
common.define_model_dir("Model directory to create or resume.")
flags.DEFINE_multi_string("set", [], "Override, section.key=value")
flags.DEFINE_bool(
    "overwrite_config",
    False,
    "Replace a saved config that differs in keys affecting the weights, then resume.",
)
flags.register_validator("config", bool, message="--config must not be empty")


def main(argv):
    del argv
    cfg = load_config(FLAGS.config, FLAGS.set)
    result = train(cfg, FLAGS.model_dir, overwrite_config=FLAGS.overwrite_config)
    logging.info("t2t-train: stopped at step %d (%s)", result.step, result.stop_reason)


def run():
    common.run("t2t-train", main)


if __name__ == "__main__":
    run()
