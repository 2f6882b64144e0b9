"""t2t-serve: an HTTP translation service over a model directory, with dynamic batching.

    t2t-serve --model_dir=runs/m30k [--port=8080] [--host=127.0.0.1]
    curl -s localhost:8080/translate -d '{"text": ["A dog runs.", "Two men talk."]}'

POST /translate takes {"text": "..."} or {"text": [...]} and the per-request decoding options
(beam_size, alpha, n_best, sampling_topk, sampling_topp, sampling_temperature, seed,
no_repeat_ngram_size, repetition_penalty, target_prefix, scores, alignments); GET / is a page
to try it, GET /health and GET /metrics (Prometheus) report on the server. Requests arriving within
--batch_window_ms are translated together. SIGTERM: stop accepting, answer what is in flight,
exit 0. See docs/serving.md.
"""

from absl import flags, logging

from t2t_lite.cli import common

FLAGS = flags.FLAGS
common.define_model_dir()
common.define_checkpoint()
common.define_search()
common.define_decoding_threads()
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8080, "Port to listen on (0: any free port, logged).")
flags.DEFINE_float(
    "batch_window_ms", 5.0, "How long the oldest waiting request waits for others to join it."
)
flags.DEFINE_integer("max_batch_sentences", 64, "Sentences per batch, from all requests.")
flags.DEFINE_integer("max_batch_tokens", 2048, "Source pieces per batch, from all requests.")
flags.DEFINE_integer("max_body_bytes", 1 << 20, "Largest request body (413 above).")
flags.DEFINE_integer("max_lines", 256, "Lines per request (413 above).")
flags.DEFINE_integer("max_chars", 2000, "Characters per line (413 above).")
flags.DEFINE_integer("max_beam_size", 16, "Largest beam_size and n_best a request may ask (400).")
flags.DEFINE_float("shutdown_timeout", 60.0, "Seconds the requests in flight get after SIGTERM.")
flags.register_validator("port", lambda v: 0 <= v <= 65535, message="--port must be in [0, 65535]")
flags.register_validator(
    "batch_window_ms", lambda v: v >= 0, message="--batch_window_ms must be >= 0"
)
for _name in ("max_batch_sentences", "max_batch_tokens", "max_body_bytes", "max_lines",
              "max_chars", "max_beam_size"):  # fmt: skip
    common.flag_at_least(_name, 1)


def main(argv):
    del argv
    common.apply_decoding_flags()
    from t2t_lite.inference.translator import Translator
    from t2t_lite.model_dir import load_model
    from t2t_lite.serve import server
    from t2t_lite.serve.request import Limits

    model, cfg, src_vocab, tgt_vocab, prefix = load_model(FLAGS.model_dir, FLAGS.checkpoint)
    logging.info("serving %s", prefix)
    settings = server.ServeSettings(
        host=FLAGS.host,
        port=FLAGS.port,
        window_ms=FLAGS.batch_window_ms,
        max_batch_sentences=FLAGS.max_batch_sentences,
        max_batch_tokens=FLAGS.max_batch_tokens,
        parallel_batches=FLAGS.parallel_batches,
        limits=Limits(
            max_body_bytes=FLAGS.max_body_bytes,
            max_lines=FLAGS.max_lines,
            max_chars=FLAGS.max_chars,
            max_beam_size=FLAGS.max_beam_size,
        ),
        defaults={"beam_size": FLAGS.beam_size, "alpha": FLAGS.alpha},
        shutdown_timeout=FLAGS.shutdown_timeout,
    )
    server.run(Translator(model, src_vocab, tgt_vocab, cfg.decode), settings, model=prefix)


def run():
    common.run("t2t-serve", main)


if __name__ == "__main__":
    run()
