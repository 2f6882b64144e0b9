"""POST /translate, /health and /metrics of a real server on a free loopback port."""

import asyncio
import json
import re

import aiohttp
import pytest

from tests.serve.conftest import LIMITS, request

SENTENCES = ["a dog runs", "the red ball", "two men talk in the park", "", "a cat sits"]


def test_text_string_and_list_answer_one_result_per_line_in_order(server, translator):
    status, headers, body = request(server.url + "/translate", {"text": SENTENCES})
    assert status == 200, body
    assert headers.get_content_type() == "application/json"
    assert [r["translation"] for r in body["results"]] == translator.translate(SENTENCES)
    assert body["results"][3] == {"translation": ""}
    assert body["seconds"] > 0
    status, _, body = request(server.url + "/translate", {"text": "a dog runs"})
    assert status == 200
    assert body["results"] == [{"translation": translator.translate(["a dog runs"])[0]}]
    status, _, body = request(server.url + "/translate", {"text": []})
    assert (status, body["results"]) == (200, [])


def test_options_scores_n_best_and_target_prefix(server, translator):
    lines, prefixes = ["a dog runs", "a cat"], ["", "x"]
    body = {"text": lines, "n_best": 2, "scores": True, "target_prefix": prefixes}
    status, _, body = request(server.url + "/translate", body)
    assert status == 200, body
    expected = translator.translate_nbest(lines, n_best=2, target_prefixes=prefixes)
    for result, hyps in zip(body["results"], expected, strict=True):
        assert [h["translation"] for h in result["n_best"]] == [h.text for h in hyps]
        assert [h["score"] for h in result["n_best"]] == pytest.approx([h.score for h in hyps])
        assert result["translation"] == hyps[0].text
        assert result["score"] == pytest.approx(hyps[0].score)


def test_alignments_are_pharaoh_pairs_of_the_translator(server, translator):
    lines = ["a dog runs", "two men talk to a dog"]
    status, _, body = request(server.url + "/translate", {"text": lines, "alignments": True})
    assert status == 200, body
    expected = translator.translate_nbest(lines, alignments=True)
    for result, hyps in zip(body["results"], expected, strict=True):
        assert result["translation"] == hyps[0].text
        assert result["alignment"] == " ".join(f"{i}-{j}" for i, j in hyps[0].alignment)
    status, _, body = request(server.url + "/translate", {"text": "a", "alignments": "yes"})
    assert (status, body["option"]) == (400, "alignments")


def test_concurrent_clients_each_get_their_own_lines_in_order(server, translator):
    clients = [[f"client {i} line {j} " + "word " * (i % 5) for j in range(3)] for i in range(16)]
    expected = translator.translate([line for lines in clients for line in lines])
    before = _metric(server.url, "t2t_batch_sentences_count")

    async def go():
        async with aiohttp.ClientSession() as session:

            async def one(lines):
                async with session.post(server.url + "/translate", json={"text": lines}) as r:
                    assert r.status == 200
                    return [result["translation"] for result in (await r.json())["results"]]

            return await asyncio.gather(*(one(lines) for lines in clients))

    answers = asyncio.run(go())
    assert [line for lines in answers for line in lines] == expected
    batches = _metric(server.url, "t2t_batch_sentences_count") - before
    assert batches < len(clients)  # requests were merged


