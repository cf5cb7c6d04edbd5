"""Where a checkpoint comes from: a local directory, a hub cache, or a reachable model hub.

Libraries retry unreachable hubs for a long time (funasr about 8 s and then an unrelated
"not registered" error; transformers with its own timeouts). Every model-loading step of the
workflow resolves its model here first and answers in seconds: a local directory or a
cached copy is used as it is; otherwise the hub is contacted once with a short timeout and an
unreachable hub raises :class:`ModelUnavailableError` saying how to provide a local directory.

* :func:`resolve_model_source` (ASR): a local directory, downloading the snapshot if needed;
* :func:`resolve_transformers_model`, :func:`resolve_funasr_model` (SEFE): an argument for
  ``from_pretrained`` / funasr's ``AutoModel`` that will not hang.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
# Weight formats transformers does not read, skipped when downloading a snapshot.
_IGNORED_WEIGHTS = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data", "*.tflite", "*.mlmodel", "*.gguf"]


class ModelUnavailableError(RuntimeError):
    """A model that is neither a usable local directory, nor cached, nor reachable on its hub now."""


def probe_url(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url`` answers at all (any HTTP status) within ``timeout``, else the reason.

    Runs in a thread so that a hanging DNS lookup (not covered by socket timeouts) is bounded too.
    """
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # the server answered: the hub is reachable
        except Exception as error:  # noqa: BLE001 - any failure means unreachable; its text is the reason
            outcome.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"


def looks_like_path(model: str) -> bool:
    """True for strings that are meant as filesystem paths rather than hub ids."""
    # Hub ids are "name" or "owner/name"; anything else is meant as a directory.
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1


def check_local_dir(path: str | os.PathLike, required: list[str], key: str) -> str:
    """The absolute path of a checkpoint directory, after checking that it holds ``required`` files."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelUnavailableError(f"{key}: {str(path)!r} is not a directory")
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise ModelUnavailableError(f"{key}: checkpoint directory {directory} lacks {missing} (expected {required})")
    return str(directory.resolve())


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _ms_endpoint() -> str:
    domain = os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn").rstrip("/")
    return domain if domain.startswith(("http://", "https://")) else f"https://{domain}"


def hub_offline() -> bool:
    """Whether the user asked for no hub access (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def cached_hf_snapshot(repo_id: str) -> str | None:
    """The local snapshot directory of a Hugging Face repo already in the cache, or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError):  # not cached, or not a repo id at all
        return None


def cached_ms_snapshot(model_id: str, required: list[str]) -> str | None:
    """The local directory of a ModelScope model already in its cache, or None."""
    root = Path(os.path.expanduser(os.environ.get("MODELSCOPE_CACHE", "~/.cache/modelscope/hub"))) / "models"
    for candidate in (root / model_id, root / model_id.replace(".", "___")):
        if all((candidate / name).is_file() for name in required):
            return str(candidate)
    return None


def _unreachable(key: str, model: str, endpoint: str, reason: str, how: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"{key}: cannot fetch {model!r}: the model hub {endpoint} is unreachable ({reason}) and no cached "
        f"copy exists. On a machine with internet access, download it ({how}), copy the directory here and "
        f"set {key} to that local directory."
    )


def resolve_funasr_model(model: str, hub: str, key: str = "sefe.emotion2vec.model") -> str:
    """A funasr model argument that loads without waiting on an unreachable hub.

    ``model`` is a local directory holding config.yaml + model.pt, or a hub id / funasr alias
    (``iic/emotion2vec_plus_large``, ``emotion2vec_plus_large``) on ModelScope (``hub: ms``) or
    Hugging Face (``hub: hf``).
    """
    required = ["config.yaml", "model.pt"]
    if Path(model).expanduser().is_dir() or looks_like_path(model):
        return check_local_dir(model, required, key)
    from funasr.download.name_maps_from_hub import name_maps_hf, name_maps_ms

    if hub in ("hf", "huggingface"):
        repo = name_maps_hf.get(model, model)
        cached = cached_hf_snapshot(repo)
        if cached and all((Path(cached) / name).is_file() for name in required):
            return cached
        endpoint = _hf_endpoint()
        how = f"`hf download {repo} --local-dir emotion2vec_model`"
    else:
        repo = name_maps_ms.get(model, model)
        cached = cached_ms_snapshot(repo, required)
        if cached:
            return cached
        endpoint = _ms_endpoint()
        how = f"`modelscope download --model {repo} --local_dir emotion2vec_model`"
    reason = (
        "offline mode is set (HF_HUB_OFFLINE)"
        if hub in ("hf", "huggingface") and hub_offline()
        else probe_url(endpoint)
    )
    if reason is not None:
        raise _unreachable(key, model, endpoint, reason, how + "; the directory must hold config.yaml and model.pt")
    return model


def resolve_transformers_model(model: str, key: str = "sefe.wavlm.model") -> str:
    """A transformers ``from_pretrained`` argument that loads without waiting on an unreachable hub."""
    if Path(model).expanduser().is_dir() or looks_like_path(model):
        return check_local_dir(model, ["config.json"], key)
    cached = cached_hf_snapshot(model)
    if cached:
        return cached
    endpoint = _hf_endpoint()
    reason = "offline mode is set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)" if hub_offline() else probe_url(endpoint)
    if reason is not None:
        raise _unreachable(
            key,
            model,
            endpoint,
            reason,
            f"`hf download {model} --local-dir wavlm_model`, or save_pretrained() of the model and its "
            "feature extractor",
        )
    return model


def how_to_provide(model: str, reason: str, config_key: str) -> str:
    """The message for a model that cannot be loaded: why, and how to supply a local copy."""
    name = model.rstrip("/").split("/")[-1]
    return (
        f"{config_key}: cannot load {model!r}: {reason}.\n"
        f"Provide the model as a local directory instead: on a machine with internet access run\n"
        f"    hf download {model} --local-dir models/{name}\n"
        f"(or `git clone https://huggingface.co/{model}`), copy models/{name} here and set\n"
        f"    {config_key}: models/{name}\n"
        f"Alternatively fill the Hugging Face cache (HF_HOME) beforehand; a cached model loads offline."
    )


def resolve_model_source(model: str, config_key: str = "model", hub_timeout_s: float = 10.0) -> str:
    """A local directory holding ``model``: the directory itself, a cached or a downloaded hub snapshot.

    The hub is contacted once, with ``hub_timeout_s``, and only when the model is neither a local
    directory nor cached; any failure raises :class:`ModelUnavailableError` at once.
    """
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if looks_like_path(model):
        raise ModelUnavailableError(
            f"{config_key}: {model!r} is not a directory (expected a save_pretrained directory or a hub id owner/name)"
        )
    cached = cached_hf_snapshot(model)
    if cached:
        return cached
    if hub_offline():
        reason = "it is not a local directory, not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
        raise ModelUnavailableError(how_to_provide(model, reason, config_key))
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(model, timeout=hub_timeout_s)
    except Exception as error:  # noqa: BLE001 - any failure to reach the hub gets the same advice
        reason = (
            f"it is not a local directory, not cached, and the hub did not answer ({type(error).__name__}: {error})"
        )
        raise ModelUnavailableError(how_to_provide(model, reason, config_key)) from error
    files = [sibling.rfilename for sibling in info.siblings or []]
    ignore = list(_IGNORED_WEIGHTS)
    if any(name.endswith(".safetensors") for name in files):
        ignore.append("*.bin")  # the same weights twice
    log.info("downloading %s from the hub (%d files listed)", model, len(files))
    return snapshot_download(model, ignore_patterns=ignore, etag_timeout=hub_timeout_s)
