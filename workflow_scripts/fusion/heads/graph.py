"""Fusion variant ``graph``: graph-attention fusion with quantized-F0 prosody (seed paper 003, rule train_graph).

One node per modality and utterance (``nodes``, any of):

* ``speech``: the mean of the SEFE frames (the paper: a pooled Whisper Large V3 embedding);
* ``text``: the mean of the TEFE token states (the paper: RoBERTa);
* ``prosody``: learnable embeddings of the prosody tokens (rule extract_prosody_tokens,
  ``sefe/prosody_tokens.py`` over ``sefe/prosody.py``: mel-scaled F0 in ``bins`` training-split
  quantile bins plus an unvoiced token), mean pooled;
* ``spectral``: statistics of the same SEFE frames beside the speech node's mean: their
  standard deviation, maximum and minimum per dimension (with the weights-free SEFE backend
  these frames are log-mel / MFCC / F0 / energy contours, i.e. spectral features).

Each node's input is standardised with training-split statistics and projected to ``d_model``
(plus a learned node-type vector). ``fusion: graph``: ``heads``-head self-attention over the
nodes (residual + LayerNorm), then ``gat_layers`` graph attention layers (GAT, Velickovic et al.
2018: e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), softmax over the neighbours j of i,
``heads`` heads concatenated; ELU, residual + LayerNorm) over the fully connected node graph
(self-loops included). ``fusion: concat`` is the ablation without attention: the projected
nodes go straight to the classifier. Readout: the node states concatenated -> SwiGLU MLP
(SiLU(x W) * (x V) -> dropout -> classes). Weighted cross-entropy (``class_weights``) and a
cosine learning-rate schedule (``lr_schedule``) through the shared trainer.

Trained by :mod:`workflow_scripts.fusion.heads.trainer` on the training split with early
stopping on the selection split; test splits are read only after training, to predict.
"""

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workflow_scripts.common.names import GRAPH_NODE_SOURCES
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.fusion.heads import outputs
from workflow_scripts.fusion.heads.prediction import SequenceInputs, check_widths
from workflow_scripts.fusion.heads.trainer import fit, run_fingerprint

HEAD = "graph"
TITLE = "Graph-attention fusion (seed 003)"
CHECKPOINT_FORMAT = "dfat-head-graph-1"
NODES = tuple(GRAPH_NODE_SOURCES)
# The model's keys of the head's block (their defaults: schemas/fusion.schema.yaml, fusion.heads.graph).
MODEL_KEYS = ("nodes", "fusion", "d_model", "heads", "gat_layers", "prosody_dim", "mlp_hidden", "dropout")


def model_settings(block: Mapping[str, Any]) -> dict[str, Any]:
    """The model keys of the head's block (validated, defaults filled), checked."""
    s = {key: block[key] for key in MODEL_KEYS}
    s["nodes"] = list(s["nodes"])
    unknown = [n for n in s["nodes"] if n not in NODES]
    if unknown or not s["nodes"] or len(set(s["nodes"])) != len(s["nodes"]):
        raise ValueError(f"fusion.heads.graph.nodes {s['nodes']}: expected distinct names of {list(NODES)}")
    if s["fusion"] not in ("graph", "concat"):
        raise ValueError(f"fusion.heads.graph.fusion {s['fusion']!r}, expected graph or concat")
    if int(s["d_model"]) % int(s["heads"]):
        raise ValueError(f"fusion.heads.graph: d_model {s['d_model']} is not divisible by heads {s['heads']}")
    return s


def sources(nodes: Sequence[str]) -> list[str]:
    """The sequence feature sets (acoustic, text, prosody) that ``nodes`` read, sorted (as the head's
    registry entry says; not imported from there, whose references would make xattn.py an input here)."""
    return sorted({GRAPH_NODE_SOURCES[node] for node in nodes})


