"""The kept results of the expensive rules: a failed or interrupted rerun never costs a finished training.

Snakemake deletes a job's outputs before the job runs, so a rerun that fails (a bad edit, a killed
job) would leave nothing of an earlier good result. The steps of the expensive rules therefore run
through :func:`run_kept` (``run_rule(main, keep=True)``, common/rule.py): each finished job's
declared outputs are also linked into a store that no rule declares, so Snakemake never deletes it,

    results/.keep/<rule>/<fingerprint>/outputs/<i>     (the job's i-th output, file or directory)
    results/.keep/<rule>/<fingerprint>/fingerprint.json (what the fingerprint was made of)

and a job whose fingerprint has an entry restores its outputs from it and returns at once, logged as
``restored from <entry>``. The fingerprint (:func:`job_fingerprint`) is the SHA-256 of the job's
params (the rule's config block), wildcards, threads, output paths, the SHA-256 of every input file
or directory (the ``code=`` inputs included: the code that matters, common/code_inputs.py), and the
versions of Python and of the libraries that compute results (``RESULT_PACKAGES``).

Entries hold hard links to the outputs (a copy across file systems), so they cost no disk space
while the outputs exist; the workflow replaces files (common/files.atomic_path), never rewrites one
in place, so a link stays what was kept. An entry appears at once (a rename) or not at all; a store
failure is logged and never fails the job. Clearing: ``rm -rf results/.keep`` (or one rule's folder).

This module changes no result, so it is not a code input of any rule (code_inputs.NOT_CODE); it
imports only the standard library, ``paths`` and ``checksums``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workflow_scripts.common import paths
from workflow_scripts.common.checksums import sha256_file

log = logging.getLogger(__name__)

# Libraries whose version can change what an expensive step computes (absent ones are skipped).
RESULT_PACKAGES = ("numpy", "torch", "transformers", "scikit-learn", "xgboost", "optuna", "ctranslate2")
ENTRY_OUTPUTS = "outputs"
ENTRY_DESCRIPTION = "fingerprint.json"
# Per-file digests by (size, mtime): a big model is hashed once, not at every job that reads it.
DIGEST_CACHE = "digests"


def _file_sha256(path: Path, cache_dir: Path) -> str:
    """The SHA-256 of file ``path``, cached in ``cache_dir`` by its absolute path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    cached = cache_dir / f"{key}.json"
    stamp = [stat.st_size, stat.st_mtime_ns]
    try:
        record = json.loads(cached.read_text())
        if record["stamp"] == stamp:
            return record["sha256"]
    except (OSError, ValueError, KeyError):
        pass  # no usable record: hash the file
    digest = sha256_file(path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}")
        partial.write_text(json.dumps({"path": str(path), "stamp": stamp, "sha256": digest}))
        os.replace(partial, cached)
    except OSError as error:  # a read-only store still fingerprints, only slower
        log.debug("digest cache not written for %s: %s", path, error)
    return digest


def _tree_files(root: Path) -> Iterator[Path]:
    """The files below directory ``root`` in a fixed order, without Snakemake's flag files."""
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if name not in paths.SNAKEMAKE_DIRECTORY_FLAGS:
                yield Path(directory) / name


def path_sha256(path: str | os.PathLike, cache_dir: Path) -> str:
    """The SHA-256 of a file, or of a directory's relative file names and their contents' SHA-256."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path, cache_dir)
    digest = hashlib.sha256()
    for file in _tree_files(path):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_sha256(file, cache_dir)}\n".encode())
    return digest.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    for package in RESULT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def flat_paths(files: Any) -> list[str]:
    """The paths of a job's input or output list in order (a named entry may hold a list)."""
    flat: list[str] = []
    for item in files:
        flat.extend(map(str, item) if isinstance(item, list | tuple) else [str(item)])
    return flat


