"""A POST /translate body -> a checked `TranslationRequest`, or a `RequestError` to answer.

The body is JSON, `{"text": "..."}` or `{"text": ["...", ...]}`, plus options of
`t2t_lite.serve.options.OPTIONS`. Size limits answer 413 and name the limit; malformed input
(invalid UTF-8, invalid JSON, a wrong type, an unknown option, an option out of range)
answers 400 and names what is wrong.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

from t2t_lite.config import DecodeConfig
from t2t_lite.serve.options import OPTIONS, resolve

_solo = itertools.count()  # group keys of requests that are translated on their own


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for (every limit is also a `t2t-serve` flag)."""

    max_body_bytes: int = 1 << 20
    max_lines: int = 256
    max_chars: int = 2000
    max_beam_size: int = 16


class RequestError(Exception):
    """A request the server refuses: HTTP status, message, and the JSON fields that name the
    limit or option at fault."""

    def __init__(self, status: int, message: str, **fields: Any):
        super().__init__(message)
        self.status = status
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": str(self), **self.fields}


@dataclasses.dataclass
class TranslationRequest:
    """One checked request.

    Attributes:
        lines: the input texts (one entry for `{"text": "..."}`).
        single: "text" was a string, not a list.
        kwargs: `translate_nbest` keyword arguments, every option resolved.
        per_line: keyword -> one value per line (e.g. "target_prefixes").
        outputs: `Hypothesis` attributes each result carries besides the text.
        group: requests of equal groups may share a batch.
        solo: translated apart from other requests (a given sampling seed: its samples then do
            not depend on what else is in flight).
    """

    lines: list[str]
    single: bool
    kwargs: dict[str, Any]
    per_line: dict[str, list[Any]]
    outputs: tuple[str, ...]
    group: tuple

    @property
    def solo(self) -> bool:
        return self.group[0] == "solo"


def decode_body(body: bytes) -> dict[str, Any]:
    """UTF-8 JSON object -> dict; RequestError(400) naming the problem."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(
            400, f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    if not isinstance(data, dict):
        raise RequestError(400, 'expected a JSON object such as {"text": "..."}')
    return data


def _check_texts(name: str, texts: list[str], limits: Limits) -> None:
    if len(texts) > limits.max_lines:
        raise RequestError(
            413,
            f"{name} has {len(texts)} lines; max_lines is {limits.max_lines}",
            limit="max_lines",
            max_lines=limits.max_lines,
        )
    for i, line in enumerate(texts):
        if len(line) > limits.max_chars:
            raise RequestError(
                413,
                f"{name}[{i}] has {len(line)} characters; max_chars is {limits.max_chars}",
                limit="max_chars",
                max_chars=limits.max_chars,
            )


def parse_request(
    body: bytes, limits: Limits, defaults: dict[str, Any], decode: DecodeConfig
) -> TranslationRequest:
    """Checks a POST /translate body (its size is checked by the caller).

    Args:
        body: the raw body.
        limits: the server's limits.
        defaults: option values of the server's flags (None = the model's config).
        decode: the model's decoding config, the last default.

    Raises:
        RequestError: what to answer instead of a translation.
    """
    data = decode_body(body)
    unknown = sorted(set(data) - set(OPTIONS) - {"text"})
    if unknown:
        raise RequestError(
            400,
            f"unknown option {unknown[0]!r}; known: text, " + ", ".join(OPTIONS),
            option=unknown[0],
        )
    if "text" not in data:
        raise RequestError(400, 'missing "text": a string or a list of strings', option="text")
    text = data["text"]
    single = isinstance(text, str)
    lines = [text] if single else text
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise RequestError(400, '"text" must be a string or a list of strings', option="text")
    _check_texts("text", lines, limits)
    given, per_line, outputs = {}, {}, []
    for name, value in data.items():
        option = OPTIONS.get(name)
        if option is None:
            continue
        try:
            value = option.parse(value)
        except ValueError as e:
            raise RequestError(400, f"{name}: {e}", option=name) from None
        if option.per_line:
            values = [value] if isinstance(value, str) else value
            if isinstance(value, str) != single or len(values) != len(lines):
                raise RequestError(
                    400,
                    f'{name} must be {"a string" if single else "a list"} like "text", '
                    f"one entry per line",
                    option=name,
                )
            _check_texts(name, values, limits)
            per_line[option.kwarg] = values
        elif option.kwarg is not None:
            given[name] = value
        if option.output and value is True:
            outputs.append(option.output)
    try:
        kwargs = resolve(given, defaults, decode)
    except ValueError as e:
        raise RequestError(400, str(e), option=str(e).split("=")[0].split()[0]) from None
    for name in ("beam_size", "n_best"):
        if kwargs[name] > limits.max_beam_size:
            raise RequestError(
                400,
                f"{name}={kwargs[name]} exceeds max_beam_size={limits.max_beam_size}",
                limit="max_beam_size",
                max_beam_size=limits.max_beam_size,
            )
    sampling = kwargs["sampling_topk"] != 1
    if sampling and "seed" in given:
        group: tuple = ("solo", next(_solo))
    else:
        group = ("shared", tuple(sorted(kwargs.items())), tuple(sorted(per_line)))
    return TranslationRequest(lines, single, kwargs, per_line, tuple(outputs), group)
