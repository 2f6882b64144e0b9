"""The decoding options a POST /translate request may set: one table, one row per option.

Each row names the JSON key, how its value is checked, the keyword argument of
`Translator.translate_nbest` it becomes (None: it only shapes the answer), and the
`Hypothesis` attribute it adds to each result (`output`). Options that are one value per input
line (`per_line`) take a string for a single text or a list of one string per line.

Requests are merged into a batch only with requests whose resolved options are equal
(`TranslationRequest.group`), so every search runs with one setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from t2t_lite.config import DecodeConfig
from t2t_lite.inference.constraints import Constraints
from t2t_lite.inference.sampling import Sampling


def _integer(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _texts(value: Any) -> list[str] | str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("expected a string or a list of strings")


@dataclasses.dataclass(frozen=True)
class Option:
    """One per-request option.

    Attributes:
        name: the JSON key.
        parse: JSON value -> value; raises ValueError saying what was expected.
        kwarg: the `Translator.translate_nbest` keyword it sets (None: answer only).
        output: the `Hypothesis` attribute each result then carries (a boolean option).
        per_line: one value per input line (a list when "text" is a list).
        help: one line for the page and the docs.
    """

    name: str
    parse: Callable[[Any], Any]
    kwarg: str | None = None
    output: str | None = None
    per_line: bool = False
    help: str = ""


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("beam_size", _integer(1), "beam_size", help="beam size (1 = greedy search)"),
        Option("alpha", _number, "alpha", help="length penalty exponent"),
        Option("n_best", _integer(1), "n_best", help="hypotheses per line, best first"),
        Option("sampling_topk", _integer(0), "sampling_topk", help="sample from the K best"),
        Option("sampling_topp", _number, "sampling_topp", help="nucleus sampling mass"),
        Option("sampling_temperature", _number, "sampling_temperature", help="temperature"),
        Option("seed", _integer(0), "seed", help="random seed of sampling"),
        Option("no_repeat_ngram_size", _integer(0), "no_repeat_ngram_size", help="no n-gram twice"),
        Option("repetition_penalty", _number, "repetition_penalty", help="CTRL penalty"),
        Option(
            "target_prefix", _texts, "target_prefixes", per_line=True, help="start of the output"
        ),
        Option("scores", _boolean, output="score", help="add each hypothesis's score"),
        Option(
            "alignments",
            _boolean,
            "alignments",
            output="alignment",
            help="add source-target piece alignments (Pharaoh i-j pairs)",
        ),
    )
}


def resolve(given: dict[str, Any], defaults: dict[str, Any], decode: DecodeConfig) -> dict:
    """The full `translate_nbest` keyword arguments (per-line options excluded): each option's
    given value, else the server's default, else the model's `decode` config.

    Raises:
        ValueError: a value is out of range or does not fit with the others (the message
            names the option).
    """
    kwargs = {}
    for option in OPTIONS.values():
        if option.kwarg is None or option.per_line:
            continue
        if option.name in given:
            kwargs[option.kwarg] = given[option.name]
        elif defaults.get(option.name) is not None:
            kwargs[option.kwarg] = defaults[option.name]
        elif hasattr(decode, option.kwarg):
            kwargs[option.kwarg] = getattr(decode, option.kwarg)
    sampling = Sampling(
        kwargs["sampling_topk"], kwargs["sampling_topp"], kwargs["sampling_temperature"]
    )
    sampling.validate()
    Constraints(kwargs["no_repeat_ngram_size"], kwargs["repetition_penalty"]).validate()
    if sampling.enabled and kwargs["beam_size"] != 1:
        raise ValueError(
            f"sampling_topk={sampling.topk} samples and needs beam_size=1, "
            f"got beam_size={kwargs['beam_size']}"
        )
    if kwargs["n_best"] > kwargs["beam_size"] and not sampling.enabled:
        raise ValueError(f"n_best={kwargs['n_best']} exceeds beam_size={kwargs['beam_size']}")
    return kwargs