def fingerprint_description(job: Any, store: Path) -> dict[str, Any]:
    """Everything the fingerprint of ``job`` is made of (written beside its entry, for people)."""
    cache_dir = store / DIGEST_CACHE
    return {
        "rule": job.rule,
        "params": dict(job.params.items()),
        "wildcards": dict(job.wildcards.items()),
        "threads": job.threads,
        "outputs": flat_paths(job.output),
        "inputs": {path: path_sha256(path, cache_dir) for path in flat_paths(job.input)},
        "versions": _package_versions(),
    }


def job_fingerprint(description: dict[str, Any]) -> str:
    """The SHA-256 of a fingerprint description (its canonical JSON; TypeError for a value JSON cannot
    hold, rather than a text that might differ between runs)."""
    canonical = json.dumps(description, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to file ``source``, or a copy where linking fails (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _mirror(source: Path, target: Path) -> None:
    """``target`` holding what ``source`` (a file or a directory) holds, file by file linked or copied."""
    if not source.is_dir():
        _link_or_copy(source, target)
        return
    target.mkdir()
    for directory, subdirs, _ in os.walk(source):  # empty folders too
        for name in subdirs:
            (target / Path(directory, name).relative_to(source)).mkdir(exist_ok=True)
    for file in _tree_files(source):
        _link_or_copy(file, target / file.relative_to(source))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def restore(entry: Path, outputs: list[str]) -> bool:
    """Put the outputs kept in ``entry`` back in place; False (and nothing restored) when there is none.

    Each output appears whole (a temporary sibling renamed into place); on a failure every output
    restored so far is removed again and the error raised.
    """
    kept = [entry / ENTRY_OUTPUTS / str(index) for index in range(len(outputs))]
    if not (entry / ENTRY_DESCRIPTION).is_file() or not all(path.exists() for path in kept):
        return False
    done: list[Path] = []
    try:
        for source, output in zip(kept, map(Path, outputs), strict=True):
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(f".{output.name}.restoring")
            _remove(partial)
            _mirror(source, partial)
            _remove(output)
            os.replace(partial, output)
            done.append(output)
    except BaseException:
        for path in [*done, *(output.with_name(f".{output.name}.restoring") for output in map(Path, outputs))]:
            _remove(path)
        raise
    return True


def store(entry: Path, outputs: list[str], description: dict[str, Any]) -> None:
    """Keep ``outputs`` as ``entry``: built beside it, then renamed, so an entry is whole or absent
    (one that exists here could not be restored: it is replaced)."""
    partial = entry.with_name(f".{entry.name}.partial")
    _remove(partial)  # left by a job killed while storing
    try:
        (partial / ENTRY_OUTPUTS).mkdir(parents=True)
        for index, output in enumerate(outputs):
            _mirror(Path(output), partial / ENTRY_OUTPUTS / str(index))
        (partial / ENTRY_DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
        _remove(entry)
        os.rename(partial, entry)
    finally:
        _remove(partial)


def run_kept(main: Callable[[Any], None], job: Any, root: str | os.PathLike = paths.KEEP) -> None:
    """Run ``main(job)`` unless the store under ``root`` holds the outputs of a job with the same
    fingerprint (then restore them); keep the outputs of a successful run."""
    root = Path(root)
    description = fingerprint_description(job, root)
    try:
        entry = root / job.rule / job_fingerprint(description)
    except TypeError as error:  # a param that is not plain data: run as without the store
        log.warning("outputs not kept: the job's fingerprint cannot be formed (%s)", error)
        main(job)
        return
    outputs = flat_paths(job.output)
    try:
        if restore(entry, outputs):
            log.info("restored from %s (a finished run with the same fingerprint)", entry)
            return
    except OSError as error:  # e.g. a damaged entry or a full disk: computing them is still right
        log.warning("outputs not restored from %s (%s): running the step", entry, error)
    main(job)
    try:
        store(entry, outputs, description)
        log.info("kept as %s", entry)
    except OSError as error:  # the job itself succeeded: a store that cannot be written only costs a rerun
        log.warning("outputs not kept in %s: %s", entry, error)
