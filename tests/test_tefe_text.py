"""TEFE text preparation: normalisation, tokens, vocabulary, id sequences."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.tefe.text import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    Vocabulary,
    build_vocabulary,
    normalize_text,
    text_settings,
    tokenize,
)

SETTINGS = text_settings(block_defaults("tefe.text", {"max_length": 6}))


def test_normalisation_lowercases_and_keeps_diacritics():
    assert normalize_text("  Tôi RẤT  Tức GIẬN vì Bị Lừa Tiền! ") == "tôi rất tức giận vì bị lừa tiền!"
    # Decomposed input (combining marks) ends up as the same precomposed NFC text.
    decomposed = unicodedata.normalize("NFD", "Đường PHỐ ồn ào")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert normalize_text(decomposed) == "đường phố ồn ào"
    assert tokenize(decomposed, SETTINGS) == ["đường", "phố", "ồn", "ào"]
    assert normalize_text("Tức Giận", lowercase=False) == "Tức Giận"


def test_punctuation_kept_or_dropped():
    text = "thật tuyệt vời, em gái tôi được khen rồi! 😡"
    words = ["thật", "tuyệt", "vời", "em", "gái", "tôi", "được", "khen", "rồi"]
    assert tokenize(text, SETTINGS) == words
    kept = tokenize(text, text_settings(block_defaults("tefe.text", {"punctuation": "keep"})))
    assert kept == ["thật", "tuyệt", "vời", ",", "em", "gái", "tôi", "được", "khen", "rồi", "!", "😡"]


def test_out_of_vocabulary_words_map_to_unk():
    vocab = build_vocabulary(["tôi đi chợ", "tôi buồn lắm", "anh ấy đi học"], SETTINGS)
    assert vocab.tokens[:2] == [PAD, UNK]
    assert vocab.ids(["tôi", "bay", "giận"]) == [vocab.index["tôi"], UNK_ID, UNK_ID]
    ids, lengths = vocab.encode(["Tôi BAY đi chợ", "", "tôi đi chợ tôi đi chợ tôi đi"])
    assert ids.shape == (3, 6) and ids.dtype == np.int64
    assert ids[0].tolist() == [vocab.index["tôi"], UNK_ID, vocab.index["đi"], vocab.index["chợ"], PAD_ID, PAD_ID]
    assert lengths.tolist() == [4, 1, 6]  # an empty text is one <UNK>; long texts keep their first 6 tokens
    assert ids[1].tolist() == [UNK_ID] + [PAD_ID] * 5


def test_vocabulary_order_min_count_and_cap():
    texts = ["b a", "c a", "c a d", "b e"]  # counts: a 3, b 2, c 2, d 1, e 1
    vocab = build_vocabulary(texts, SETTINGS)
    assert vocab.tokens == [PAD, UNK, "a", "b", "c", "d", "e"]  # ties in order of first appearance
    assert build_vocabulary(texts, {**SETTINGS, "min_count": 2}).tokens == [PAD, UNK, "a", "b", "c"]
    assert build_vocabulary(texts, {**SETTINGS, "max_vocab": 4}).tokens == [PAD, UNK, "a", "b"]
    with pytest.raises(ValueError, match="empty vocabulary"):
        build_vocabulary(["a"], {**SETTINGS, "min_count": 5})


def test_vocabulary_round_trip(tmp_path):
    vocab = build_vocabulary(["mẹ tôi nấu cơm", "tôi buồn"], SETTINGS)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.tokens == vocab.tokens and loaded.settings == vocab.settings
    (tmp_path / "bad.json").write_text('{"tokens": ["a"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: not a TEFE vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="tefe.text.tokenizer"):
        text_settings({**SETTINGS, "tokenizer": "spacy"})
    with pytest.raises(ValueError, match="unknown key"):
        text_settings({**SETTINGS, "max_len": 3})


def test_pyvi_word_segmentation():
    settings = text_settings(block_defaults("tefe.text", {"tokenizer": "pyvi"}))
    tokens = tokenize("Bố tôi LÀM VIỆC ở văn phòng tối hôm qua.", settings)
    assert "làm_việc" in tokens and "văn_phòng" in tokens
    assert "." not in tokens and all(t == t.lower() for t in tokens)
