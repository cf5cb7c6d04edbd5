"""Where a checkpoint comes from: a local directory, a hub cache, or a reachable model hub.

Libraries retry unreachable hubs for a long time (funasr about 8 s and then an unrelated
"not registered" error; transformers with its own timeouts). :func:`resolve_funasr_model`
and :func:`resolve_transformers_model` instead answer in seconds: a local directory or a
cached copy is used as it is; otherwise the hub is probed once with a short timeout and an
unreachable hub raises :class:`CheckpointUnavailable` saying how to provide a local directory.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

PROBE_TIMEOUT_S = 5.0


class CheckpointUnavailable(RuntimeError):
    """A checkpoint that is neither a usable local directory nor reachable on its hub."""


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
        raise CheckpointUnavailable(f"{key}: {str(path)!r} is not a directory")
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise CheckpointUnavailable(
            f"{key}: checkpoint directory {directory} lacks {missing} (expected {required})"
        )
    return str(directory.resolve())


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _ms_endpoint() -> str:
    domain = os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn").rstrip("/")
    return domain if domain.startswith(("http://", "https://")) else f"https://{domain}"


def _offline_env() -> bool:
    return any(os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def cached_hf_snapshot(repo_id: str) -> str | None:
    """The local snapshot directory of a Hugging Face repo already in the cache, or None."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or not a valid repo id): no local copy
        return None


def cached_ms_snapshot(model_id: str, required: list[str]) -> str | None:
    """The local directory of a ModelScope model already in its cache, or None."""
    root = Path(os.path.expanduser(os.environ.get("MODELSCOPE_CACHE", "~/.cache/modelscope/hub"))) / "models"
    for candidate in (root / model_id, root / model_id.replace(".", "___")):
        if all((candidate / name).is_file() for name in required):
            return str(candidate)
    return None


def _unreachable(key: str, model: str, endpoint: str, reason: str, how: str) -> CheckpointUnavailable:
    return CheckpointUnavailable(
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
    reason = "offline mode is set (HF_HUB_OFFLINE)" if hub in ("hf", "huggingface") and _offline_env() else probe_url(endpoint)
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
    reason = "offline mode is set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)" if _offline_env() else probe_url(endpoint)
    if reason is not None:
        raise _unreachable(
            key, model, endpoint, reason,
            f"`hf download {model} --local-dir wavlm_model`, or save_pretrained() of the model and its "
            "feature extractor",
        )
    return model