def test_a_client_that_disconnects_does_not_break_the_batch_it_was_in(server, translator):
    lines = [f"sentence number {i} of the one who leaves" for i in range(LIMITS.max_lines)]

    async def go():
        # A raw request whose connection closes as soon as it is sent.
        body = json.dumps({"text": lines}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        async with aiohttp.ClientSession() as session:
            stay = asyncio.ensure_future(
                session.post(server.url + "/translate", json={"text": ["a dog runs", "a cat"]})
            )
            await asyncio.sleep(0.01)
            writer.close()
            response = await stay
            return response.status, await response.json()

    status, body = asyncio.run(go())
    assert status == 200
    assert [r["translation"] for r in body["results"]] == translator.translate(
        ["a dog runs", "a cat"]
    )
    assert request(server.url + "/health")[0] == 200
    assert request(server.url + "/translate", {"text": "a dog runs"})[0] == 200
    metrics = request(server.url + "/metrics")[2]
    assert 't2t_requests_total{path="/translate",status="cancelled"} 1' in metrics


# (body, status, the field naming the fault, a piece of the message)
ERRORS = [
    (b"x" * (LIMITS.max_body_bytes + 1), 413, ("limit", "max_body_bytes"), "max_body_bytes"),
    ({"text": ["a"] * (LIMITS.max_lines + 1)}, 413, ("limit", "max_lines"), "9 lines"),
    ({"text": ["a", "b" * (LIMITS.max_chars + 1)]}, 413, ("limit", "max_chars"), "text[1]"),
    ({"text": "a", "beam_size": 5}, 400, ("limit", "max_beam_size"), "beam_size=5"),
    (b'{"text": "a dog', 400, None, "invalid JSON"),
    (b'{"text": "\xff\xfe"}', 400, None, "not valid UTF-8 (byte 10)"),
    (b'["a dog"]', 400, None, "JSON object"),
    ({"txt": "a"}, 400, ("option", "txt"), "unknown option 'txt'"),
    ({"text": "a", "beam": 2}, 400, ("option", "beam"), "unknown option 'beam'"),
    ({}, 400, ("option", "text"), 'missing "text"'),
    ({"text": ["a", 1]}, 400, ("option", "text"), "list of strings"),
    ({"text": "a", "beam_size": "4"}, 400, ("option", "beam_size"), "expected an integer"),
    ({"text": "a", "scores": 1}, 400, ("option", "scores"), "true or false"),
    ({"text": "a", "sampling_topk": 5}, 400, ("option", "sampling_topk"), "beam_size=1"),
    ({"text": "a", "n_best": 3, "beam_size": 2}, 400, ("option", "n_best"), "exceeds"),
    ({"text": "a", "sampling_topp": 0}, 400, ("option", "sampling_topp"), "(0, 1]"),
    ({"text": ["a"], "target_prefix": "x"}, 400, ("option", "target_prefix"), "a list"),
]


@pytest.mark.parametrize("body,status,field,message", ERRORS)
def test_errors_are_json_and_name_the_limit_or_option(server, body, status, field, message):
    answer_status, headers, answer = request(server.url + "/translate", body)
    assert answer_status == status, answer
    assert headers.get_content_type() == "application/json"
    assert message in answer["error"]
    if field is not None:
        assert answer[field[0]] == field[1]


def test_unknown_route_and_method_are_json_errors(server):
    assert request(server.url + "/nope")[0::2] == (404, {"error": "Not Found"})
    status, headers, body = request(server.url + "/translate")
    assert (status, body, headers["Allow"]) == (405, {"error": "Method Not Allowed"}, "POST")


def test_health(server):
    status, _, body = request(server.url + "/health")
    assert (status, body) == (200, {"status": "ok", "model": "tiny", "queue": 0})


_NAME = "[a-z_][a-z0-9_]*"
_SAMPLE = re.compile(
    rf'^({_NAME})(\{{{_NAME}="[^"]*"(,{_NAME}="[^"]*")*\}})? (-?[0-9.e+-]+|\+Inf)$'
)


def _metric(url: str, name: str) -> float:
    text = request(url + "/metrics")[2]
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_metrics_are_prometheus_text(server):
    request(server.url + "/translate", {"text": ["a dog runs", "a cat"]})
    request(server.url + "/translate", {"text": "a", "beam": 1})
    status, headers, text = request(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    declared, buckets = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            declared[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, line
        name = match.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in declared or declared.get(base) == "histogram", line
        if name.endswith("_bucket"):
            buckets.setdefault(base, []).append(float(match.group(4)))
    assert declared == {
        "t2t_requests_total": "counter",
        "t2t_sentences_total": "counter",
        "t2t_batch_sentences": "histogram",
        "t2t_request_seconds": "histogram",
        "t2t_queue_sentences": "gauge",
    }
    for base, counts in buckets.items():
        assert counts == sorted(counts)  # cumulative
        assert counts[-1] == _metric(server.url, base + "_count")
    assert 't2t_requests_total{path="/translate",status="200"}' in text
    assert 't2t_requests_total{path="/translate",status="400"}' in text
    assert _metric(server.url, "t2t_sentences_total") >= 2
    assert _metric(server.url, "t2t_queue_sentences") == 0
