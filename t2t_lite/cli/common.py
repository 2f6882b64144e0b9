"""What every t2t-* command shares: its flags defined once, `--help` with the tool's own flags,
and user errors (flags included) reported in one line with exit status 2."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from absl import app, flags, logging

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

# Arguments that ask for the tool's own help (absl's --helpfull still lists every flag).
HELP_ARGS = ("--help", "-help", "--helpshort", "-helpshort", "-h", "-?")

# absl's message for a `required=True` flag left out, and for one bad value.
_REQUIRED = "must have a value other than None"
_FLAG_VALUE = re.compile(r"flag --(\w+)=(.*?): (.*)", re.DOTALL)


def user_error(prog: str, message: str) -> None:
    """Prints `prog: error: message` as one line on stderr and exits with status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def user_errors_exit(prog: str, main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl `main` so user errors print one clear line and exit with status 2."""

    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except USER_ERRORS as e:
            user_error(prog, str(e))

    return wrapped


def run(prog: str, main: Callable[[list[str]], None]) -> None:
    """Entry point of a console script: `absl.app.run` with `--help` and user errors handled.

    `--help` prints the module docstring of `main` and the flags defined by its module and by
    this one, then exits with status 0. A flag error (unknown flag, missing required flag, bad
    value, failed validator) or a positional argument prints one line and exits with status 2.
    """
    module = main.__module__

    def parse(argv: list[str]) -> list[str]:
        if any(arg in HELP_ARGS for arg in argv[1 : _end_of_flags(argv)]):
            print(tool_help(module))
            sys.exit(0)
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as e:
            user_error(prog, flag_error_message(e))
        if len(rest) > 1:
            user_error(prog, f"unexpected arguments {rest[1:]}")
        return rest

    app.run(user_errors_exit(prog, main), flags_parser=parse)


def _end_of_flags(argv: list[str]) -> int:
    """The index of `--` in `argv` (where absl stops reading flags), else `len(argv)`."""
    return argv.index("--") if "--" in argv else len(argv)


def flag_error_message(error: flags.Error) -> str:
    """absl's flag error as one line, e.g. `--beam_size=x: expected an integer`.

    absl reports every failed validator on its own line; they are joined with "; ".
    """
    parts = []
    for line in str(error).splitlines():
        match = _FLAG_VALUE.fullmatch(line)
        if not match or match.group(1) not in flags.FLAGS:
            parts.append(line)
            continue
        name, value, detail = match.groups()
        flag = flags.FLAGS[name]
        if _REQUIRED in detail:
            parts.append(f"--{name} is required")
        elif not flag.present:  # the value did not parse (a validator sees parsed values)
            parts.append(f"--{name}={value}: expected {_syntax(flag) or detail}")
        else:
            parts.append(
                detail if detail.startswith(f"--{name}") else f"--{name}={value}: {detail}"
            )
    return "; ".join(" ".join(part.split()) for part in parts)


def _syntax(flag: flags.Flag) -> str:
    """What a flag's value looks like: "an integer", "one of a, b", "true or false", or ""."""
    if isinstance(flag.parser, flags.BooleanParser):
        return "true or false"
    if isinstance(flag.parser, flags.EnumParser):
        return "one of " + ", ".join(flag.parser.enum_values)
    return flag.parser.syntactic_help


def tool_help(module: str) -> str:
    """`module`'s docstring and the flags defined by it and by this module, with their help."""
    key = sys.argv[0] if module == "__main__" else module  # absl's name for the main module
    by_module = flags.FLAGS.flags_by_module_dict()
    own = {flag.name: flag for name in (key, __name__) for flag in by_module.get(name, [])}
    lines = [(sys.modules[module].__doc__ or "").strip(), "", "flags:"]
    for name in sorted(own):
        lines.append(_describe(own[name]))
    lines += ["", "--helpfull lists every flag, absl's and TensorFlow's included."]
    return "\n".join(lines)


def _describe(flag: flags.Flag) -> str:
    """`--name: help (required | default: value)`, wrapped and indented."""
    text = f"--{flag.name}: {flag.help}"
    if any(_REQUIRED in validator.message for validator in flag.validators):
        text += " (required)"
    elif flag.default not in (None, "", []):
        text += f" (default: {flag.default!r})"
    if flag.parser.syntactic_help:  # "an integer", "a number" (absl puts enum values in help)
        text += f" ({flag.parser.syntactic_help})"
    return flags.text_wrap(text, indent="      ", firstline_indent="  ")


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


def define_model_dir(help: str = "Model directory written by t2t-train.") -> None:
    """Defines --model_dir (required, not empty)."""
    flags.DEFINE_string("model_dir", None, help, required=True)
    flags.register_validator("model_dir", bool, message="--model_dir must not be empty")


def define_checkpoint() -> None:
    """Defines --checkpoint, the weights to load from the model directory."""
    flags.DEFINE_string(
        "checkpoint",
        "",
        "latest, best, averaged, or a checkpoint path; default: averaged when as new as the "
        "latest checkpoint, else best, else latest.",
    )


def define_search() -> None:
    """Defines --beam_size and --alpha (t2t-translate, t2t-evaluate, t2t-export)."""
    flags.DEFINE_integer("beam_size", None, "Beam size (1 = greedy); default from the config.")
    flags.DEFINE_float("alpha", None, "Length penalty exponent; default from the config.")
    flag_at_least("beam_size", 1)


def define_translation() -> None:
    """Defines the flags of translating a file: model, checkpoint, search, batching, threads."""
    define_model_dir()
    define_checkpoint()
    define_search()
    flags.DEFINE_integer("batch_tokens", None, "Source tokens per batch; default from the config.")
    flag_at_least("batch_tokens", 1)
    define_decoding_threads()


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


def apply_decoding_flags() -> None:
    """Resolves --parallel_batches and --intra_threads for this machine (the flags then hold
    numbers) and sets TensorFlow up to decode that way (`t2t_lite.hardware.apply_decode_layout`:
    intra-op threads, Grappler off where each op has one thread); call before any TensorFlow
    op.

    Given numbers are kept; "auto" follows `t2t_lite.hardware.decode_layout`.
    """
    from t2t_lite.hardware import apply_decode_layout, decode_layout

    layout = decode_layout(
        parallel_batches=flags.FLAGS.parallel_batches, intra_threads=flags.FLAGS.intra_threads
    )
    flags.FLAGS.parallel_batches = layout.parallel_batches
    flags.FLAGS.intra_threads = layout.intra_threads
    apply_decode_layout(layout)
    logging.info("decoding: %s", layout.summary())
