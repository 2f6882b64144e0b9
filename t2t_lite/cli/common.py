"""What every t2t-* command shares: user errors reported in one line, with a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging

from t2t_lite.config import ConfigError
from t2t_lite.data.errors import DataError

# Errors caused by the user's input: reported as `prog: error: message`, exit status 2, no
# traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ConfigError,
    DataError,
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


class _AutoOrInt(flags.ArgumentParser):
    """Parses "auto" or an integer (range checked by a validator, for a clear message)."""

    def parse(self, argument):
        if isinstance(argument, int) or argument == "auto":
            return argument
        text = str(argument).strip().lower()
        if text == "auto":
            return "auto"
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected auto or an integer, got {argument!r}") from None

    def flag_type(self) -> str:
        return "auto or int"


def define_decoding_threads() -> None:
    """Defines --parallel_batches and --intra_threads (t2t-translate, t2t-evaluate)."""
    flags.DEFINE(
        _AutoOrInt(),
        "parallel_batches",
        "auto",
        "Batches translated at the same time, one thread each; auto: chosen for this machine "
        "(several side by side on a CPU of 2+ cores, one at a time on a GPU).",
    )
    flags.DEFINE(
        _AutoOrInt(),
        "intra_threads",
        "auto",
        "Threads one TensorFlow op may use (0 = one per core); auto: cores / parallel batches "
        "when several batches run at a time, else 0. On a CPU, --parallel_batches=2 "
        "--intra_threads=1 is fastest per core pair.",
    )
    for name, minimum in (("parallel_batches", 1), ("intra_threads", 0)):
        flags.register_validator(
            name,
            lambda value, minimum=minimum: value == "auto" or value >= minimum,
            message=f"--{name} must be auto or >= {minimum}",
        )


def apply_intra_threads() -> None:
    """Resolves --parallel_batches and --intra_threads for this machine (the flags then hold
    numbers) and sets TensorFlow's intra-op thread count; call before any TensorFlow op.

    Given numbers are kept; "auto" follows `t2t_lite.hardware.decode_layout`.
    """
    import tensorflow as tf

    from t2t_lite.hardware import decode_layout

    layout = decode_layout(
        parallel_batches=flags.FLAGS.parallel_batches, intra_threads=flags.FLAGS.intra_threads
    )
    flags.FLAGS.parallel_batches = layout.parallel_batches
    flags.FLAGS.intra_threads = layout.intra_threads
    if layout.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(layout.intra_threads)
    logging.info("decoding: %s", layout.summary())
