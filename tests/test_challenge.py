"""The VLSP 2025 challenge's practice: SyER, the challenge score (Table 1 of the overview) and the
lexicon cue rules' matching (the rules in a workflow run: tests/test_fusion_workflow.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.asr.text import NormalizeConfig, score_transcripts, syllable_error_rate
from workflow_scripts.challenge.lexicon import apply_rules, first_match, fold, read_lexicon
from workflow_scripts.challenge.score import challenge_score
from workflow_scripts.common.names import base_variant, rules_variant

# The challenge overview's Table 1 (seed 001): (SyER, SER accuracy, score), all in %.
TABLE1 = [
    (9.07, 82.21, 88.31),
    (11.38, 79.13, 85.77),
    (12.66, 80.84, 85.39),
    (19.12, 79.50, 80.47),
    (25.22, 85.79, 78.08),
    (20.87, 66.50, 75.34),
    (23.56, 71.76, 75.04),
]
CLASSES = ["neutral", "negative"]
MATCH = {"ignore_case": True, "ignore_diacritics": False}


@pytest.mark.parametrize("syer,ser,score", TABLE1)
def test_challenge_score_reproduces_table1(syer, ser, score):
    assert abs(challenge_score(syer, ser) - score) <= 0.005


def test_challenge_score_refuses_non_percentages():
    with pytest.raises(ValueError, match="SER accuracy"):
        challenge_score(10.0, 101.0)
    with pytest.raises(ValueError, match="SyER"):
        challenge_score(float("nan"), 80.0)


def test_syer_counts_syllables_of_the_normalised_text():
    config = NormalizeConfig()
    scores = score_transcripts(["Tôi đi chợ, 2 lần!"], ["tôi đi chờ hai"], config)
    # reference syllables: tôi đi chợ hai lần (5); one substitution (chợ -> chờ), one deletion (lần)
    assert scores["syllables"]["reference"] == 5
    assert scores["syer"] == pytest.approx(2 / 5) == pytest.approx(scores["wer"])
    assert syllable_error_rate(["a b c"], ["a x c d"])["syer"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no syllable"):
        syllable_error_rate([""], ["a"])


def test_fold_handles_case_punctuation_and_diacritics():
    assert fold("Mày nói DỐI!", True, False) == ["mày", "nói", "dối"]
    assert fold("Mày nói DỐI!", True, True) == ["may", "noi", "doi"]
    assert fold("Đi đâu?", True, True) == ["di", "dau"]
    # A tone mark typed as a combining character equals the precomposed letter.
    assert fold("ma\u0300y", True, False) == ["mày"]


def test_rules_match_on_syllable_boundaries_first_rule_wins(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("# comment\nphrase\tclass\tnote\ntức giận\tnegative\tx\nmày\tnegative\t\nrất vui\tneutral\n")
    rules = read_lexicon(path, CLASSES, MATCH)
    assert [r.phrase for r in rules] == ["tức giận", "mày", "rất vui"]

    def matched(text, match=MATCH):
        index = first_match(fold(text, match["ignore_case"], match["ignore_diacritics"]), rules)
        return None if index is None else rules[index].phrase

    assert matched("Anh ấy rất TỨC GIẬN vì bị lừa") == "tức giận"
    assert matched("tức vì giận") is None  # not contiguous
    assert matched("cái máy này") is None  # "máy" is not "mày"
    assert matched("cái máy này", {"ignore_case": True, "ignore_diacritics": True}) is None  # lexicon folded as given
    assert matched("mày rất vui") == "mày"  # file order decides
    assert matched("mầy") is None and matched("mày.") == "mày"


def lexicon(directory, text: str):
    path = directory / "lexicon.tsv"
    path.write_text(text, encoding="utf-8")
    return read_lexicon(path, CLASSES, MATCH)


def test_apply_rules_reassigns_labels(tmp_path):
    rules = lexicon(tmp_path, "phrase\tclass\nghét\tnegative\nvui\tneutral\n")
    predicted = np.array([0, 0, 1])
    after, fired = apply_rules(["tôi ghét nó", "hôm nay", "vui quá"], predicted, rules, CLASSES, MATCH)
    assert after.tolist() == [1, 0, 0] and fired == [0, None, 1] and predicted.tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    "text,message",
    [
        ("word\tclass\nmày\tnegative\n", "header"),
        ("phrase\tclass\nmày\tangry\n", "line 2: class 'angry'"),
        ("phrase\tclass\nmày\tnegative\nMÀY\tnegative\n", "same syllables"),
        ("phrase\tclass\n!!\tnegative\n", "no syllable"),
        ("phrase\tclass\n", "no phrase"),
    ],
)
def test_bad_lexicons_fail_naming_the_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        lexicon(tmp_path, text)


def test_rules_variant_names():
    assert rules_variant("hybrid") == "hybrid+rules" and base_variant("hybrid+rules") == "hybrid"
    assert base_variant("late") == "late"
    with pytest.raises(ValueError):
        rules_variant("hybrid+rules")
    with pytest.raises(ValueError):
        base_variant("Hybrid row+rules")


def test_paired_bootstrap_difference_of_two_predictions():
    from workflow_scripts.common.metrics import paired_bootstrap_difference

    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    before = np.array([0, 1, 1, 0, 1, 0, 0, 0])  # 5 / 8 right
    after = np.array([0, 0, 1, 1, 1, 0, 0, 0])  # 7 / 8 right
    result = paired_bootstrap_difference(y, before, after, 2, {"resamples": 200, "confidence": 0.9, "seed": 1})
    assert result["WA"]["difference"] == pytest.approx(2 / 8)
    low, high = result["WA"]["ci"]
    assert 0 <= low <= 2 / 8 <= high  # "after" is never worse on any resample


def test_challenge_effects_benchmark_intervals():
    """benchmarks/challenge_effects.py: error rates of resamples, paired differences, the joint score."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "challenge_effects", Path(__file__).resolve().parents[1] / "benchmarks" / "challenge_effects.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bootstrap = {"resamples": 400, "confidence": 0.95, "seed": 3}
    before = {"errors": np.array([0.0, 1.0, 2.0, 0.0, 1.0]), "words": np.array([4.0, 5.0, 4.0, 6.0, 5.0])}
    after = {"errors": before["errors"] * 0, "words": before["words"]}
    rate = module.error_rate(before, bootstrap)
    assert rate["rate"] == pytest.approx(4 / 24) and rate["ci"][0] <= rate["rate"] <= rate["ci"][1]
    same = module.paired_error_rate_difference(before, before, bootstrap)
    assert same == {"difference": 0.0, "ci": [0.0, 0.0]}
    better = module.paired_error_rate_difference(before, after, bootstrap)
    assert better["difference"] == pytest.approx(-4 / 24) and better["ci"][1] <= 0
    correct = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    low, high = module.joint_score_interval(before, correct, (0.7, 0.3), bootstrap)
    assert low <= challenge_score(100 * 4 / 24, 80.0) <= high
