"""The SEFE backends (``sefe.backend``; names.SEFE_BACKENDS), registered beside sefe/backends.py.

Light (standard library and names only): rules/sefe_inputs.smk reads it at DAG-build time, e.g. to ask
for a GPU only for a backend that uses one. A backend class takes ``(block, sample_rate, threads)``.
"""

from __future__ import annotations

from workflow_scripts.common.registry import Spec, registry

BackendSpec = Spec

SEFE_BACKENDS: dict[str, BackendSpec] = registry(
    # Weights-free librosa features: CPU only, parallel by process.
    BackendSpec("handcrafted", False, "workflow_scripts.sefe.backends:HandcraftedBackend"),
    BackendSpec("emotion2vec", True, "workflow_scripts.sefe.backends:Emotion2vecBackend"),
    BackendSpec("wavlm", True, "workflow_scripts.sefe.backends:TransformersBackend"),
    BackendSpec("whisper_encoder", True, "workflow_scripts.sefe.backends:WhisperEncoderBackend"),
    # openSMILE feature sets (the `opensmile` extra): CPU only, parallel by process.
    BackendSpec("egemaps", False, "workflow_scripts.sefe.backends:EgemapsBackend"),
    BackendSpec("compare", False, "workflow_scripts.sefe.backends:CompareBackend"),
)
