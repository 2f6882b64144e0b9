"""score_translations: sacreBLEU's corpus BLEU and chrF, rounded, with their signatures."""

import pytest
import sacrebleu

from t2t_lite.inference.scoring import score_translations

HYPOTHESES = ["The cat sat on the mat.", "A dog runs in the park!", "Zwei Männer gehen."]
REFERENCES = ["The cat sat on the mat.", "The dog runs in a park!", "Zwei Frauen gehen nach Hause."]


def test_scores_match_sacrebleu_on_a_known_pair():
    scores = score_translations(HYPOTHESES, REFERENCES)
    bleu = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES])
    chrf = sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES])
    assert 0 < scores["bleu"] < 100 and 0 < scores["chrf"] < 100
    assert scores["bleu"] == round(bleu.score, 2)
    assert scores["chrf"] == round(chrf.score, 2)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    assert scores["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|")
    assert scores["bleu_signature"].endswith(f"|version:{sacrebleu.__version__}")
    # Cased: lower-casing the hypotheses lowers both scores.
    lowered = score_translations([h.lower() for h in HYPOTHESES], REFERENCES)
    assert lowered["bleu"] < scores["bleu"] and lowered["chrf"] < scores["chrf"]


def test_identical_text_scores_100():
    scores = score_translations(REFERENCES, REFERENCES)
    assert scores["bleu"] == 100.0 and scores["chrf"] == 100.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 hypotheses for 3 references"):
        score_translations(HYPOTHESES[:2], REFERENCES)
