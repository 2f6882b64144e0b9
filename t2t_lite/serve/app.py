"""The routes of `t2t-serve`: GET / (the page), POST /translate, GET /health, GET /metrics.

Every error is a JSON object `{"error": "..."}`, with `"limit"` naming the limit exceeded
(413, or 400 for an option above a limit) or `"option"` naming the option at fault (400).
POST /translate answers `{"results": [...], "seconds": S}`: one result per input line, in
order, each `{"translation": "..."}` plus the outputs asked for (`"score"` with
`"scores": true`) and, with n_best > 1, `"n_best"`: every hypothesis, best first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.resources
import json
import time
from collections.abc import Callable
from typing import Any

from absl import logging
from aiohttp import web

from t2t_lite.config import DecodeConfig
from t2t_lite.inference.alignment import format_alignment
from t2t_lite.inference.translator import Hypothesis
from t2t_lite.serve.batcher import Batcher, Stopping
from t2t_lite.serve.metrics import CONTENT_TYPE, Metrics
from t2t_lite.serve.request import Limits, RequestError, TranslationRequest, parse_request


@dataclasses.dataclass
class Service:
    """What the routes need.

    Attributes:
        batcher: translates requests (started and closed with the application).
        metrics: what GET /metrics reports.
        limits: what one request may ask for.
        defaults: option values set by the server's flags (None = the model's config).
        decode: the model's decoding config.
        model: what GET /health names as the model (its checkpoint).
    """

    batcher: Batcher
    metrics: Metrics
    limits: Limits
    defaults: dict[str, Any]
    decode: DecodeConfig
    model: str = ""


# Hypothesis attributes that are not JSON as they are: how the answer writes them.
_RENDER = {"alignment": format_alignment}


def _hypothesis(hypothesis: Hypothesis, outputs: tuple[str, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {"translation": hypothesis.text}
    for name in outputs:
        value = getattr(hypothesis, name)
        result[name] = _RENDER[name](value) if name in _RENDER else value
    return result


def answer(request: TranslationRequest, hypotheses: list[list[Hypothesis]]) -> list[dict]:
    """The JSON results of a request: one per line, in order."""
    results = []
    for hyps in hypotheses:
        result = _hypothesis(hyps[0], request.outputs)
        if request.kwargs["n_best"] > 1:
            result["n_best"] = [_hypothesis(h, request.outputs) for h in hyps]
        results.append(result)
    return results


def _route(request: web.Request) -> str:
    """The route's path for metric labels (one label value per route, whatever the URL)."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "other"
    return info.route.resource.canonical


def create_app(service: Service) -> web.Application:
    """The aiohttp application; it starts and closes `service.batcher` with itself."""
    metrics = service.metrics

    @web.middleware
    async def errors_and_metrics(request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            response = await handler(request)
        except RequestError as e:
            response = web.json_response(e.body(), status=e.status)
        except web.HTTPException as e:  # no such route or method
            response = web.json_response({"error": e.reason}, status=e.status)
            if "Allow" in e.headers:
                response.headers["Allow"] = e.headers["Allow"]
        except asyncio.CancelledError:  # the client went away
            metrics.requests.inc(path=_route(request), status="cancelled")
            raise
        metrics.requests.inc(path=_route(request), status=str(response.status))
        return response

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_PAGE, content_type="text/html", charset="utf-8")

    async def translate(request: web.Request) -> web.Response:
        start = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(
                413,
                f"the body is larger than max_body_bytes={service.limits.max_body_bytes}",
                limit="max_body_bytes",
                max_body_bytes=service.limits.max_body_bytes,
            ) from None
        parsed = parse_request(body, service.limits, service.defaults, service.decode)
        try:
            hypotheses = await service.batcher.translate(parsed)
        except Stopping as e:
            return web.json_response({"error": str(e)}, status=503)
        except Exception as e:
            logging.exception("translation failed")
            return web.json_response({"error": f"translation failed: {e}"}, status=500)
        seconds = time.perf_counter() - start
        metrics.sentences.inc(len(parsed.lines))
        metrics.latency.observe(seconds)
        return web.json_response(
            {"results": answer(parsed, hypotheses), "seconds": seconds}, dumps=_dumps
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "model": service.model, "queue": service.batcher.waiting}
        )

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def start_batcher(app: web.Application) -> None:
        service.batcher.start()

    async def close_batcher(app: web.Application) -> None:
        await service.batcher.close()

    app = web.Application(
        middlewares=[errors_and_metrics], client_max_size=service.limits.max_body_bytes
    )
    app.router.add_get("/", page)
    app.router.add_post("/translate", translate)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", prometheus)
    app.on_startup.append(start_batcher)
    app.on_cleanup.append(close_batcher)  # after the requests in flight are answered
    return app


_dumps = functools.partial(json.dumps, ensure_ascii=False)  # UTF-8 text, not \u escapes
_PAGE = importlib.resources.files("t2t_lite.serve").joinpath("index.html").read_text("utf-8")
