"""`t2t-serve`: an HTTP translation service with dynamic batching.

options.py  the per-request decoding options: JSON name -> check -> Translator keyword
request.py  a POST /translate body -> a checked `TranslationRequest`, or a `RequestError`
batcher.py  merges concurrent requests into bounded, fair, token-budget batches
metrics.py  counters and histograms in the Prometheus text format
app.py      the routes (/, /translate, /health, /metrics) and JSON errors
server.py   loads the model, serves until SIGTERM, then finishes what is in flight
"""
