"""Normalisation and WER / CER on Vietnamese text with diacritics."""

import unicodedata

import pytest

from workflow_scripts.asr.text import NormalizeConfig, normalize_text, number_to_words, score_transcripts

DEFAULT = NormalizeConfig(abbreviations={"tp.hcm": "thành phố hồ chí minh", "tp": "thành phố", "%": "phần trăm"})


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "không"),
        (5, "năm"),
        (10, "mười"),
        (15, "mười lăm"),
        (21, "hai mươi mốt"),
        (25, "hai mươi lăm"),
        (40, "bốn mươi"),
        (105, "một trăm lẻ năm"),
        (110, "một trăm mười"),
        (1005, "một nghìn không trăm lẻ năm"),
        (2024, "hai nghìn không trăm hai mươi bốn"),
        (1500, "một nghìn năm trăm"),
        (1_000_000, "một triệu"),
        (3_000_021, "ba triệu không trăm hai mươi mốt"),
        (2_000_000_000, "hai tỷ"),
    ],
)
def test_number_to_words_reads_vietnamese(number, words):
    assert number_to_words(number) == words


def test_diacritics_survive_and_decomposed_input_equals_precomposed():
    precomposed = "Hôm nay trời đẹp quá!"
    decomposed = unicodedata.normalize("NFD", precomposed)
    assert decomposed != precomposed
    assert normalize_text(decomposed, DEFAULT) == normalize_text(precomposed, DEFAULT) == "hôm nay trời đẹp quá"


def test_numbers_abbreviations_punctuation():
    text = "Năm 2024, giá ở TP.HCM tăng 3,5% (tức 1.000.000 đồng)."
    assert normalize_text(text, DEFAULT) == (
        "năm hai nghìn không trăm hai mươi bốn giá ở thành phố hồ chí minh tăng ba phẩy năm phần trăm"
        " tức một triệu đồng"
    )
    # The longer abbreviation wins; the shorter still applies on its own, but not inside words.
    assert normalize_text("TP Huế, tphcm", DEFAULT) == "thành phố huế tphcm"


def test_each_step_can_be_switched_off():
    config = NormalizeConfig(lowercase=False, remove_punctuation=False, numbers_to_words=False)
    assert normalize_text("  Tôi có 2 con mèo.  ", config) == "Tôi có 2 con mèo."
    with pytest.raises(ValueError, match=r"unknown keys \['strip_accents'\]"):
        NormalizeConfig.from_dict({"lowercase": True, "strip_accents": True})
    # A block comes validated, the schema's defaults filled in: code supplies none of its own.
    with pytest.raises(ValueError, match=r"missing keys \['abbreviations', 'numbers_to_words'\]"):
        NormalizeConfig.from_dict({"lowercase": True, "remove_punctuation": True})


def test_wer_and_cer_count_diacritic_errors_after_normalisation():
    references = ["Tôi đi học.", "Hôm nay trời đẹp"]
    hypotheses = ["tôi đi hoc", "hôm nay trời rất đẹp"]
    scores = score_transcripts(references, hypotheses, DEFAULT)
    # "học" -> "hoc": one substitution (a tone mark is a different word); "rất": one insertion.
    assert scores["words"] == {"reference": 7, "hits": 6, "substitutions": 1, "deletions": 0, "insertions": 1}
    assert scores["wer"] == pytest.approx(2 / 7)
    # Characters: "ọ" -> "o" is one substitution; "rất " four insertions, over 10 + 16 reference characters.
    assert scores["characters"]["reference"] == 26
    assert scores["cer"] == pytest.approx(5 / 26)
    assert scores["exact_match"] == 0.0


def test_identical_up_to_normalisation_scores_zero_and_empty_references_are_skipped():
    scores = score_transcripts(["Tôi có 2 con mèo!", "..."], ["tôi có hai con mèo", "ừ"], DEFAULT)
    assert scores["wer"] == 0.0 and scores["cer"] == 0.0
    assert scores["n_utterances"] == 2 and scores["n_scored"] == 1 and scores["n_skipped_empty_reference"] == 1
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        score_transcripts(["a", "b"], ["a"], DEFAULT)


def test_abbreviations_of_equal_length_apply_in_alphabetical_order_whatever_the_config_order():
    # "a." and ".b" overlap in "a.b": the alphabetically first of two equally long keys (".b") wins.
    forward = NormalizeConfig(abbreviations={"a.": "x", ".b": "y"})
    backward = NormalizeConfig(abbreviations={".b": "y", "a.": "x"})
    assert normalize_text("a.b", forward) == normalize_text("a.b", backward) == "a y"
