"""The neural fusion heads (``fusion.heads``; names.HEADS), registered beside their modules.

Light (standard library and names only): the rules read it at DAG-build time (through
fusion/heads/variants.py). Each head
says which sequence feature sets a variant's block makes it read (``sequence_sources``: a variant
that reads ``text`` reads an ASR system's transcripts), which of them predict computes from new
audio (``predict_sources``) and how predict loads a trained variant (``predictor``:
``"module:function"``; see workflow_scripts/predict.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workflow_scripts.common.names import GRAPH_NODE_SOURCES, SEQUENCE_MODALITIES
from workflow_scripts.common.registry import Spec, registry


@dataclass(frozen=True)
class HeadSpec(Spec):
    """A head: the common spec (``implementation``: its model class), the rule that trains its
    variants (writing paths.HEAD_MODEL), the sequence feature sets a variant's block reads, those
    predict computes for it, and predict's loader (``predictor(model_path, inputs)``, inputs: a
    fusion/heads/prediction.SequenceInputs)."""

    rule: str
    sequence_sources: Callable[[Mapping[str, Any]], frozenset[str]]
    predict_sources: Callable[[Mapping[str, Any]], frozenset[str]]
    predictor: str


def graph_sources(block: Mapping[str, Any]) -> frozenset[str]:
    """The sequence feature sets the graph head's nodes read (acoustic, text, prosody)."""
    return frozenset(GRAPH_NODE_SOURCES[node] for node in block["nodes"])


def xattn_sources(block: Mapping[str, Any]) -> frozenset[str]:
    """The cross-modal attention head reads both modalities (text: token states, or ids when fine-tuned)."""
    return frozenset(SEQUENCE_MODALITIES)


def xattn_predict_sources(block: Mapping[str, Any]) -> frozenset[str]:
    """What predict computes for the cross-modal attention head: the frames, and the TEFE token states
    unless the head fine-tuned its own text encoder (it then reads the transcripts' token ids)."""
    return frozenset(SEQUENCE_MODALITIES) if block["text_encoder"] == "frozen" else frozenset({"acoustic"})


HEADS: dict[str, HeadSpec] = registry(
    HeadSpec(
        "xattn",
        True,
        "workflow_scripts.fusion.heads.xattn:CrossModalAttentionHead",
        rule="train_xattn",
        sequence_sources=xattn_sources,
        predict_sources=xattn_predict_sources,
        predictor="workflow_scripts.fusion.heads.xattn:load_predictor",
    ),
    HeadSpec(
        "graph",
        True,
        "workflow_scripts.fusion.heads.graph:GraphFusionHead",
        rule="train_graph",
        sequence_sources=graph_sources,
        predict_sources=graph_sources,
        predictor="workflow_scripts.fusion.heads.graph:load_predictor",
    ),
)
