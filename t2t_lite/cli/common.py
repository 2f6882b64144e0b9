"""What every t2t-* command shares: user errors reported in one line, with a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags

from t2t_lite.config import ConfigError
from t2t_lite.data.errors import DataError
from t2t_lite.model_dir import ModelDirError

# Errors caused by the user's input: reported as `prog: error: message`, exit status 2, no
# traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ConfigError,
    DataError,
    ModelDirError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    flags.ValidationError,
)


def user_errors_exit(prog: str, main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl `main` so user errors print one clear line and exit with status 2."""

    def wrapped(argv: list[str]) -> None:
        if len(argv) > 1:
            print(f"{prog}: error: unexpected arguments {argv[1:]}", file=sys.stderr)
            sys.exit(2)
        try:
            main(argv)
        except USER_ERRORS as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped


def run(prog: str, main: Callable[[list[str]], None]) -> None:
    """Entry point of a console script: `absl.app.run` with user errors handled."""
    app.run(user_errors_exit(prog, main))


def flag_at_least(name: str, minimum: int) -> None:
    """Registers a validator: integer flag `name` must be >= `minimum` (None = use config)."""
    flags.register_validator(
        name,
        lambda value: value is None or value >= minimum,
        message=f"--{name} must be >= {minimum}",
    )


def define_decoding_threads() -> None:
    """Defines --parallel_batches and --intra_threads (t2t-translate, t2t-evaluate)."""
    flags.DEFINE_integer(
        "parallel_batches",
        None,
        "Batches translated at the same time, one thread each; default from the config.",
    )
    flags.DEFINE_integer(
        "intra_threads",
        0,
        "Threads one TensorFlow op may use (0 = one per core). On a CPU, --parallel_batches=2 "
        "--intra_threads=1 is fastest per core pair.",
    )
    flag_at_least("parallel_batches", 1)
    flag_at_least("intra_threads", 0)


def apply_intra_threads() -> None:
    """Sets TensorFlow's intra-op thread count from --intra_threads; call before any op."""
    import tensorflow as tf

    if flags.FLAGS.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(flags.FLAGS.intra_threads)
