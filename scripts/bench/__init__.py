"""Benchmarks of t2t_lite, one module per subject; run them through `scripts/benchmark.py`."""
