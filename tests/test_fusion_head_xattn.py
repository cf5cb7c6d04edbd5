"""The xattn head's fine-tuned text encoder (layer-wise AdamW), resuming a killed training, and
``predict --variant`` of its variants on the session's tiny run (conftest ``tiny_run``, built by
tests/head_fixtures.py: real SEFE frames of tones, a tiny TEFE encoder, heads trained through the
rule's entry point)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_fusion_heads import CLASSES, TINY, TRAINER, Linear, Toy

from workflow_scripts import predict
from workflow_scripts.common import paths
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.fusion.heads import trainer
from workflow_scripts.fusion.heads.xattn import CrossModalAttentionHead, TokenIds, load_head
from workflow_scripts.fusion.pooling import read_probabilities
from workflow_scripts.tefe.models import load_encoder

from conftest import PROJECT_ROOT
from head_fixtures import VARIANTS, head_file


def test_finetuned_text_encoder_starts_as_the_frozen_states_and_trains_at_its_own_rate(tiny_run):
    root, run, files, encoder = tiny_run
    tefe, vocab, _ = load_encoder(encoder["model"], encoder["vocab"])
    settings = {**TINY, "text_encoder": "finetune", "text_learning_rate": 0.003}
    head = CrossModalAttentionHead(5, tefe.feature_dim, 2, settings, text_encoder=tefe).eval()
    # Before training, the fine-tuned branch computes exactly the frozen token states.
    ids = TokenIds.from_transcripts(files["transcripts"]["dev"], files["manifests"]["dev"], vocab, {})
    frozen = SequenceFile(files["text"]["dev"])
    rows = np.arange(len(ids.utt_ids))
    tokens, lengths = ids.batch(rows)
    with torch.no_grad():
        _, states, _ = head.text_encoder.encode(tokens, lengths)
    for i, matrix in enumerate(frozen.read(frozen.positions(ids.utt_ids))):
        np.testing.assert_allclose(states[i, : int(lengths[i])].numpy(), matrix, atol=1e-6)
    # Layer-wise AdamW: the encoder's trainable layers at text_learning_rate, the rest at learning_rate;
    # the frozen word embedding and the unused class layer in neither group.
    groups = head.parameter_groups(0.01)
    assert [g["lr"] for g in groups] == [0.01, 0.003]
    text_ids = {id(p) for p in groups[1]["params"]}
    assert text_ids == {id(p) for n, p in tefe.named_parameters() if n.startswith("conv.")}
    assert not {id(head.text_encoder.embedding.weight), id(tefe.output.weight)} & {
        id(p) for g in groups for p in g["params"]
    }
    # After training: the saved head's encoder layers moved, its embedding and class layer did not.
    trained, header, saved_vocab = load_head(head_file(run, paths.HEAD_MODEL, variant="xattn_finetune"))
    assert saved_vocab.tokens == vocab.tokens and header["settings"]["text_encoder"] == "finetune"
    before = dict(tefe.named_parameters())
    after = dict(trained.text_encoder.named_parameters())
    assert not torch.equal(before["conv.convs.0.weight"], after["conv.convs.0.weight"])
    assert torch.equal(before["embedding.weight"], after["embedding.weight"])
    assert torch.equal(before["output.weight"], after["output.weight"])
    summary = json.loads(head_file(run, paths.HEAD_SUMMARY, variant="xattn_finetune").read_text())
    assert summary["text_encoder"]["arch"] == "CNN" and summary["resumed_after_epoch"] is None
    frozen_head, _, no_vocab = load_head(head_file(run, paths.HEAD_MODEL, variant="xattn"))
    assert frozen_head.text_encoder is None and no_vocab is None


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_predict_head_variant_gives_the_rule_probabilities(tiny_run, tmp_path, variant):
    root, run, files, _ = tiny_run
    manifest = pd.read_csv(files["manifests"]["public_test"], sep="\t")
    assert_predict_gives_the_rule(run, [str(PROJECT_ROOT / "config.yaml")], variant, manifest, tmp_path)


def assert_predict_gives_the_rule(run: Path, configs: list[str], variant: str, manifest: pd.DataFrame, tmp_path: Path):
    """predict --variant on the manifest's audio gives the rule's public_test probabilities (1e-5), no errors."""
    output = tmp_path / "predictions.csv"
    argv = ["--run-dir", str(run), "--configfile", *configs, "--variant", variant, "--output", str(output)]
    predict.main([*argv, "--hook", "asr=head_fixtures:fake_asr", *manifest["audio_path"]])
    predicted = pd.read_csv(output).assign(utt_id=lambda f: f["path"].map(lambda p: Path(p).stem)).set_index("utt_id")
    where = head_file(run, paths.VARIANT_PROBABILITIES, variant=variant, split="public_test")
    utt_ids, probabilities = read_probabilities(where, CLASSES)
    rule = pd.DataFrame(probabilities, index=utt_ids).loc[predicted.index].to_numpy()
    np.testing.assert_allclose(predicted[[f"p_{c}" for c in CLASSES]].to_numpy(), rule, atol=1e-5)
    assert (predicted["error"].isna() | (predicted["error"] == "")).all()


def test_predict_names_a_missing_head_and_an_unknown_variant(tiny_run, tmp_path):
    _, run, _, _ = tiny_run
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    from workflow_scripts.config import validate_config

    validate_config(config, PROJECT_ROOT / "schemas" / "config.schema.yaml")
    missing = predict.missing_artifacts(config, run, predict.STAGE_FACTORIES, "xattn_mean")
    # The head (not trained in this run) and the fine-tuned ASR model; the TEFE encoder is there.
    assert "rule train_xattn: snakemake results/systems/finetuned/fusion/heads/xattn_mean/model.pt" in missing[0]
    assert len(missing) == 2 and "rule finetune_whisper" in missing[1]
    with pytest.raises(SystemExit, match="--variant 'fancy'; expected hybrid or a head variant"):
        predict.head_variant(config, "fancy")


class CrashingSource(Toy):
    """A selection split whose scoring fails on its ``crash_at``-th pass: a job killed mid-training."""

    def __init__(self, x, y, crash_at):
        super().__init__(x, y)
        self.calls, self.crash_at = 0, crash_at

    def batches(self, rows, batch_size):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("simulated kill")
        yield from super().batches(rows, batch_size)


# cosine: the schedule's step count is part of the saved state too.
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_killed_training_resumes_after_its_last_epoch_to_the_same_result(tmp_path, schedule):
    rng = np.random.default_rng(0)
    y = np.arange(48) % 2
    train = Toy((y * 2.0 - 1.0 + 0.8 * rng.standard_normal(48))[:, None], y)
    x_sel = (y[:16] * 2.0 - 1.0 + 0.8 * rng.standard_normal(16))[:, None]
    block = {**TRAINER, "epochs": 6, "patience": 6, "monitor": "loss", "batch_size": 8, "learning_rate": 0.05}
    block.update(seed=3, lr_schedule=schedule)

    def strip(report):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in report["history"]]

    full_model, full = trainer.fit(Linear, train, Toy(x_sel, y[:16]), CLASSES, block)
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="simulated kill"):
        trainer.fit(Linear, train, CrashingSource(x_sel, y[:16], 4), CLASSES, block, "h", work, "run-a")
    assert torch.load(work / trainer.STATE_FILE, weights_only=False)["epoch"] == 3
    model, resumed = trainer.fit(Linear, train, Toy(x_sel, y[:16]), CLASSES, block, "h", work, "run-a")
    assert resumed["resumed_after_epoch"] == 3 and strip(resumed) == strip(full)
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # Another run's state (other settings or data) is never resumed.
    _, other = trainer.fit(Linear, train, Toy(x_sel, y[:16]), CLASSES, block, "h", work, "run-b")
    assert other["resumed_after_epoch"] is None and strip(other) == strip(full)
    trainer.remove_work_dir(work)
    assert not work.exists()
