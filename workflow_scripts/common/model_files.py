"""Model files are data: scikit-learn and XGBoost objects persisted with skops, never with pickle.

A skops file is a zip of a JSON schema and numpy / byte arrays; loading it constructs only the
types skops trusts by default (scikit-learn estimators, numpy, builtins) and those in
:data:`TRUSTED_TYPES`, so no code in the file runs. An XGBoost booster inside (``XGBClassifier``)
is stored in XGBoost's own UBJSON serialisation (its model and configuration), not pickled.

The files are written byte-reproducibly (skops names its array files and shared objects by
``id()``; :func:`estimator_bytes` renumbers them in schema order and fixes the zip timestamps), so
the same fitted model gives the same bytes, and its SHA-256 checksum record
(:mod:`workflow_scripts.common.checksums`) the same digest.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import skops.io

from workflow_scripts.common.checksums import verify_checksum, write_checked

# Types beyond skops's defaults that a model file of this workflow may hold; anything else is refused.
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",  # the trees of RandomForestClassifier
    "xgboost.core.Booster",  # restored from XGBoost's UBJSON, not unpickled
    "xgboost.sklearn.XGBClassifier",
)
SCHEMA = "schema.json"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class ModelFileError(ValueError):
    """A model file that cannot be loaded safely; the message names the file and the reason."""


def _walk(node: Any) -> Iterator[dict]:
    """Every mapping of a skops schema, in document order."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def estimator_bytes(model: Any) -> bytes:
    """``model`` as a skops file whose bytes depend only on the model (ids renumbered, fixed timestamps)."""
    source = zipfile.ZipFile(io.BytesIO(skops.io.dumps(model)))
    schema = json.loads(source.read(SCHEMA))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}
    for node in _walk(schema):
        if "__id__" in node:
            node["__id__"] = ids.setdefault(node["__id__"], len(ids))
        if isinstance(node.get("file"), str) and node["file"] in source.namelist():
            node["file"] = files.setdefault(node["file"], f"{len(files):04d}{Path(node['file']).suffix}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for old, new in files.items():
            target.writestr(zipfile.ZipInfo(new, ZIP_EPOCH), source.read(old))
        target.writestr(zipfile.ZipInfo(SCHEMA, ZIP_EPOCH), json.dumps(schema, indent=2))
    return buffer.getvalue()


def save_estimator(model: Any, path: str | os.PathLike, record: bool = True) -> None:
    """Write ``model`` as a skops file at ``path`` (atomically) and, if ``record``, its checksum record
    ``<path>.sha256`` (a file inside a directory that gets a SHA256SUMS record passes ``record=False``)."""
    data = estimator_bytes(model)
    if record:
        write_checked(path, lambda tmp: tmp.write_bytes(data))
    else:
        Path(path).write_bytes(data)


def load_estimator(path: str | os.PathLike, checked: bool = True) -> Any:
    """The object of a skops file written by :func:`save_estimator`.

    ``checked``: verify the file against its checksum record first (pass False only when the caller
    verified the directory holding it). Refuses, naming the file, a file that changed since it was
    written, a truncated or foreign one, and one holding types outside :data:`TRUSTED_TYPES`.
    """
    if checked:
        verify_checksum(path)
    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ModelFileError(f"{path}: holds types this workflow does not trust {untrusted}; refusing to load it")
        return skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError, TypeError) as error:
        raise ModelFileError(
            f"{path}: not a readable model file ({type(error).__name__}: {error}); it is truncated or was not "
            "written by this workflow (skops format): rebuild it with the workflow"
        ) from error
