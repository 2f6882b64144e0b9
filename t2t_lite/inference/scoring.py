"""Corpus BLEU and chrF with sacreBLEU, the numbers every report in t2t_lite uses."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """sacreBLEU BLEU (13a tokenization, cased) and chrF of detokenized text, with signatures.

    Returns:
        `{"bleu", "bleu_signature", "chrf", "chrf_signature"}`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu": round(bleu_score.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf": round(chrf_score.score, 2),
        "chrf_signature": str(chrf.get_signature()),
    }
