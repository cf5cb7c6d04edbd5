"""TEFE architectures: widths, parameter counts against the formula, padding, checkpoints."""

from __future__ import annotations

import pytest
import torch

from tests.tefe_fixtures import TINY_MODELS
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.names import TEFE_ARCHITECTURES
from workflow_scripts.tefe.models import (
    TextEncoder,
    expected_parameter_counts,
    load_encoder,
    paper_comparison,
    parameter_counts,
    save_checkpoint,
)
from workflow_scripts.tefe.text import build_vocabulary, text_settings

torch.set_num_threads(1)

# Trainable parameters of the paper-sized bodies (1024-d input, two classes), worked out by hand:
# LSTM: 4 gates x (1024 x (1024 + 1024) weights + 2 x 1024 biases) + dense 1024 x 2 + 2.
HAND_COUNTED = {
    "CNN": 256 * (1024 * (3 + 4 + 5 + 6) + 4) + 4 * 2 * 256 + 1024 * 2 + 2,
    "LSTM": 4 * (1024 * 2048 + 2 * 1024) + 1024 * 2 + 2,
    "BiLSTM": 2 * 4 * (512 * 1536 + 2 * 512) + 1024 * 2 + 2,
    "BiLSTM_CNN": 2 * 4 * (512 * 1536 + 2 * 512) + 256 * (1024 * 18 + 4) + 4 * 2 * 256 + 1024 * 2 + 2,
}


@pytest.mark.parametrize("arch", TEFE_ARCHITECTURES)
def test_paper_sized_width_and_parameter_counts(arch):
    vocab_size = 57
    torch.manual_seed(0)
    model = TextEncoder(arch, torch.randn(vocab_size, 1024), 2, block_defaults(f"tefe.models.{arch}")).eval()
    ids = torch.tensor([[5, 9, 3, 0, 0], [7, 2, 8, 11, 4]])
    lengths = torch.tensor([3, 5])
    with torch.no_grad():
        sentence, states, mask = model.encode(ids, lengths)
        logits = model(ids, lengths)
    assert model.feature_dim == 1024
    assert sentence.shape == (2, 1024) and states.shape == (2, 5, 1024) and logits.shape == (2, 2)
    assert mask.tolist() == [[True, True, True, False, False], [True] * 5]
    counts = parameter_counts(model)
    assert counts == expected_parameter_counts(arch, vocab_size, 1024, 2, block_defaults(f"tefe.models.{arch}"))
    assert counts["trainable"] == HAND_COUNTED[arch]
    assert counts["frozen"] == vocab_size * 1024  # the embedding, and only the embedding
    assert not model.embedding.weight.requires_grad


@pytest.mark.parametrize("arch", TEFE_ARCHITECTURES)
def test_formula_matches_model_for_other_sizes(arch):
    settings = TINY_MODELS[arch]
    model = TextEncoder(arch, torch.randn(23, 12), 3, settings)
    assert parameter_counts(model) == expected_parameter_counts(arch, 23, 12, 3, settings)


def test_paper_totals_imply_one_vocabulary():
    # CNN, LSTM and BiLSTM totals of the paper all fit one vocabulary of about 3,744 words ...
    implied = {
        a: paper_comparison(a, 100, 1024, 2, block_defaults(f"tefe.models.{a}"))["paper_implied_vocabulary"]
        for a in ("CNN", "LSTM", "BiLSTM")
    }
    assert all(3735 <= v <= 3755 for v in implied.values()), implied
    # ... and BiLSTM_CNN's fits it only with 256 units per direction, not 512.
    paper_sizes = block_defaults("tefe.models.BiLSTM_CNN")
    assert paper_comparison("BiLSTM_CNN", 100, 1024, 2, paper_sizes)["paper_implied_vocabulary"] < 0
    narrow = {**paper_sizes, "units": 256}
    assert 3735 <= paper_comparison("BiLSTM_CNN", 100, 1024, 2, narrow)["paper_implied_vocabulary"] <= 3755


@pytest.mark.parametrize("arch", TEFE_ARCHITECTURES)
def test_padding_changes_nothing(arch):
    torch.manual_seed(1)
    model = TextEncoder(arch, torch.randn(30, 12), 2, TINY_MODELS[arch])
    # Train-mode steps first, so BatchNorm running statistics are not the identity.
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        ids = torch.randint(2, 30, (6, 7))
        loss = model(ids, torch.tensor([7, 5, 3, 1, 6, 2])).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    short = torch.tensor([[4, 8, 15]])
    padded = torch.tensor([[4, 8, 15, 0, 0, 0, 0, 0], [16, 23, 4, 2, 9, 11, 3, 7]])
    with torch.no_grad():
        alone, alone_states, _ = model.encode(short, torch.tensor([3]))
        batched, batched_states, mask = model.encode(padded, torch.tensor([3, 8]))
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched_states[0, :3], alone_states[0], rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(batched_states[0, 3:]) == 0  # padding positions carry nothing


def test_checkpoint_round_trip(tmp_path):
    settings = text_settings(block_defaults("tefe.text", {"max_length": 5}))
    vocab = build_vocabulary(["tôi đi chợ", "tôi buồn lắm"], settings)
    torch.manual_seed(2)
    model = TextEncoder("BiLSTM", torch.randn(len(vocab), 8), 2, TINY_MODELS["BiLSTM"]).eval()
    save_checkpoint(tmp_path / "model.pt", model, ["neutral", "negative"])
    vocab.save(tmp_path / "vocab.json")
    loaded, loaded_vocab, header = load_encoder(tmp_path / "model.pt", tmp_path / "vocab.json")
    assert header["arch"] == "BiLSTM" and header["classes"] == ["neutral", "negative"]
    ids = torch.tensor([[2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, torch.tensor([3])), model(ids, torch.tensor([3])), rtol=0, atol=0)
    other = build_vocabulary(["a b c d e f"], text_settings(block_defaults("tefe.text")))
    other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="other.json: 8 tokens, but the embedding"):
        load_encoder(tmp_path / "model.pt", tmp_path / "other.json")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: cannot read"):
        load_encoder(tmp_path / "junk.pt", tmp_path / "vocab.json")


def test_unknown_architecture_and_keys():
    with pytest.raises(ValueError, match="unknown TEFE architecture 'GRU'"):
        TextEncoder("GRU", torch.randn(5, 4), 2, {})
    with pytest.raises(ValueError, match=r"tefe.models.LSTM: unknown key\(s\) \['filters'\]"):
        TextEncoder("LSTM", torch.randn(5, 4), 2, {**block_defaults("tefe.models.LSTM"), "filters": 3})
    with pytest.raises(ValueError, match=r"tefe.models.LSTM: missing key\(s\) \['units'\]"):
        TextEncoder("LSTM", torch.randn(5, 4), 2, {"dropout": 0.5})
