"""Inference: batched cached beam and greedy search, the Translator, streaming file
translation, and BLEU/chrF scoring."""