class GraphAttentionLayer(nn.Module):
    """Multi-head graph attention over dense node sets [batch, nodes, d_in] -> [batch, nodes, d_out].

    ``adjacency[i, j]`` (bool, default all true): node i attends to node j. Returns the new node
    states (heads concatenated, no activation) and the coefficients [batch, i, j, heads].
    """

    def __init__(self, d_in: int, d_out: int, heads: int, negative_slope: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        if d_out % heads:
            raise ValueError(f"GAT: d_out {d_out} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, d_out // heads
        self.weight = nn.Linear(d_in, d_out, bias=False)
        self.a_dst = nn.Parameter(torch.empty(heads, self.head_dim))
        self.a_src = nn.Parameter(torch.empty(heads, self.head_dim))
        nn.init.xavier_uniform_(self.a_dst)
        nn.init.xavier_uniform_(self.a_src)
        self.negative_slope = negative_slope
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, n, _ = h.shape
        z = self.weight(h).view(batch, n, self.heads, self.head_dim)
        target = (z * self.a_dst).sum(-1)  # [batch, i, heads]
        source = (z * self.a_src).sum(-1)  # [batch, j, heads]
        scores = F.leaky_relu(target[:, :, None, :] + source[:, None, :, :], self.negative_slope)
        if adjacency is not None:
            scores = scores.masked_fill(~adjacency[None, :, :, None], float("-inf"))
        alpha = torch.softmax(scores, dim=2)
        out = torch.einsum("bijh,bjhd->bihd", self.dropout(alpha), z)
        return out.reshape(batch, n, self.heads * self.head_dim), alpha


class SwiGLU(nn.Module):
    """SiLU(x W) * (x V): the gated hidden layer of the classifier."""

    def __init__(self, d_in: int, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(d_in, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.project(x).chunk(2, dim=-1)
        return F.silu(gate) * value


class GraphFusionHead(nn.Module):
    """Modality nodes -> (multi-head attention + GAT layers | nothing) -> concatenated -> SwiGLU MLP."""

    def __init__(
        self,
        dims: Mapping[str, int],
        n_classes: int,
        settings: Mapping[str, Any],
        statistics: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        super().__init__()
        s = self.settings = model_settings(settings)
        d, heads, dropout = int(s["d_model"]), int(s["heads"]), float(s["dropout"])
        self.nodes = list(s["nodes"])
        self.project = nn.ModuleDict()
        for node in self.nodes:
            if node == "prosody":
                self.embedding = nn.Embedding(int(dims["prosody"]), int(s["prosody_dim"]))
                self.project[node] = nn.Sequential(nn.Linear(int(s["prosody_dim"]), d), nn.LayerNorm(d))
                continue
            width = int(dims[node])
            mean, std = (statistics or {}).get(node, (np.zeros(width, np.float32), np.ones(width, np.float32)))
            self.register_buffer(f"{node}_mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer(f"{node}_std", torch.as_tensor(std, dtype=torch.float32))
            self.project[node] = nn.Sequential(nn.Linear(width, d), nn.LayerNorm(d))
        self.node_type = nn.Parameter(torch.zeros(len(self.nodes), d))
        self.attention = self.gat = None
        if s["fusion"] == "graph":
            self.attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
            self.attention_norm = nn.LayerNorm(d)
            layers = range(int(s["gat_layers"]))
            self.gat = nn.ModuleList(GraphAttentionLayer(d, d, heads, dropout=dropout) for _ in layers)
            self.gat_norms = nn.ModuleList(nn.LayerNorm(d) for _ in layers)
        self.dropout = nn.Dropout(dropout)
        self.hidden = SwiGLU(len(self.nodes) * d, int(s["mlp_hidden"]))
        self.output = nn.Linear(int(s["mlp_hidden"]), n_classes)

    def node_states(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The projected nodes [batch, nodes, d_model] before any attention."""
        states = []
        for node in self.nodes:
            if node == "prosody":
                tokens, lengths = batch["prosody"], batch["prosody_len"]
                mask = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).to(torch.float32)
                pooled = (self.embedding(tokens) * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            else:
                pooled = (batch[node] - getattr(self, f"{node}_mean")) / getattr(self, f"{node}_std")
            states.append(self.project[node](pooled))
        return torch.stack(states, dim=1) + self.node_type

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = self.node_states(batch)
        if self.attention is not None:
            attended, _ = self.attention(h, h, h, need_weights=False)
            h = self.attention_norm(h + self.dropout(attended))
            for layer, norm in zip(self.gat, self.gat_norms, strict=True):
                h = norm(h + self.dropout(F.elu(layer(h)[0])))
        x = self.dropout(self.hidden(h.flatten(1)))
        return self.output(x)

    def source_widths(self) -> dict[str, int]:
        """The width of the sequences each source its nodes read holds (prosody: its token vocabulary)."""
        widths = {}
        for node in self.nodes:
            if node == "prosody":
                widths["prosody"] = int(self.embedding.num_embeddings)
            else:
                width = int(getattr(self, f"{node}_mean").shape[0])
                widths[GRAPH_NODE_SOURCES[node]] = width // len(SPECTRAL_STATISTICS) if node == "spectral" else width
        return widths


# The spectral node's statistics of each frame dimension, in its input's order.
SPECTRAL_STATISTICS = ("std", "max", "min")


def pooled_nodes(frames: np.ndarray) -> dict[str, np.ndarray]:
    """The speech (mean) and spectral (SPECTRAL_STATISTICS) node inputs of one (frames, dim) matrix."""
    values = frames.astype(np.float64)
    spectral = np.concatenate([getattr(values, statistic)(axis=0) for statistic in SPECTRAL_STATISTICS])
    return {"speech": values.mean(axis=0).astype(np.float32), "spectral": spectral.astype(np.float32)}


def node_inputs(nodes: Sequence[str], matrices: Mapping[str, Sequence[np.ndarray]]) -> dict[str, Any]:
    """The node inputs of utterances from their sequence matrices per source (those ``nodes`` read:
    acoustic frames, text token states, prosody token matrices (frames, 1)): node -> (n, width)
    vectors, or for ``prosody`` the list of token id vectors. The rule and predict both use it."""
    inputs: dict[str, Any] = {}
    for source in sources(nodes):
        if source == "acoustic":
            pooled = [pooled_nodes(m) for m in matrices[source]]
            for node in ("speech", "spectral"):
                if node in nodes:
                    inputs[node] = np.stack([p[node] for p in pooled])
        elif source == "text":
            inputs["text"] = np.stack([m.mean(axis=0) for m in matrices[source]]).astype(np.float32)
        else:
            inputs["prosody"] = [np.asarray(m)[:, 0].astype(np.int64) for m in matrices[source]]
    return inputs


def node_batch(inputs: Mapping[str, Any], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The model's batch of the ``rows`` of :func:`node_inputs` (prosody tokens padded, with lengths)."""
    batch = {}
    for node, value in inputs.items():
        if node != "prosody":
            batch[node] = torch.from_numpy(value[rows])
            continue
        tokens = [value[i] for i in rows]
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        padded = np.zeros((len(tokens), int(lengths.max())), dtype=np.int64)
        for i, t in enumerate(tokens):
            padded[i, : len(t)] = t
        batch["prosody"], batch["prosody_len"] = torch.from_numpy(padded), torch.from_numpy(lengths)
    return batch


class GraphSplit:
    """One split's node inputs, aligned to its manifest (pooled once, streamed by row group), and labels."""

    def __init__(
        self, files: Mapping[str, str], nodes: Sequence[str], utt_ids: Sequence[str], labels: np.ndarray, where: str
    ) -> None:
        self.utt_ids, self.labels = list(utt_ids), np.asarray(labels, dtype=np.int64)
        self.models: dict[str, Any] = {}
        matrices = {}
        for source in sources(nodes):
            sequences = SequenceFile(files[source])
            self.models[source] = sequences.metadata.get("model")
            rows = sequences.positions(self.utt_ids, where)
            chunks = (sequences.read(rows[start : start + 256]) for start in range(0, len(rows), 256))
            matrices[source] = [m for chunk in chunks for m in chunk]
            if source == "prosody":
                self.vocabulary = int(sequences.metadata["vocabulary_size"])
        self.inputs = node_inputs(nodes, matrices)

    def dims(self) -> dict[str, int]:
        dims = {node: int(value.shape[1]) for node, value in self.inputs.items() if node != "prosody"}
        if "prosody" in self.inputs:
            dims["prosody"] = self.vocabulary
        return dims

    def statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-dimension mean and standard deviation of every vector node input (the training split's)."""
        out = {}
        for node, value in self.inputs.items():
            if node != "prosody":
                std = value.std(axis=0)
                out[node] = (value.mean(axis=0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32))
        return out

    def batches(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        for start in range(0, len(rows), batch_size):
            chunk = np.asarray(rows[start : start + batch_size])
            yield chunk, {"y": torch.from_numpy(self.labels[chunk]), **node_batch(self.inputs, chunk)}


def load_head(path: str | os.PathLike) -> tuple[GraphFusionHead, dict[str, Any]]:
    """A saved head (eval mode, CPU; the rule saves it with :func:`outputs.write_outputs`) and its
    checkpoint header (settings, dims, classes)."""
    payload = outputs.read_head_checkpoint(path, CHECKPOINT_FORMAT, HEAD)
    model = GraphFusionHead(payload["dims"], len(payload["classes"]), payload["settings"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), {k: payload[k] for k in outputs.CHECKPOINT_HEADER}


@torch.no_grad()
def predict_nodes(model: GraphFusionHead, matrices: Mapping[str, Sequence[np.ndarray]]) -> np.ndarray:
    """Class probabilities of utterances given as sequence matrices per source (acoustic frames,
    text token states, prosody tokens (frames, 1); those the model's nodes read): predict's path."""
    model.eval()
    inputs = node_inputs(model.nodes, matrices)
    n = len(next(iter(matrices.values())))
    return torch.softmax(model(node_batch(inputs, np.arange(n))).float(), dim=1).numpy().astype(np.float64)


class GraphPredictor:
    """A trained graph variant for predict: its checkpoint over the node inputs of new audio (SEFE
    frames, TEFE token states, prosody tokens with the run's bins: those its nodes read)."""

    def __init__(self, model: GraphFusionHead, classes: Sequence[str], inputs: SequenceInputs) -> None:
        self.model, self.classes, self.inputs = model, list(classes), inputs
        self.widths = model.source_widths()
        self.reads = sources(model.nodes)

    def predict(self, audio: Sequence[str], transcripts: Sequence[str]) -> np.ndarray:
        """Class probabilities of audio files and their transcripts."""
        matrices = {s: self.inputs(s, transcripts if s == "text" else audio) for s in self.reads}
        check_widths({s: m for s, m in matrices.items() if s != "prosody"}, self.widths, "graph head")
        return predict_nodes(self.model, matrices)


def load_predictor(path: str | os.PathLike, inputs: SequenceInputs) -> GraphPredictor:
    """predict's loader of a trained graph variant (fusion/heads/registry.py): its saved checkpoint, its
    prosody vocabulary checked against the run's bins."""
    model, header = load_head(path)
    predictor = GraphPredictor(model, header["classes"], inputs)
    if "prosody" in predictor.widths and inputs.vocabulary("prosody") != predictor.widths["prosody"]:
        raise SystemExit(
            f"predict: the run's prosody bins have {inputs.vocabulary('prosody')} tokens, but the head {path} was "
            f"trained on {predictor.widths['prosody']} (a mixed run?)"
        )
    return predictor


def train_and_evaluate(
    files: Mapping[str, Mapping[str, str]],
    manifests: Mapping[str, str],
    run: outputs.HeadRun,
) -> tuple[GraphFusionHead, dict[str, Any], dict[str, Any], dict[str, tuple[list[str], np.ndarray]]]:
    """Train on the run's training split, stop early on its selection split; then predict every split.

    ``files``: source (acoustic / text / prosody, those the nodes read) -> split -> sequence file.
    Returns the model, the training summary, the metrics document and split -> (utt_ids, probabilities).
    """
    block, classes, variant = run.block, list(run.classes), run.variant
    settings = model_settings(block)
    nodes = settings["nodes"]

    def load(split: str) -> GraphSplit:
        utt_ids, y = outputs.split_labels(manifests[split], classes, split)
        return GraphSplit({s: files[s][split] for s in sources(nodes)}, nodes, utt_ids, y, manifests[split])

    started = time.perf_counter()
    train, selection = load(run.train_split), load(run.selection_split)
    dims, statistics = train.dims(), train.statistics()

    def build() -> GraphFusionHead:
        return GraphFusionHead(dims, len(classes), settings, statistics)

    inputs = [path for per_split in files.values() for path in per_split.values()] + list(manifests.values())
    fingerprint = run_fingerprint({**block, "variant": variant}, classes, inputs)
    model, report = fit(build, train, selection, classes, block, variant, run.work_dir, fingerprint)
    loaded = {run.train_split: train, run.selection_split: selection}
    predictions, splits = outputs.predict_splits(model, report, list(manifests), loaded, load, classes, run.bootstrap)
    summary = outputs.training_summary(variant, settings, dims, report, started, train.models)
    features = {"nodes": nodes, "dims": dims, "sequences": dict(train.models)}
    feature_sets = [f"{source}_sequences" for source in sources(nodes)]
    document = outputs.metrics_document(HEAD, run, report, splits, feature_sets, features)
    return model, summary, document, predictions


def main(job: Any) -> None:
    """Entry point of the train_graph rule (``job``: the rule's ``snakemake`` object).

    ``input.acoustic`` / ``input.text`` / ``input.prosody`` (those the variant's nodes read, the
    others empty) and ``input.manifests`` hold one file per split, in ``params.splits`` order.
    """
    run = outputs.head_run(job, TITLE)
    splits = list(job.params.splits)
    files = {
        source: dict(zip(splits, getattr(job.input, source), strict=True))
        for source in ("acoustic", "text", "prosody")
        if len(getattr(job.input, source))
    }
    manifests = dict(zip(splits, job.input.manifests, strict=True))
    model, summary, document, predictions = train_and_evaluate(files, manifests, run)
    outputs.write_outputs(job, CHECKPOINT_FORMAT, model, summary, document, predictions)


if __name__ == "__main__":
    run_rule(main, keep=True)
